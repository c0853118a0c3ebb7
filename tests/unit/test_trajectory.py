"""Trajectories: written per step off the step's path, secrets never on disk, outcome recorded,
a failed write raised, resumed after a kill."""

from __future__ import annotations

import json
import threading
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image

from agent.trajectory import Step, Trajectory
from tools.errors import AgentError
from tools.executor import ActionResult


def _step(index: int, **kw: object) -> Step:
    return Step(index=index, observation={"size": [8, 8]}, model_text="t", **kw)  # type: ignore[arg-type]


def test_each_step_is_on_disk_once_flushed_and_its_image_is_taken_as_appended(tmp_path):
    traj = Trajectory.create(tmp_path, goal="g", run_id="r1")
    image = Image.new("RGB", (8, 8), (255, 0, 0))
    step = traj.append(_step(1, result=ActionResult(ok=True)), image)
    image.paste((0, 0, 255), (0, 0, 8, 8))  # the caller's image changes after the step: the record must not
    assert step.screenshot == "step-001.png" and traj.steps == [step]  # current in this process at once
    traj.flush()
    # Read while the run is still open: nothing may be buffered.
    lines = (tmp_path / "r1" / "steps.jsonl").read_text().splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["screenshot"] == "step-001.png"
    with Image.open(tmp_path / "r1" / "step-001.png") as saved:
        assert saved.getpixel((4, 4)) == (255, 0, 0)
    assert json.loads((tmp_path / "r1" / "run.json").read_text())["outcome"] == "running"
    traj.end("finished")


def test_a_write_that_fails_is_raised_by_the_next_append_and_nothing_after_it_is_written(tmp_path):
    traj = Trajectory.create(tmp_path, goal="g", run_id="full")
    traj.append(_step(1, result=ActionResult(ok=True)), Image.new("RGB", (8, 8)))
    traj.flush()
    (tmp_path / "full" / "step-002.png").mkdir()  # the PNG cannot be written (as on a full disk)
    traj.append(_step(2, result=ActionResult(ok=True)), Image.new("RGB", (8, 8)))
    with pytest.raises(AgentError, match=r"cannot record step 2 in .*resume the run"):
        traj.append(_step(3, result=ActionResult(ok=True)), Image.new("RGB", (8, 8)))
    assert [s.index for s in traj.steps] == [1]  # what the disk holds
    with pytest.raises(AgentError, match="cannot record step 2"):  # every later step is refused
        traj.append(_step(2, result=ActionResult(ok=True)))
    traj.end("error")  # raised already: not raised again
    assert [s.index for s in Trajectory.read_steps(tmp_path / "full")] == [1]
    run = json.loads((tmp_path / "full" / "run.json").read_text())
    assert (run["outcome"], run["steps"]) == ("error", 1)
    (tmp_path / "full" / "step-002.png").rmdir()  # room again: the run goes on from step 2
    resumed = Trajectory.resume(tmp_path / "full")
    resumed.append(_step(2, result=ActionResult(ok=True)), Image.new("RGB", (8, 8)))
    resumed.end("finished")
    assert [s.index for s in Trajectory.read_steps(tmp_path / "full")] == [1, 2]


def test_a_write_that_fails_after_the_last_append_is_raised_by_end(tmp_path):
    traj = Trajectory.create(tmp_path, goal="g", run_id="late")
    (tmp_path / "late" / "step-001.png").mkdir()
    traj.append(_step(1, result=ActionResult(ok=True)), Image.new("RGB", (8, 8)))
    with pytest.raises(AgentError, match="cannot record step 1"):
        traj.end("finished")
    run = json.loads((tmp_path / "late" / "run.json").read_text())
    assert (run["outcome"], run["steps"], traj.outcome, len(traj)) == ("error", 0, "error", 0)
    assert (tmp_path / "late" / "steps.jsonl").read_bytes() == b""


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
        traj.flush()
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
    traj.flush()
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


def test_append_hands_over_one_step_at_a_time_so_a_kill_loses_at_most_one(tmp_path, monkeypatch):
    """The writer is held inside step 1's PNG: the step path goes on, but step 2's append waits
    until step 1 is on disk, and then its line follows step 1's."""
    release, saving = threading.Event(), threading.Event()
    real_save = Image.Image.save

    def held_save(image, fp, *args, **kwargs):
        saving.set()
        release.wait()
        real_save(image, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", held_save)
    traj = Trajectory.create(tmp_path, goal="g", run_id="held")
    traj.append(_step(1, result=ActionResult(ok=True)), Image.new("RGB", (8, 8)))  # returns while held
    assert saving.wait(timeout=60) and len(traj) == 1
    assert (tmp_path / "held" / "steps.jsonl").read_bytes() == b""  # the image comes first
    second = threading.Thread(target=traj.append, args=(_step(2, result=ActionResult(ok=True)),))
    second.start()
    second.join(timeout=0.5)
    assert second.is_alive()  # back-pressure: step 1 is not on disk yet
    release.set()
    second.join(timeout=60)
    traj.end("finished")
    assert [s.index for s in Trajectory.read_steps(tmp_path / "held")] == [1, 2]
