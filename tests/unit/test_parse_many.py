"""Several calls in one reply: agent.parse_many.parse_actions."""

from __future__ import annotations

import pytest

from agent.parse_many import parse_actions
from tools.actions import Click, Finish
from tools.errors import ParseError
from tools.registry import ToolRegistry, tool


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


REGISTRY = ToolRegistry([add])


def _call(arguments: str, name: str = "add") -> str:
    return f'<tool_call>{{"name": "{name}", "arguments": {arguments}}}</tool_call>'


def test_every_tool_call_block_is_read_in_order():
    text = "thinking " + _call('{"a": 1, "b": 2}') + "\n" + _call('{"a": 3, "b": 4}')
    actions = parse_actions(text, image_size=None, registry=REGISTRY)
    assert [(action.a, action.b) for action in actions] == [(1, 2), (3, 4)]


def test_a_json_list_of_calls_is_read_and_gui_points_become_pixels():
    text = ('[{"name": "add", "arguments": {"a": 1, "b": 2}}, '
            '{"name": "click", "arguments": {"x": 500, "y": 1000}}]')
    actions = parse_actions(text, image_size=(1001, 201), registry=REGISTRY)
    assert actions[0].a == 1 and isinstance(actions[1], Click) and (actions[1].x, actions[1].y) == (500, 200)


def test_one_action_is_read_as_parse_action_reads_it():
    assert isinstance(parse_actions("finish(answer='x')", image_size=(10, 10))[0], Finish)
    assert parse_actions('add(a=1, b=2)', image_size=None, registry=REGISTRY)[0].b == 2


def test_a_list_inside_one_call_is_not_a_list_of_calls():
    @tool
    def order(items: list[dict[str, str]]) -> str:
        """Order items."""
        return "ok"

    text = '{"name": "order", "arguments": {"items": [{"name": "tea"}]}}'
    actions = parse_actions(text, image_size=None, registry=ToolRegistry([order]))
    assert len(actions) == 1 and actions[0].items == [{"name": "tea"}]


def test_without_a_screen_gui_actions_are_unknown():
    with pytest.raises(ParseError, match="unknown action 'click'"):
        parse_actions(_call('{"x": 1, "y": 2}', name="click"), image_size=None, registry=REGISTRY)


def test_a_bad_call_among_several_and_too_many_calls_are_feedback():
    with pytest.raises(ParseError, match="add: b is required"):
        parse_actions(_call('{"a": 1, "b": 2}') + _call('{"a": 1}'), image_size=None, registry=REGISTRY)
    with pytest.raises(ParseError, match="3 calls in one reply; at most 2"):
        parse_actions(_call('{"a": 1, "b": 2}') * 3, image_size=None, registry=REGISTRY, limit=2)
