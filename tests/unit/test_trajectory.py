"""Trajectories: flushed per step, secrets never on disk, outcome recorded, resumed after a kill."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

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
    assert {k: run[k] for k in ("goal", "outcome", "answer", "steps")} == {
        "goal": "g", "outcome": "max_steps", "answer": None, "steps": 1}
    assert run["started_at"] <= run["last_step_at"] and run["elapsed_s"] >= 0
    [step] = Trajectory.read_steps(tmp_path / "r3")
    assert not step.ok and "no action found" in (step.feedback() or "")


def test_a_run_id_that_is_taken_is_refused_not_mixed(tmp_path):
    Trajectory.create(tmp_path, goal="g", run_id="same").end("finished")
    with pytest.raises(AgentError, match="already holds a run"):
        Trajectory.create(tmp_path, goal="g", run_id="same")


def test_run_json_is_current_after_each_step(tmp_path):
    traj = Trajectory.create(tmp_path, goal="g", run_id="now", meta={"kind": "agent", "max_steps": 5})
    first = json.loads((tmp_path / "now" / "run.json").read_text())
    assert (first["outcome"], first["steps"], first["last_step_at"]) == ("running", 0, None)
    seen = []
    for index in (1, 2, 3):
        traj.append(_step(index, result=ActionResult(ok=True)))
        run = json.loads((tmp_path / "now" / "run.json").read_text())  # read while the run goes on
        seen.append(run["last_step_at"])
        assert (run["outcome"], run["steps"], run["kind"], run["max_steps"]) == ("running", index, "agent", 5)
        assert datetime.fromisoformat(run["last_step_at"]).tzinfo is not None
    assert seen == sorted(seen)
    assert not (tmp_path / "now" / "run.json.tmp").exists()  # written beside, then moved over
    traj.end("finished")


def _killed_run(tmp_path, steps=2, *, tail: bytes = b"") -> Path:
    """A run directory as a SIGKILL leaves it: `steps` whole lines, then `tail`, outcome running."""
    traj = Trajectory.create(tmp_path, goal="g", run_id="killed", meta={"kind": "agent", "max_steps": 9})
    for index in range(1, steps + 1):
        traj.append(_step(index, result=ActionResult(ok=True)), Image.new("RGB", (8, 8)))
    traj._jsonl.write(tail)
    traj._jsonl.close()  # the process is gone: no end(), so run.json still says running
    return tmp_path / "killed"


def test_resume_drops_a_cut_last_line_and_appends_after_the_last_whole_one(tmp_path):
    run_dir = _killed_run(tmp_path, tail=b'{"index": 3, "observation": {}, "mod')
    traj = Trajectory.resume(run_dir)
    assert [s.index for s in traj.steps] == [1, 2]
    assert (run_dir / "steps.jsonl").read_bytes().endswith(b"}\n")  # truncated to the last whole line
    traj.append(_step(3, result=ActionResult(ok=True)))
    traj.end("finished")
    assert [s.index for s in Trajectory.read_steps(run_dir)] == [1, 2, 3]
    run = json.loads((run_dir / "run.json").read_text())
    assert (run["outcome"], run["steps"], run["kind"], run["max_steps"]) == ("finished", 3, "agent", 9)
    assert [r["after_step"] for r in run["resumes"]] == [2]


@pytest.mark.parametrize("tail", [b"\x00" * 300, b'{"index": 3, "obs\x00\x00\x00\x00"}\n'])
def test_resume_drops_the_zeros_a_power_cut_leaves_in_place_of_a_line(tmp_path, tail):
    run_dir = _killed_run(tmp_path, tail=tail)
    traj = Trajectory.resume(run_dir)
    assert len(traj) == 2 and b"\x00" not in (run_dir / "steps.jsonl").read_bytes()
    traj.end("stopped")


def test_a_step_whose_screenshot_was_lost_is_kept_and_a_screenshot_with_no_line_is_removed(tmp_path):
    run_dir = _killed_run(tmp_path, steps=2)
    (run_dir / "step-002.png").write_bytes(b"")  # its data never reached the disk
    Image.new("RGB", (8, 8)).save(run_dir / "step-003.png")  # killed between the PNG and the line
    traj = Trajectory.resume(run_dir)
    assert [s.index for s in traj.steps] == [1, 2]
    assert not (run_dir / "step-003.png").exists() and (run_dir / "step-001.png").exists()
    traj.end("stopped")


def test_a_run_still_being_written_cannot_be_resumed(tmp_path):
    traj = Trajectory.create(tmp_path, goal="g", run_id="live")
    with pytest.raises(AgentError, match="still running"):
        Trajectory.resume(tmp_path / "live")
    traj.end("finished")


@pytest.mark.parametrize("outcome", ["finished", "failed", "max_steps", "too_many_errors"])
def test_a_run_that_ended_on_its_own_is_not_resumed(tmp_path, outcome):
    Trajectory.create(tmp_path, goal="g", run_id="over").end(outcome)
    with pytest.raises(AgentError, match=f"ended as '{outcome}'"):
        Trajectory.resume(tmp_path / "over")


def test_damage_that_no_kill_causes_is_an_error_not_a_silent_drop(tmp_path):
    run_dir = _killed_run(tmp_path, steps=1, tail=b"not json\n" + _step(2).model_dump_json().encode() + b"\n")
    with pytest.raises(AgentError, match="line 2 is not a step record"):
        Trajectory.resume(run_dir)
    last = _killed_run(tmp_path / "last", steps=1, tail=b'{"index": "not a number"}\n')  # whole, yet wrong
    with pytest.raises(AgentError, match="line 2 is not a step record"):
        Trajectory.resume(last)
    gap = _killed_run(tmp_path / "gap", steps=1, tail=_step(3).model_dump_json().encode() + b"\n")
    with pytest.raises(AgentError, match="step 3 where step 2 should be"):
        Trajectory.resume(gap)


def test_no_run_json_is_one_clear_error(tmp_path):
    with pytest.raises(AgentError, match="holds no run"):
        Trajectory.resume(tmp_path)
