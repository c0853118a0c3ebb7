"""Safety checks between the model and a real Chromium: the domain allowlist, confirmation,
the loop detector and stop(). The scripted model (canned replies) is the only double: it
stands in for weights that cannot be downloaded here.
"""

from __future__ import annotations

import pytest

from agent.loop import Agent
from agent.safety import SafetyPolicy
from agent.trajectory import Trajectory
from model.scripted import ScriptedModel
from tools.actions import BaseAction, Type
from tools.browser import BrowserExecutor

pytestmark = pytest.mark.browser

VIEWPORT = (1280, 720)


def _call(name: str, arguments: str = "{}") -> str:
    return f'<tool_call>{{"name": "{name}", "arguments": {arguments}}}</tool_call>'




def _text_field(executor: BrowserExecutor) -> tuple[int, int]:
    box = executor.page.evaluate(
        "() => { const r = document.getElementById('text').getBoundingClientRect();"
        " return [r.x + r.width / 2, r.y + r.height / 2]; }"
    )
    return round(box[0] * 1000 / (VIEWPORT[0] - 1)), round(box[1] * 1000 / (VIEWPORT[1] - 1))


def test_navigating_off_the_allowed_domains_is_refused_and_fed_back(playground, page_server, tmp_path):
    port = page_server.rsplit(":", 1)[1]
    model = ScriptedModel([
        _call("navigate", f'{{"url": "http://localhost:{port}/second.html"}}'),  # same server, other host
        _call("navigate", '{"url": "https://127.0.0.1.evil.test/"}'),
        _call("navigate", f'{{"url": "{page_server}/second.html"}}'),
        _call("finish"),
    ])
    agent = Agent(model, playground, max_steps=6, runs_dir=tmp_path,
                  safety=SafetyPolicy(allowed_domains=["127.0.0.1"]))
    trajectory = agent.run("Open the second page.")

    steps = Trajectory.read_steps(trajectory.run_dir)
    assert [s.ok for s in steps] == [False, False, True, True]
    assert "localhost is not on the allowed domains (127.0.0.1)" in steps[0].result.error
    assert "127.0.0.1.evil.test" in steps[1].result.error
    assert playground.page.url == f"{page_server}/second.html"  # only the allowed address was visited
    assert "localhost is not on the allowed domains" in model.calls[1][1].text  # fed back to the model


def test_a_page_that_left_the_allowed_domains_only_lets_the_model_go_back(playground, page_server, tmp_path):
    port = page_server.rsplit(":", 1)[1]
    x, y = _text_field(playground)
    playground.page.goto(f"http://localhost:{port}/second.html")  # as if a link had led there
    model = ScriptedModel([_call("click", f'{{"x": {x}, "y": {y}}}'), _call("back"), _call("finish")])
    agent = Agent(model, playground, max_steps=5, runs_dir=tmp_path,
                  safety=SafetyPolicy(allowed_domains=["127.0.0.1"]))
    trajectory = agent.run("Click the text field.")

    steps = Trajectory.read_steps(trajectory.run_dir)
    assert [s.ok for s in steps] == [False, True, True]
    assert "left the allowed domains" in steps[0].result.error and "go back" in steps[0].result.error
    assert playground.page.url == f"{page_server}/playground.html"


def _typing_needs_approval(action: BaseAction, observation: object) -> str | None:
    return "typing on a page" if isinstance(action, Type) else None


@pytest.mark.parametrize("answer", [True, False, None])
def test_an_action_that_needs_approval_runs_only_when_a_person_gives_it(playground, tmp_path, answer):
    x, y = _text_field(playground)
    model = ScriptedModel([
        _call("click", f'{{"x": {x}, "y": {y}}}'),
        _call("type", '{"text": "approved"}'),
        _call("finish"),
    ])
    asked: list[tuple[str, str]] = []

    def confirm(action: BaseAction, reason: str) -> bool:
        asked.append((action.name, reason))
        return bool(answer)

    agent = Agent(model, playground, max_steps=5, runs_dir=tmp_path,
                  confirm=None if answer is None else confirm,
                  safety=SafetyPolicy(confirm_when=_typing_needs_approval))
    trajectory = agent.run("Type 'approved'.")

    typed = playground.page.input_value("#text")
    if answer:
        assert (trajectory.outcome, typed, asked) == ("finished", "approved", [("type", "typing on a page")])
    else:
        assert (trajectory.outcome, typed, len(trajectory)) == ("blocked", "", 2)
        assert "not run" in trajectory.steps[-1].result.error
        assert asked == ([] if answer is None else [("type", "typing on a page")])


def test_the_same_action_on_an_unchanged_screen_ends_the_run_as_looping(playground, tmp_path):
    click_nothing = _call("click", '{"x": 990, "y": 990}')  # an empty corner: nothing changes
    playground.page.evaluate("() => { window.clicks = 0; addEventListener('click', () => clicks++); }")
    model = ScriptedModel([click_nothing] * 6)
    trajectory = Agent(model, playground, max_steps=6, runs_dir=tmp_path,
                       safety=SafetyPolicy(loop_limit=3)).run("Do something.")

    assert (trajectory.outcome, len(trajectory)) == ("looping", 3)
    assert [s.ok for s in trajectory.steps] == [True, True, False]
    assert "3 times in a row" in trajectory.steps[-1].result.error
    assert playground.page.evaluate("window.clicks") == 2  # the third click was not run


def test_a_changing_screen_is_not_a_loop(playground, tmp_path):
    x, y = _text_field(playground)
    model = ScriptedModel([_call("click", f'{{"x": {x}, "y": {y}}}')]
                          + [_call("type", '{"text": "a"}')] * 4 + [_call("finish")])
    trajectory = Agent(model, playground, max_steps=8, runs_dir=tmp_path).run("Type aaaa.")
    assert trajectory.outcome == "finished" and playground.page.input_value("#text") == "aaaa"


def test_stop_ends_the_run_after_the_step_in_flight(playground, tmp_path):
    agent: Agent

    def reply_and_stop(messages: object) -> str:
        agent.stop()  # as a Ctrl-C handler or another thread would, mid-step
        return _call("wait", '{"seconds": 0.1}')

    model = ScriptedModel([_call("wait", '{"seconds": 0.1}'), reply_and_stop, _call("finish")])
    agent = Agent(model, playground, max_steps=5, runs_dir=tmp_path)
    trajectory = agent.run("Wait.")
    assert (trajectory.outcome, len(trajectory)) == ("stopped", 2)
    assert all(s.ok for s in trajectory.steps)  # the step in flight was finished, not cut


def test_max_seconds_ends_the_run_between_steps(playground, tmp_path):
    model = ScriptedModel([_call("wait", '{"seconds": 0.3}')] * 2 + [_call("finish")])
    trajectory = Agent(model, playground, max_steps=5, max_seconds=0.2, runs_dir=tmp_path).run("Wait.")
    assert (trajectory.outcome, len(trajectory)) == ("max_seconds", 1)  # the step in flight was finished
