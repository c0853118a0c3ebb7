"""The action union: bounds, point-or-target rules, canonical keys."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tools.actions import ACTION_ADAPTER, GUI_ACTION_NAMES, Click, Drag, Key, Scroll, Type, Wait


def validate(**data: object):
    return ACTION_ADAPTER.validate_python(data)


def test_the_discriminator_picks_the_member():
    assert isinstance(validate(action="click", x=1, y=2), Click)
    assert isinstance(validate(action="drag", start=[1, 2], end="the bin"), Drag)
    assert GUI_ACTION_NAMES == {"click", "move", "drag", "scroll", "type", "key", "wait", "navigate",
                                "back", "finish", "fail"}


@pytest.mark.parametrize(
    "data",
    [
        {"action": "click", "x": 1, "y": 2, "clicks": 4},
        {"action": "click", "x": 1, "y": 2, "clicks": 0},
        {"action": "click", "x": 1},
        {"action": "click"},
        {"action": "click", "x": 1, "y": 2, "target": "OK"},
        {"action": "click", "x": -1, "y": 2},
        {"action": "wait", "seconds": 61},
        {"action": "wait", "seconds": 0},
        {"action": "type", "text": "a" * 10_001},
        {"action": "key", "keys": []},
        {"action": "key", "keys": ["hyper"]},
        {"action": "scroll", "dy": 0},
        {"action": "click", "x": 1, "y": 2, "surprise": True},
        {"action": "teleport"},
    ],
)
def test_out_of_bounds_and_malformed_actions_are_rejected(data):
    with pytest.raises(ValidationError):
        ACTION_ADAPTER.validate_python(data)


def test_bounds_are_inclusive_at_the_limits():
    assert validate(action="click", x=0, y=0, clicks=3).clicks == 3
    assert validate(action="wait", seconds=60).seconds == 60
    assert len(validate(action="type", text="a" * 10_000).text) == 10_000


def test_key_names_are_folded_to_the_canonical_table():
    assert validate(action="key", keys=["Control", "Return"]) == Key(keys=("ctrl", "enter"))
    assert validate(action="click", x=1, y=1, modifiers=["cmd"]).modifiers == ("meta",)


def test_an_unknown_key_names_the_closest_valid_ones():
    with pytest.raises(ValidationError, match="did you mean 'enter'"):
        validate(action="key", keys=["entr"])


def test_actions_are_immutable():
    action = Type(text="hi")
    with pytest.raises(ValidationError):
        action.text = "changed"  # type: ignore[misc]


def test_scroll_point_is_optional_but_must_be_whole():
    assert validate(action="scroll", dy=3) == Scroll(dy=3)
    with pytest.raises(ValidationError):
        validate(action="scroll", x=5, dy=3)
    assert validate(action="wait") == Wait(seconds=1.0)
