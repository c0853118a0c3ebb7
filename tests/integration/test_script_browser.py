"""Scripts run in a real Chromium: targets in words grounded on the live page, one step at a time.

The scripted model (canned replies) stands in for InternVL3's grounding answers, which need
weights that cannot be downloaded here; the CLI test uses the tiny real model.
"""

from __future__ import annotations

import json

import pytest

from agent.grounding.model import ModelGrounder
from agent.script import Script, ScriptRunner
from agent.trajectory import Trajectory
from model.scripted import ScriptedModel
from tests.helpers.cli import run_cli

pytestmark = pytest.mark.browser


def test_a_script_clicks_types_and_checks_by_description(playground, tmp_path, box_of):
    script = Script.parse({"name": "fill", "steps": [
        {"click": "the Click me button"},
        {"type": {"text": "scripted", "target": "the text field"}},
        {"key": "Enter"},
        {"expect": "the Hover me box"},
    ]})
    answers = {"the Click me button": box_of(playground, "button"),
               "the text field": box_of(playground, "text"),
               "the Hover me box": box_of(playground, "hover")}

    def answer(messages):  # a grounder that knows the page, as InternVL3 would
        return next(box for label, box in answers.items() if label in messages[0].text)

    runner = ScriptRunner(playground, ModelGrounder(ScriptedModel([answer] * 3)), runs_dir=tmp_path)
    trajectory = runner.run(script)

    assert (trajectory.outcome, len(trajectory)) == ("finished", 4)
    assert playground.page.evaluate("window.state.clicks") == 1
    assert playground.page.input_value("#text") == "scripted"
    assert playground.page.evaluate("window.state.submitted") == 1
    steps = Trajectory.read_steps(trajectory.run_dir)
    assert [s.action["action"] for s in steps] == ["click", "type", "key", "expect"]
    assert set(steps[3].grounded) == {"the Hover me box"} and steps[2].grounded is None
    assert all((trajectory.run_dir / s.screenshot).exists() for s in steps)


def test_a_target_that_never_appears_fails_the_script_after_its_timeout(playground, tmp_path):
    script = Script.parse({"timeout": 1, "steps": [{"click": "the Delete button"}, {"wait": 1}]})
    model = ScriptedModel(["I do not see it."] * 10)
    runner = ScriptRunner(playground, ModelGrounder(model), runs_dir=tmp_path, retry_every_s=0.2)
    trajectory = runner.run(script)

    assert (trajectory.outcome, len(trajectory)) == ("failed", 1)  # the wait never ran
    assert 3 <= len(model.calls) <= 6  # it looked again while the timeout lasted
    error = trajectory.steps[0].result.error
    assert "could not find 'the Delete button'" in error and "looked for 1 s" in error
    run = json.loads((trajectory.run_dir / "run.json").read_text())
    assert run["outcome"] == "failed" and run["answer"].startswith("step 1 (click)")


def test_the_cli_refuses_a_bad_script_in_one_line_before_loading_a_model(tmp_path):
    (tmp_path / "bad.yaml").write_text("steps:\n  - clik: OK\n")
    proc = run_cli("script", "bad.yaml", "--model", "internvl3-78b", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "step 1: unknown action 'clik'" in lines[0]


@pytest.mark.model
def test_the_cli_runs_a_script_with_the_tiny_model_and_exits_1_when_a_step_fails(page_server, tmp_path):
    (tmp_path / "s.yaml").write_text("timeout: 0.5\nsteps:\n  - wait: 0.1\n  - click: the Click me button\n")
    url = f"{page_server}/playground.html"
    proc = run_cli("script", "s.yaml", "--url", url, "--grounder", "model", "--model", "tiny", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr  # random weights answer no box: step 2 fails
    assert "failed after 2 steps" in proc.stderr and "Traceback" not in proc.stderr
    run_dir = tmp_path / proc.stdout.strip().rsplit("trajectory: ", 1)[1]
    steps = Trajectory.read_steps(run_dir)
    assert [s.ok for s in steps] == [True, False]


def test_secrets_a_script_types_reach_the_page_but_never_the_disk(playground, tmp_path, box_of):
    script = Script.parse({"steps": [
        {"type": {"text": "<secret>password</secret>", "target": "the text field"}},
        {"type": {"text": "-literal-pin-4321", "secret": True}},
    ]})
    grounder = ModelGrounder(ScriptedModel([box_of(playground, "text")]))
    runner = ScriptRunner(playground, grounder, runs_dir=tmp_path, secrets={"password": "hunter2-xyz"})
    trajectory = runner.run(script)

    assert trajectory.outcome == "finished"
    assert playground.page.input_value("#text") == "hunter2-xyz-literal-pin-4321"
    written = "".join(p.read_text(encoding="utf-8") for p in trajectory.run_dir.glob("*.json*"))
    assert "hunter2" not in written and "4321" not in written
    assert "<secret>password</secret>" in written  # the record keeps the placeholder


def test_the_cli_runs_a_script_with_dom_grounding_and_no_model(page_server, tmp_path):
    steps = "steps:\n  - click: the Click me button\n  - type: {text: hi, target: the text field}\n"
    (tmp_path / "s.yaml").write_text(steps)
    url = f"{page_server}/playground.html"
    # internvl3-78b is not on this machine: the run must not try to load it.
    proc = run_cli("script", "s.yaml", "--url", url, "--grounder", "dom", "--model", "internvl3-78b",
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "finished after 2 steps" in proc.stderr


def test_the_cli_refuses_dom_grounding_without_a_page(tmp_path):
    (tmp_path / "s.yaml").write_text("steps:\n  - click: OK\n")
    proc = run_cli("script", "s.yaml", "--grounder", "dom", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "the dom grounder reads web pages: ground with --grounder ocr, auto or model" in proc.stderr
