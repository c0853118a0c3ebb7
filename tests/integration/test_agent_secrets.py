"""Secrets end to end: a real Chromium receives the value, the model and the disk never do.

The scripted model (canned replies) is the only double: it stands in for weights that
cannot be downloaded here.
"""

from __future__ import annotations

import pytest

from agent.loop import Agent
from agent.trajectory import Trajectory
from model.scripted import ScriptedModel
from tools.browser import BrowserExecutor

pytestmark = pytest.mark.browser

VIEWPORT = (1280, 720)
PASSWORD = "hunter2-Ünï\"quote'"  # quotes and non-ASCII: the escaped spellings must be redacted too


def _call(name: str, arguments: str) -> str:
    return f'<tool_call>{{"name": "{name}", "arguments": {arguments}}}</tool_call>'


def test_the_agent_types_a_secret_it_never_sees_and_writes_it_nowhere(page_server, tmp_path):
    with BrowserExecutor(start_url=f"{page_server}/playground.html", viewport=VIEWPORT) as browser:
        box = browser.page.evaluate(
            "() => { const r = document.getElementById('text').getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; }"
        )
        x, y = round(box[0] * 1000 / (VIEWPORT[0] - 1)), round(box[1] * 1000 / (VIEWPORT[1] - 1))
        model = ScriptedModel([
            _call("click", f'{{"x": {x}, "y": {y}}}'),
            _call("type", '{"text": "<secret>password</secret>", "secret": true}'),
            _call("type", '{"text": "<secret>pin</secret>"}'),
            _call("finish", '{"answer": "logged in"}'),
        ])
        agent = Agent(model, browser, max_steps=6, runs_dir=tmp_path, secrets={"password": PASSWORD})
        trajectory = agent.run("Log in with the password.")

        assert browser.page.input_value("#text") == PASSWORD
    assert trajectory.outcome == "finished"
    steps = Trajectory.read_steps(trajectory.run_dir)
    assert [s.ok for s in steps] == [True, True, False, True]
    assert steps[1].action["text"] == "<secret>password</secret>"  # the record keeps the placeholder
    assert "no secret named 'pin'" in steps[2].result.error and "password" in steps[2].result.error
    # The model was told the name, and of its mistake, but never shown the value.
    shown = [m.text for call in model.calls for m in call]
    assert "<secret>password</secret>" in shown[0] and "no secret named 'pin'" in shown[-1]
    assert not any("hunter2" in text for text in shown)
    written = "".join(p.read_text(encoding="utf-8") for p in trajectory.run_dir.glob("*.json*"))
    assert "hunter2" not in written
