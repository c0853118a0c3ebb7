"""Runs killed with SIGKILL, then resumed to their end: no step lost, none counted twice.

Each run starts in a child process that drives a real headless Chromium on pages served
over 127.0.0.1, and says when it has reached the point to die at by writing a file: inside
a model call, inside an action, or after a step's screenshot and before its line. The test
then kills it with SIGKILL (and its Chromium with it, as a crash or a power cut would) and
resumes the run here, on a browser of its own that starts elsewhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agent.grounding.dom import DOMGrounder
from agent.loop import Agent
from agent.script import Script, ScriptRunner, _digest
from agent.trajectory import Step, Trajectory
from model.scripted import ScriptedModel
from tools.actions import Wait
from tools.browser import BrowserExecutor
from tools.errors import AgentError
from tools.executor import ActionResult

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
GOAL = "Click the button, then open the second page."
CLICK = "click(x=94, y=70)"  # the Click me button of playground.html, in 0..1000 of 1280x720


def _script(server: str) -> dict[str, Any]:
    return {"name": "two pages", "steps": [
        {"click": "the Click me button"},
        {"navigate": f"{server}/second.html"},
        {"wait": 0.1},
        {"expect": "the Second page heading"},
    ]}


def child(config: dict[str, Any]) -> None:
    """The run to kill (in its own process): hangs at `config["point"]` of step `kill_at`, once
    it has written the `ready` file."""
    ready, point, kill_at = Path(config["ready"]), config["point"], config["kill_at"]
    running: list[Agent | ScriptRunner] = []

    def signal_and_hang(*_: object) -> str:
        if point != "record" and running and running[0].trajectory is not None:
            # The step before is written while this one goes on; a model call or an action
            # outlasts that write, so the kill comes once it is on disk (test_recording_kill
            # kills at any moment).
            running[0].trajectory.flush()
        ready.write_text(point)
        time.sleep(600)
        raise AssertionError("should have been killed")

    if point == "record":  # the trajectory's writer thread saves a step's PNG, then writes its line
        from PIL import Image

        real = Image.Image.save

        def save_then_hang(image: Image.Image, fp: Any, *args: Any, **kwargs: Any) -> None:
            real(image, fp, *args, **kwargs)
            if str(fp).endswith(f"step-{kill_at:03d}.png"):
                signal_and_hang()

        Image.Image.save = save_then_hang  # type: ignore[method-assign]

    class Browser(BrowserExecutor):
        def execute(self, action):  # type: ignore[no-untyped-def]
            if point == "action" and isinstance(action, Wait):  # an action that never returns
                signal_and_hang()
            return super().execute(action)

    server, start = config["server"], {"url": f"{config['server']}/playground.html"}
    with Browser(start_url=start["url"]) as browser:
        if config["kind"] == "agent":
            replies: list[Any] = [CLICK, f'navigate(url="{server}/second.html")', "wait(seconds=0.1)"]
            replies[kill_at - 1] = signal_and_hang if point == "model" else replies[kill_at - 1]
            agent = Agent(ScriptedModel(replies[:kill_at]), browser, max_steps=4, runs_dir=config["runs"])
            running.append(agent)
            agent.run(GOAL, run_id="killed", start=start)
        else:
            runner = ScriptRunner(browser, DOMGrounder(browser), runs_dir=config["runs"])
            running.append(runner)
            runner.run(Script.parse(_script(server)), run_id="killed", start=start)


def _run_and_kill(tmp_path: Path, **config: Any) -> Path:
    """Start `child(config)`, wait until it is where it should die, SIGKILL it; the run directory."""
    ready = tmp_path / "ready"
    config = {**config, "ready": str(ready), "runs": str(tmp_path / "runs")}
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); "
            "from tests.integration.test_resume import child; child(json.loads(sys.argv[2]))")
    with open(tmp_path / "child.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", code, str(ROOT), json.dumps(config)], cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert proc.poll() is None, (tmp_path / "child.log").read_text()
            assert time.monotonic() < deadline, "the child never reached the point to be killed at"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        with contextlib.suppress(ProcessLookupError):  # its Playwright driver and Chromium, as a crash would
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    return tmp_path / "runs" / "killed"


def _assert_killed_at(run_dir: Path, done: int) -> None:
    """What a killed run shows on disk: how far it got, still `running`."""
    run = json.loads((run_dir / "run.json").read_text())
    assert (run["outcome"], run["steps"]) == ("running", done)
    assert (run["last_step_at"] is not None) == (done > 0)
    assert [s.index for s in Trajectory.read_steps(run_dir)] == list(range(1, done + 1))


def _assert_whole(run_dir: Path, outcome: str, steps: int) -> list[Any]:
    """The resumed run: each step once, in order, readable, and run.json agrees."""
    read = Trajectory.read_steps(run_dir)
    assert [s.index for s in read] == list(range(1, steps + 1))
    assert all((run_dir / s.screenshot).is_file() for s in read if s.screenshot)
    lines = (run_dir / "steps.jsonl").read_text().splitlines()
    assert len(lines) == steps and all(json.loads(line) for line in lines)  # valid JSON Lines throughout
    run = json.loads((run_dir / "run.json").read_text())
    assert (run["outcome"], run["steps"], len(run["resumes"])) == (outcome, steps, 1)
    return read


@pytest.mark.parametrize(("point", "kill_at"), [("model", 3), ("model", 1), ("action", 3), ("record", 3)])
def test_an_agent_run_killed_mid_step_resumes_to_its_end(tmp_path, page_server, browser, point, kill_at):
    run_dir = _run_and_kill(tmp_path, kind="agent", server=page_server, point=point, kill_at=kill_at)
    _assert_killed_at(run_dir, kill_at - 1)
    if point == "record":
        assert (run_dir / f"step-{kill_at:03d}.png").is_file()  # the screenshot was written, the line not

    browser.page.goto("about:blank")  # a new browser: it has to be taken back to where the run was
    prompts: list[str] = []

    def reply(messages):  # what the model is shown on resume: the steps before the kill
        prompts.append(messages[1].text)
        return CLICK if len(prompts) == 1 and kill_at == 1 else "wait(seconds=0.1)"

    replies = [reply] * (4 - kill_at) + ['finish(answer="done")']
    agent = Agent(ScriptedModel(replies), browser, max_steps=99, runs_dir=tmp_path / "elsewhere")
    trajectory = agent.drive(agent.resume(run_dir))

    assert (trajectory.outcome, trajectory.answer) == ("finished", "done")
    steps = _assert_whole(run_dir, "finished", 4)  # the run's max_steps (4) held, not this agent's
    first = prompts[0]
    assert f"Step {kill_at}: what is the next action?" in first
    if kill_at == 3:
        assert '1. {"action":"click"' in first and '2. {"action":"navigate"' in first
        assert steps[2].observation["url"] == f"{page_server}/second.html"  # reopened after the navigate
    else:
        assert "Previous steps" not in first
        assert steps[0].observation["url"] == f"{page_server}/playground.html"  # reopened at the start


@pytest.mark.parametrize("point", ["action", "record"])
def test_a_script_killed_mid_step_goes_on_from_the_step_after_the_last_done(tmp_path, page_server, browser,
                                                                            point):
    run_dir = _run_and_kill(tmp_path, kind="script", server=page_server, point=point, kill_at=3)
    _assert_killed_at(run_dir, 2)

    browser.page.goto(f"{page_server}/playground.html")
    runner = ScriptRunner(browser, DOMGrounder(browser), runs_dir=tmp_path / "elsewhere")
    trajectory = runner.drive(runner.resume(Script.parse(_script(page_server)), run_dir))

    assert trajectory.outcome == "finished"
    steps = _assert_whole(run_dir, "finished", 4)
    assert [s.action["action"] for s in steps] == ["click", "navigate", "wait", "expect"]
    assert steps[2].observation["url"] == f"{page_server}/second.html"  # reopened where step 2 went


def test_a_resume_counts_the_steps_done_against_max_steps(browser, page_server, tmp_path):
    def interrupt(messages):
        raise KeyboardInterrupt  # Ctrl-C: the run ends as stopped after one step

    agent = Agent(ScriptedModel(["wait(seconds=0.1)", interrupt]), browser, max_steps=3, runs_dir=tmp_path)
    with pytest.raises(KeyboardInterrupt):
        agent.run("g", start={"url": f"{page_server}/playground.html"})
    assert agent.trajectory is not None
    run_dir = agent.trajectory.run_dir

    model = ScriptedModel(["wait(seconds=0.1)"] * 5)
    again = Agent(model, browser, max_steps=50, runs_dir=tmp_path)
    trajectory = again.drive(again.resume(run_dir))
    assert (trajectory.outcome, len(trajectory), len(model.calls)) == ("max_steps", 3, 2)
    with pytest.raises(AgentError, match="ended as 'max_steps'"):
        next(again.resume(run_dir))


def test_a_resume_needs_the_same_secrets_and_kind_of_run(browser, page_server, tmp_path):
    def interrupt(messages):
        raise KeyboardInterrupt

    agent = Agent(ScriptedModel([interrupt]), browser, max_steps=3, runs_dir=tmp_path,
                  secrets={"pin": "4321"})
    with pytest.raises(KeyboardInterrupt):
        agent.run("g")
    assert agent.trajectory is not None
    run_dir = agent.trajectory.run_dir
    assert json.loads((run_dir / "run.json").read_text())["secret_names"] == ["pin"]

    with pytest.raises(AgentError, match="secrets named pin"):
        next(Agent(ScriptedModel([]), browser, max_steps=3).resume(run_dir))
    with pytest.raises(AgentError, match="not a script run"):
        next(ScriptRunner(browser, DOMGrounder(browser)).resume(Script.parse(_script(page_server)), run_dir))
    # Refused before anything was touched: the run can still be resumed.
    assert json.loads((run_dir / "run.json").read_text())["outcome"] == "stopped"


def _stopped_task_run(tmp_path: Path, start: dict[str, Any], steps: list[Any], stop_after: int) -> Path:
    """A task file's steps run with the DOM grounder and stopped (as by Ctrl-C) after `stop_after`."""
    from agent.task_run import TaskRun

    path = tmp_path / "task.yaml"
    path.write_text(json.dumps({"name": "resumable", "start": start, "steps": steps}))  # JSON is YAML
    with TaskRun(Script.load(path), grounder="dom", runs_dir=tmp_path / "runs") as run:
        assert run.runner is not None
        for step in run.steps():
            if step.index == stop_after:
                run.runner.stop()
        assert run.runner.trajectory is not None
        return run.runner.trajectory.run_dir


def test_the_cli_resumes_a_task_file_whose_served_folder_comes_back_on_a_new_port(tmp_path):
    from agent.cli.resume import resume_script

    pages = str(Path(__file__).resolve().parents[1] / "pages")
    steps = [{"click": "the Click me button"}, {"wait": 0.1}, {"expect": "the Click me button"}]
    run_dir = _stopped_task_run(tmp_path, {"serve": pages, "path": "playground.html"}, steps, stop_after=2)
    before = json.loads((run_dir / "run.json").read_text())
    assert (before["outcome"], before["steps"], before["grounder"]) == ("stopped", 2, "DOMGrounder")
    old = Trajectory.read_steps(run_dir)[-1].observation["url"]

    resume_script(run_dir, model="unused", base_url=None, headed=False, secrets={})  # DOM grounder: no model

    steps_now = _assert_whole(run_dir, "finished", 3)
    new = steps_now[2].observation["url"]
    assert new.endswith("/playground.html") and new != old  # the same page, on the new server's port
    assert json.loads((run_dir / "run.json").read_text())["success"] is True


def test_the_cli_refuses_a_resume_with_other_secrets_or_of_the_other_kind(tmp_path, page_server):
    from agent.cli.resume import resume_run, resume_script

    run_dir = _stopped_task_run(tmp_path, {"url": f"{page_server}/playground.html"},
                                [{"wait": 0.1}, {"wait": 0.1}], stop_after=1)
    with pytest.raises(AgentError, match="internvl-agent script --resume"):
        resume_run(run_dir, model="tiny", base_url=None, headed=False, secrets={})
    with pytest.raises(AgentError, match="ran with no --secret"):
        resume_script(run_dir, model="tiny", base_url=None, headed=False, secrets={"pin": "4321"})


@pytest.mark.model
def test_the_cli_resumes_a_model_run_with_its_own_limits(browser, page_server, tmp_path):
    from agent.cli.resume import resume_run

    def interrupt(messages):
        raise KeyboardInterrupt

    browser.page.goto(f"{page_server}/playground.html")
    agent = Agent(ScriptedModel(["wait(seconds=0.1)", interrupt]), browser, max_steps=2, runs_dir=tmp_path)
    with pytest.raises(KeyboardInterrupt):
        agent.run("Click OK.", start={"url": f"{page_server}/playground.html"})
    assert agent.trajectory is not None

    resume_run(agent.trajectory.run_dir, model="tiny", base_url=None, headed=False, secrets={})

    # The tiny model's random reply does not parse: it counts, up to the run's max_steps (2).
    steps = _assert_whole(agent.trajectory.run_dir, "max_steps", 2)
    assert steps[1].parse_error is not None and steps[1].observation["url"].endswith("/playground.html")



def _cut_before_its_end(tmp_path: Path, meta: dict[str, Any], *steps: tuple[dict[str, Any], bool]) -> Path:
    """A run killed after its last step was written and before its end was."""
    trajectory = Trajectory.create(tmp_path, goal="g", run_id="cut", meta=meta)
    for index, (action, ok) in enumerate(steps, start=1):
        result = ActionResult(ok=ok, error=None if ok else "it failed")
        trajectory.append(Step(index=index, observation={}, model_text="", action=action, result=result))
    trajectory.flush()
    trajectory._jsonl.close()  # no end(): run.json still says running
    return trajectory.run_dir


def test_a_run_whose_last_step_on_disk_ended_it_just_ends_on_resume(browser, tmp_path, page_server):
    meta = {"kind": "agent", "max_steps": 5, "max_retries": 3, "secret_names": [], "allowed_domains": None}
    run_dir = _cut_before_its_end(tmp_path, meta, ({"action": "wait", "seconds": 1}, True),
                                  ({"action": "finish", "answer": "42"}, True))
    model = ScriptedModel([])
    agent = Agent(model, browser, max_steps=5)
    trajectory = agent.drive(agent.resume(run_dir))
    assert (trajectory.outcome, trajectory.answer, len(trajectory), model.calls) == ("finished", "42", 2, [])

    steps = _script(page_server)["steps"]
    script = Script.parse({"steps": steps})
    meta = {"kind": "script", "secret_names": [], "script_digest": _digest(script.steps)}
    failed = _cut_before_its_end(tmp_path / "script", meta, ({"action": "click", "target": "x"}, False))
    runner = ScriptRunner(browser, DOMGrounder(browser))
    trajectory = runner.drive(runner.resume(script, failed))
    assert (trajectory.outcome, len(trajectory)) == ("failed", 1)
    assert trajectory.answer == "step 1 (click): The action failed: it failed"
