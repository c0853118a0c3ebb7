"""A SIGKILL at any moment of a run leaves a steps.jsonl whose every line has its image.

A child process runs the real agent loop (Agent, a scripted model) on a screen that costs
almost nothing to look at or act on, so its steps are mostly recording: a fresh 1280x720
screenshot with a band of noise each step (slow to encode, large to write), handed to the
trajectory's writer thread. The screen is a stand-in for a browser on purpose: a browser would only make
the steps longer, and the kills land less often inside a write. The test kills the child
with SIGKILL at seeded random moments and then reads what the disk holds, as a resume would.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from PIL import Image

from agent.trajectory import Step, Trajectory
from tools.executor import ActionResult

ROOT = Path(__file__).resolve().parents[2]
SIZE = (1280, 720)
KILLS = 6
SEED = 20261206


class NoiseScreen:
    """An executor whose screen is new noise at every look; its actions always succeed."""

    def observe(self) -> Any:
        from tools.executor import Geometry, Observation

        image = Image.new("RGB", SIZE, (250, 250, 250))
        band = (SIZE[0], SIZE[1] // 3)
        image.paste(Image.merge("RGB", [Image.effect_noise(band, 40 + 10 * k) for k in range(3)]), (0, 200))
        return Observation(image=image, geometry=Geometry.identity(*SIZE), url="about:noise", title="noise")

    def execute(self, action: Any) -> ActionResult:
        return ActionResult(ok=True)

    def close(self) -> None:
        pass

    def __enter__(self) -> NoiseScreen:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass


def child(runs: str, ready: str) -> None:
    """The run to kill: clicks at points that never repeat (no loop detection), until killed."""
    from agent.loop import Agent
    from model.scripted import ScriptedModel

    def reply(messages: Any) -> str:
        Path(ready).touch()
        reply.calls += 1  # type: ignore[attr-defined]
        n = reply.calls  # type: ignore[attr-defined]
        return f"click(x={n % 997}, y={n * 7 % 991})"

    reply.calls = 0  # type: ignore[attr-defined]
    steps = 100_000
    agent = Agent(ScriptedModel([reply] * steps), NoiseScreen(), max_steps=steps, runs_dir=runs)
    agent.run("click around until killed", run_id="killed")


def _run_and_kill(tmp_path: Path, after_s: float) -> Path:
    """Start `child`, let it run `after_s` seconds past its first model call, SIGKILL it."""
    ready, runs = tmp_path / "ready", tmp_path / "runs"
    code = ("import sys; sys.path.insert(0, sys.argv[1]); "
            "from tests.integration.test_recording_kill import child; child(sys.argv[2], sys.argv[3])")
    with open(tmp_path / "child.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", code, str(ROOT), str(runs), str(ready)], cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert proc.poll() is None, (tmp_path / "child.log").read_text()
            assert time.monotonic() < deadline, "the child never started its run"
            time.sleep(0.01)
        time.sleep(after_s)
        assert proc.poll() is None, (tmp_path / "child.log").read_text()
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    return runs / "killed"


def _whole_lines(run_dir: Path) -> list[dict[str, Any]]:
    """Each newline-ended line of steps.jsonl, parsed. Only a tail with no newline may be cut
    short (a kill inside the write call of a line), and a resume drops it."""
    whole = (run_dir / "steps.jsonl").read_bytes().rpartition(b"\n")[0]
    return [json.loads(line) for line in whole.split(b"\n")] if whole else []


def test_a_sigkill_at_any_moment_leaves_every_line_with_its_whole_image(tmp_path: Path) -> None:
    moments = random.Random(SEED)
    for kill in range(KILLS):
        where = tmp_path / f"kill-{kill}"
        where.mkdir()
        run_dir = _run_and_kill(where, after_s=moments.uniform(0.0, 1.5))

        records = _whole_lines(run_dir)
        assert [r["index"] for r in records] == list(range(1, len(records) + 1))
        for record in records:
            Step.model_validate(record)
            with Image.open(run_dir / record["screenshot"]) as image:
                image.load()  # every byte of it: a PNG cut short raises here
                assert image.size == SIZE
        run = json.loads((run_dir / "run.json").read_text())
        # run.json follows each line: it may be one step behind, never ahead
        assert run["outcome"] == "running" and run["steps"] in (len(records), len(records) - 1)

        resumed = Trajectory.resume(run_dir)
        assert [s.index for s in resumed.steps] == [r["index"] for r in records]
        later = sorted(p.name for p in run_dir.glob("step-*.png") if int(p.stem[5:]) > len(records))
        assert later == []  # the screenshot of a step whose line was never written is gone
        resumed.append(Step(index=len(records) + 1, observation={}, model_text="after the kill",
                            result=ActionResult(ok=True)), Image.new("RGB", (8, 8)))
        resumed.end("stopped")
        assert [s.index for s in Trajectory.read_steps(run_dir)] == list(range(1, len(records) + 2))
