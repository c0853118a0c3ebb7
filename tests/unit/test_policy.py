"""What the policy shows the model: the action space, and the history in model space."""

from __future__ import annotations

from PIL import Image

from agent.policy import HISTORY_TEXT_LIMIT, Policy
from agent.trajectory import Step
from model.scripted import ScriptedModel
from tools.executor import ActionResult, Geometry, Observation
from tools.registry import ToolRegistry, tool


@tool
def place_marker(x: int, y: int) -> str:
    """Put a marker on a map.

    Args:
        x: Column on the map grid.
        y: Row on the map grid.
    """
    return "placed " * 500


def _observation() -> Observation:
    return Observation(image=Image.new("RGB", (1001, 501)), geometry=Geometry.identity(1001, 501))


def _history_text(steps: list[Step]) -> str:
    policy = Policy(ScriptedModel([]), registry=ToolRegistry([place_marker]))
    return policy.messages("goal", _observation(), steps)[1].text


def test_earlier_gui_points_are_shown_in_model_space_and_tool_arguments_as_given():
    size = {"size": [1001, 501]}
    steps = [
        Step(index=1, observation=size, model_text="", action={"action": "click", "x": 500, "y": 250},
             result=ActionResult(ok=True)),
        Step(index=2, observation=size, model_text="", action={"action": "place_marker", "x": 3, "y": 4},
             result=ActionResult(ok=True, output="placed " * 500)),
    ]
    text = _history_text(steps)
    assert '1. {"action":"click","x":500,"y":500' in text
    assert '2. {"action":"place_marker","x":3,"y":4} -> ok: placed' in text


def test_long_tool_output_is_clipped_in_the_prompt():
    step = Step(index=1, observation={"size": [10, 10]}, model_text="", action={"action": "wait"},
                result=ActionResult(ok=True, output="x" * 5000))
    line = next(line for line in _history_text([step]).splitlines() if line.startswith("1."))
    assert line.endswith("...[clipped]") and len(line) < HISTORY_TEXT_LIMIT + 100


def test_the_system_prompt_lists_gui_actions_and_registered_tools():
    policy = Policy(ScriptedModel([]), registry=ToolRegistry([place_marker]))
    assert '"name":"click"' in policy.system and '"name":"place_marker"' in policy.system
    assert "0 to 1000" in policy.system
