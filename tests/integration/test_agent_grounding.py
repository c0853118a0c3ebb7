"""Targets described in words, grounded on the live page and acted on, in a real Chromium.

The scripted model (canned replies) stands in for weights that cannot be downloaded here: it
answers the agent's grounding prompt with a box, as InternVL3 does. The tiny real model
shows the transformers path end to end (its random answers are never a box).
"""

from __future__ import annotations

import pytest

from agent.grounding import Box, ground
from agent.grounding.model import ModelGrounder
from agent.loop import Agent
from agent.prompts import GROUNDING_PROMPT
from agent.trajectory import Trajectory
from model.scripted import ScriptedModel
from tools.actions import Click, Drag, Type
from tools.errors import GroundingError

pytestmark = pytest.mark.browser

VIEWPORT = (1280, 720)




def _call(name: str, arguments: str) -> str:
    return f'<tool_call>{{"name": "{name}", "arguments": {arguments}}}</tool_call>'


def test_a_click_on_a_target_in_words_lands_on_it(playground, tmp_path, box_of):
    model = ScriptedModel([
        _call("click", '{"target": "the Click me button"}'),
        box_of(playground, "button"),  # the grounding answer
        _call("finish", '{"answer": "clicked"}'),
    ])
    trajectory = Agent(model, playground, max_steps=4, runs_dir=tmp_path).run("Click the button.")

    assert trajectory.outcome == "finished"
    assert playground.page.evaluate("window.state.clicks") == 1
    grounding_call = model.calls[1]
    assert len(grounding_call) == 1 and grounding_call[0].images[0].size == VIEWPORT
    assert grounding_call[0].text == GROUNDING_PROMPT.format("the Click me button")
    step = Trajectory.read_steps(trajectory.run_dir)[0]
    assert step.action["target"] == "the Click me button"  # the record keeps what the model said
    x, y = step.grounded["the Click me button"]
    assert step.grounding["the Click me button"]["point"] == [x, y]
    assert step.grounding["the Click me button"]["source"] == "model"
    assert playground.page.evaluate(f"document.elementFromPoint({x}, {y}).id") == "button"
    finish = Trajectory.read_steps(trajectory.run_dir)[1]
    assert step.timings_ms["ground"] >= 0 and "ground" not in finish.timings_ms and finish.grounded is None


def test_typing_into_a_target_clicks_it_first(playground, tmp_path, box_of):
    model = ScriptedModel([
        _call("type", '{"text": "grounded", "target": "the text field", "submit": true}'),
        box_of(playground, "text"),
        _call("finish", "{}"),
    ])
    Agent(model, playground, max_steps=3, runs_dir=tmp_path).run("Type 'grounded' in the field.")

    assert playground.page.input_value("#text") == "grounded"
    assert playground.page.evaluate("window.state.submitted") == 1


def test_a_drag_between_two_targets_grounds_both_ends(playground, box_of):
    answers = iter([box_of(playground, "drag-source"), box_of(playground, "drop")])
    grounder = ModelGrounder(ScriptedModel([lambda messages: next(answers)] * 2))
    observation = playground.observe()
    (drag,), found = ground(Drag(start="the Drag me box", end="the Drop here box"), observation, grounder)

    assert set(found) == {"the Drag me box", "the Drop here box"}
    assert [drag.start, drag.end] == [found["the Drag me box"].point, found["the Drop here box"].point]
    assert {g.source for g in found.values()} == {"model"}
    assert playground.execute(drag).ok
    assert playground.page.evaluate("window.state.drag.dropTarget") == "drop"


def test_an_answer_without_a_box_is_a_grounding_error_that_says_what_to_do(playground):
    grounder = ModelGrounder(ScriptedModel(["It is the blue one."]))
    with pytest.raises(GroundingError, match=r"could not find 'the OK button'.*give x and y"):
        grounder.locate(playground.observe(), "the OK button")


def test_the_box_centre_is_the_point_and_corners_may_come_in_any_order(playground):
    grounder = ModelGrounder(ScriptedModel(["<box>[[500, 1000, 0, 0]]</box>"]))
    found = grounder.locate(playground.observe(), "the top-left quarter")
    assert found.box == Box(0, 0, 640, 719) and found.point == found.center == (320, 359)
    assert (found.source, found.score) == ("model", 0.5)
    corner = ModelGrounder(ScriptedModel(["[[0,0,0,0]]"]))
    (click,), _ = ground(Click(target="x"), playground.observe(), corner)
    assert (click.x, click.y, click.target) == (0, 0, None)
    (typed,) = ground(Type(text="t"), playground.observe(), grounder)[0]  # no target: unchanged
    assert typed == Type(text="t")


@pytest.mark.model
def test_the_tiny_real_model_grounds_through_transformers_and_fails_cleanly(playground):
    from model.internvl import InternVLModel

    grounder = ModelGrounder(InternVLModel.from_pretrained("tiny"), max_new_tokens=8)
    with pytest.raises(GroundingError, match="could not find 'the Click me button'"):
        grounder.locate(playground.observe(), "the Click me button")
