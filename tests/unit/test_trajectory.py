"""Trajectories: flushed per step, secrets never on disk, outcome recorded."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from agent.trajectory import Step, Trajectory
from tools.errors import AgentError
from tools.executor import ActionResult


def _step(index: int, **kw: object) -> Step:
    return Step(index=index, observation={"size": [8, 8]}, model_text="t", **kw)  # type: ignore[arg-type]


def test_each_step_is_on_disk_before_append_returns(tmp_path):
    traj = Trajectory.create(tmp_path, goal="g", run_id="r1")
    traj.append(_step(1, result=ActionResult(ok=True)), Image.new("RGB", (8, 8)))
    # Read while the run is still open: nothing may be buffered.
    lines = (tmp_path / "r1" / "steps.jsonl").read_text().splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["screenshot"] == "step-001.png"
    assert (tmp_path / "r1" / "step-001.png").exists()
    assert json.loads((tmp_path / "r1" / "run.json").read_text())["outcome"] == "running"
    traj.end("finished")


def test_secret_text_is_redacted_everywhere_in_the_record(tmp_path):
    traj = Trajectory.create(tmp_path, goal="log in", run_id="r2")
    traj.add_secret('hunter"2')
    traj.append(_step(1, action={"action": "type", "text": 'hunter"2', "secret": True},
                      result=ActionResult(ok=True)))
    traj.append(Step(index=2, observation={}, model_text='type(text="hunter\\"2", secret=True)'))
    traj.end("finished")
    raw = (tmp_path / "r2" / "steps.jsonl").read_text()
    assert "hunter" not in raw
    assert Trajectory.read_steps(tmp_path / "r2")[0].action == {"action": "type", "text": "[secret]",
                                                                 "secret": True}


def test_end_records_outcome_and_answer(tmp_path):
    traj = Trajectory.create(tmp_path, goal="g", run_id="r3")
    traj.append(_step(1, parse_error="no action found"))
    traj.end("max_steps")
    run = json.loads((tmp_path / "r3" / "run.json").read_text())
    assert run == {"goal": "g", "outcome": "max_steps", "answer": None, "steps": 1}
    [step] = Trajectory.read_steps(tmp_path / "r3")
    assert not step.ok and "no action found" in (step.feedback() or "")


def test_a_run_id_that_is_taken_is_refused_not_mixed(tmp_path):
    Trajectory.create(tmp_path, goal="g", run_id="same").end("finished")
    with pytest.raises(AgentError, match="already holds a run"):
        Trajectory.create(tmp_path, goal="g", run_id="same")
