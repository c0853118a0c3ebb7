"""The agent loop end to end in a real headless Chromium.

The scripted model (canned replies) is the only double: it stands in for weights that
cannot be downloaded here. Everything else is real: the page, the browser, the parser,
the trajectory on disk.
"""

from __future__ import annotations

import json

import pytest

from agent.cli import DEMO_PAGE
from agent.loop import Agent
from agent.trajectory import Trajectory
from model.scripted import ScriptedModel
from tools.browser import BrowserExecutor
from tools.errors import AgentError

pytestmark = pytest.mark.browser

VIEWPORT = (1280, 720)


@pytest.fixture
def demo_browser():
    with BrowserExecutor(start_url=DEMO_PAGE.as_uri(), viewport=VIEWPORT) as executor:
        yield executor


def _ok_button_in_model_space(executor: BrowserExecutor) -> tuple[int, int]:
    box = executor.page.evaluate(
        "() => { const r = document.getElementById('ok').getBoundingClientRect();"
        " return [r.x + r.width / 2, r.y + r.height / 2]; }"
    )
    return round(box[0] * 1000 / (VIEWPORT[0] - 1)), round(box[1] * 1000 / (VIEWPORT[1] - 1))


def test_scripted_agent_clicks_the_button_and_finishes(demo_browser, tmp_path):
    x, y = _ok_button_in_model_space(demo_browser)
    model = ScriptedModel([
        "The OK button is in the dialog.\n"
        f'<tool_call>{{"name": "click", "arguments": {{"x": {x}, "y": {y}}}}}</tool_call>',
        '<tool_call>{"name": "finish", "arguments": {"answer": "clicked"}}</tool_call>',
    ])
    trajectory = Agent(model, demo_browser, max_steps=5, runs_dir=tmp_path).run("Click the OK button.")

    assert demo_browser.page.evaluate("window.choice") == "ok"
    assert (trajectory.outcome, trajectory.answer, len(trajectory)) == ("finished", "clicked", 2)
    steps = Trajectory.read_steps(trajectory.run_dir)
    assert [s.action["action"] for s in steps if s.action] == ["click", "finish"]
    assert all((trajectory.run_dir / s.screenshot).exists() for s in steps if s.screenshot)
    # The model was shown the screenshot and the whole action space.
    system, user = model.calls[0]
    assert '"name":"click"' in system.text and user.images[0].size == VIEWPORT


def test_parse_errors_and_failed_actions_are_fed_back_to_the_model(demo_browser, tmp_path):
    x, y = _ok_button_in_model_space(demo_browser)
    model = ScriptedModel([
        "I think I should press the button.",  # no action: a parse error
        '<tool_call>{"name": "click", "arguments": {"target": "the OK button"}}</tool_call>',
        "I cannot see it.",  # the same model grounds the target, and finds no box: a failed action
        f"click(x={x}, y={y})",
        'finish(answer="done")',
    ])
    trajectory = Agent(model, demo_browser, max_steps=6, runs_dir=tmp_path).run("Click the OK button.")

    assert trajectory.outcome == "finished"
    steps = trajectory.steps
    assert steps[0].parse_error is not None and steps[0].action is None
    assert steps[1].result is not None and not steps[1].result.ok
    second_prompt, third_prompt = model.calls[1][1].text, model.calls[3][1].text
    assert "could not be used" in second_prompt
    assert "The action failed: could not find 'the OK button' on the screen" in third_prompt
    assert demo_browser.page.evaluate("window.choice") == "ok"


def test_run_stops_after_too_many_unusable_replies_in_a_row(demo_browser, tmp_path):
    model = ScriptedModel(["nothing useful"] * 3)
    trajectory = Agent(model, demo_browser, max_steps=10, max_retries=2, runs_dir=tmp_path).run("g")
    assert (trajectory.outcome, len(trajectory)) == ("too_many_errors", 3)
    run = json.loads((trajectory.run_dir / "run.json").read_text())
    assert run["outcome"] == "too_many_errors" and run["steps"] == 3


@pytest.mark.model
def test_tiny_real_model_runs_to_max_steps_with_parse_errors_recorded(demo_browser, tmp_path):
    from model.internvl import InternVLModel

    model = InternVLModel.from_pretrained("tiny")
    trajectory = Agent(model, demo_browser, max_steps=3, max_retries=5, runs_dir=tmp_path).run("Click OK.")

    assert (trajectory.outcome, len(trajectory)) == ("max_steps", 3)
    steps = Trajectory.read_steps(trajectory.run_dir)
    assert [s.index for s in steps] == [1, 2, 3]
    for step in steps:
        # Random weights write no action: each reply is kept as it came, with the parse error
        # that was fed back to the model.
        assert step.action is None and step.result is None
        assert step.parse_error is not None and "Valid actions" in step.parse_error
        assert step.timings_ms["model"] > 0


def test_a_model_that_breaks_mid_run_leaves_the_steps_so_far_and_an_error_outcome(demo_browser, tmp_path):
    # The script runs out after one reply: the second call raises, as a crashed backend would.
    model = ScriptedModel(['wait(seconds=0.1)'])
    agent = Agent(model, demo_browser, max_steps=5, runs_dir=tmp_path)
    with pytest.raises(IndexError):
        agent.run("g")
    assert agent.trajectory is not None
    run = json.loads((agent.trajectory.run_dir / "run.json").read_text())
    assert (run["outcome"], run["steps"]) == ("error", 1)
    assert len(Trajectory.read_steps(agent.trajectory.run_dir)) == 1


def test_a_step_whose_executor_breaks_is_recorded_before_the_run_ends(demo_browser, tmp_path):
    def close_browser_then_click(messages):
        demo_browser.close()  # the browser is gone by the time the action runs
        return "click(x=500, y=500)"

    agent = Agent(ScriptedModel([close_browser_then_click]), demo_browser, max_steps=3, runs_dir=tmp_path)
    with pytest.raises(AgentError):
        agent.run("g")
    assert agent.trajectory is not None
    [step] = Trajectory.read_steps(agent.trajectory.run_dir)
    assert step.model_text == "click(x=500, y=500)"
    assert step.result is not None and not step.result.ok and "closed" in (step.result.error or "")
    assert json.loads((agent.trajectory.run_dir / "run.json").read_text())["outcome"] == "error"


def test_ctrl_c_during_a_step_ends_the_run_as_stopped(demo_browser, tmp_path):
    def interrupt(messages):
        raise KeyboardInterrupt

    agent = Agent(ScriptedModel(["wait(seconds=0.1)", interrupt]), demo_browser, max_steps=5,
                  runs_dir=tmp_path)
    with pytest.raises(KeyboardInterrupt):
        agent.run("g")
    assert agent.trajectory is not None
    run = json.loads((agent.trajectory.run_dir / "run.json").read_text())
    assert (run["outcome"], run["steps"]) == ("stopped", 1)
