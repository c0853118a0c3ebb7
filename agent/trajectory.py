"""Step records on disk: `runs/<id>/steps.jsonl` plus one `step-NNN.png` per step.

Each step is written off the step's path by the trajectory's writer thread: its screenshot,
then its line (fsynced), then run.json. A line never names an image that is not on disk, and
`append` hands a step over only once the one before is written, so a kill loses at most the
step in flight. In this process the trajectory is always current (`steps`); `flush()`,
`record()` and `end()` wait for the writer, and a failed write (a full disk) is raised by the
next `append`, `flush` or `end`. `run.json` holds the goal, what a resume needs (the runner's
meta), and is rewritten atomically after each step (`steps`, `last_step_at`), so a killed run
shows how far it got; once the run ends, it holds the outcome. `Trajectory.resume` reopens a
run that was killed, crashed or stopped, to go on from its next step.
Secrets never reach disk: the agent's secrets and any text typed with secret=True are
redacted before a step is handed to the writer (screenshots are not: see the README).
"""

from __future__ import annotations

import json
import logging
import os
import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from secrets import token_hex
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agent.recovery import check_indices, check_screenshots, lock, whole_lines
from agent.redaction import Redactor
from agent.step_writer import StepWriter
from tools.errors import AgentError
from tools.executor import ActionResult

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["RESUMABLE", "Outcome", "RunEnd", "Step", "Trajectory", "new_run_id"]

log = logging.getLogger(__name__)

Outcome = Literal["running", "finished", "failed", "max_steps", "max_seconds", "too_many_errors", "looping",
                  "blocked", "stopped", "error"]
# A run that ended on its own is over; one that was killed (still `running` on disk), crashed
# (`error`) or stopped by its user can go on.
RESUMABLE: tuple[Outcome, ...] = ("running", "error", "stopped")
# run.json keys the trajectory owns; the rest is the runner's meta.
_OWN_KEYS = ("goal", "outcome", "answer", "steps", "started_at", "last_step_at", "elapsed_s")


def new_run_id() -> str:
    """Sortable by time, unique across concurrent runs."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + token_hex(3)


class Step(BaseModel):
    """One model call and what came of it: the unit of a trajectory."""

    model_config = ConfigDict(frozen=True)

    index: int
    observation: dict[str, Any]
    model_text: str
    action: dict[str, Any] | None = None
    parse_error: str | None = None
    result: ActionResult | None = None
    grounded: dict[str, list[int]] | None = None  # each target in words -> the [x, y] pixel it was found at
    # each target in words -> {box, point, score, source[, tried]}: how and by whom it was found
    grounding: dict[str, dict[str, Any]] | None = None
    timings_ms: dict[str, float] = Field(default_factory=dict)
    screenshot: str | None = None
    # a reply of several calls: each {action, result}, in order (`action`/`result` sum them up)
    calls: list[dict[str, Any]] | None = None
    # the images the step's tools returned, saved beside it (agent.tool_images: step-NNN-tool-K.png)
    tool_images: list[str] | None = None
    # agent/replay: a script step's targets, each {found: "as written" | "healed" | "no", by, ...};
    # an agent's step on a pixel, {element: {description, role, name, box}} read before it acted
    replay: dict[str, Any] | None = None
    # Best-of-N: every sampled reply, each {text, action, group, score, picked} (agent.selection)
    candidates: list[dict[str, Any]] | None = None

    @property
    def ok(self) -> bool:
        return self.parse_error is None and self.result is not None and self.result.ok

    def feedback(self) -> str | None:
        """What the model should be told about this step's failure, if it failed."""
        if self.parse_error is not None:
            return f"Your reply could not be used: {self.parse_error}"
        if self.result is not None and not self.result.ok:
            return f"The action failed: {self.result.error}"
        return None


def redact(step: Step, redactor: Redactor) -> Step:
    """Replace every spelling of every secret, wherever it appears in the record (keys too:
    `grounded` is keyed by descriptions in words), except in the action's name: a name is
    one of ours, and a secret that happens to be part of one ("n" in "finish") must not
    change what the record says was done."""
    if not redactor:
        return step
    record = redactor.value(step.model_dump(mode="json"))
    if step.action is not None and "action" in step.action:
        record["action"]["action"] = step.action["action"]
    for entry, shown in [*zip(step.calls or (), record.get("calls") or (), strict=True),
                         *zip(step.candidates or (), record.get("candidates") or (), strict=True)]:
        if isinstance(entry.get("action"), dict) and "action" in entry["action"]:
            shown["action"]["action"] = entry["action"]["action"]
    return Step.model_validate(record)


@dataclass
class RunEnd:
    """How a run ended, set by its loop inside Trajectory.running."""

    outcome: Outcome
    answer: str | None = None


class Trajectory:
    """An append-only run directory. Also readable after the fact with `read_steps`, and
    reopened to go on with `resume`."""

    def __init__(self, run_dir: Path, *, goal: str, meta: dict[str, Any] | None = None,
                 secret_values: Sequence[str] = ()) -> None:
        self._setup(run_dir, goal=goal, meta=meta, secret_values=secret_values)
        run_dir.mkdir(parents=True, exist_ok=True)
        try:  # "x": two runs must never interleave their steps in one file
            self._jsonl = (run_dir / "steps.jsonl").open("xb")
        except FileExistsError:
            raise AgentError(
                f"{run_dir} already holds a run: pick another run_id, or remove that directory"
            ) from None
        lock(self._jsonl, run_dir)
        self._write_run_json()

    def _setup(self, run_dir: Path, *, goal: str, meta: dict[str, Any] | None,
               secret_values: Sequence[str], started_at: str | None = None, elapsed_s: float = 0.0) -> None:
        self.run_dir = run_dir
        self.goal = goal
        self.steps: list[Step] = []
        self.outcome: Outcome = "running"
        self.answer: str | None = None
        self.output: Any = None  # a typed run's validated answer (Agent(output_type=...))
        self._meta = dict(meta or {})
        # Known before run.json is first written: the goal may hold one.
        self.redactor = Redactor(secret_values)
        self._started_at = started_at or _now()
        self._last_step_at: str | None = None
        self._elapsed_before = elapsed_s  # seconds spent by the processes that ran it before this one
        self._opened = time.monotonic()
        self._writer = StepWriter()
        self._written = 0  # lines of steps.jsonl on disk (and fsynced)

    @classmethod
    def create(cls, runs_dir: Path | str, *, goal: str, run_id: str | None = None,
               meta: dict[str, Any] | None = None, secret_values: Sequence[str] = ()) -> Trajectory:
        return cls(Path(runs_dir) / (run_id or new_run_id()), goal=goal, meta=meta,
                   secret_values=secret_values)

    @classmethod
    def resume(cls, run_dir: Path | str, *, secret_values: Sequence[str] = ()) -> Trajectory:
        """Reopen a run that did not end on its own (see RESUMABLE), to append its next steps.

        The steps on disk come back in `steps`. A last line cut short by the kill is dropped
        and the file truncated to the last whole line, so appends stay valid JSON Lines. A
        step whose screenshot is lost is kept (see recovery.check_screenshots). run.json's
        meta stays; `resumes` in it lists when each resume began. `secret_values`: the run's
        secrets, given again (disk never had them)."""
        run_dir = Path(run_dir)
        record = cls.read_run(run_dir)
        if record.get("outcome") not in RESUMABLE:
            raise AgentError(f"{run_dir} ended as {record.get('outcome')!r}: only a run that was killed, "
                             f"crashed or stopped ({', '.join(RESUMABLE)}) can be resumed")
        trajectory = cls.__new__(cls)
        meta = {k: v for k, v in record.items() if k not in _OWN_KEYS}
        trajectory._setup(run_dir, goal=str(record.get("goal", "")), meta=meta, secret_values=secret_values,
                          started_at=record.get("started_at"),
                          elapsed_s=float(record.get("elapsed_s") or 0.0))
        path = run_dir / "steps.jsonl"
        try:
            jsonl = path.open("a+b")  # appends go to the end, wherever a read or truncate left off
        except OSError as exc:
            raise AgentError(f"cannot open {path}: {exc.strerror or exc}") from None
        try:
            lock(jsonl, run_dir)
            jsonl.seek(0)
            steps, complete = whole_lines(jsonl.read(), Step.model_validate_json, where=path)
            if complete < jsonl.tell():
                log.warning("%s: dropping a last line cut short (%d bytes)", path, jsonl.tell() - complete)
                jsonl.truncate(complete)
                os.fsync(jsonl.fileno())
            check_indices([step.index for step in steps], path)
        except BaseException:
            jsonl.close()
            raise
        trajectory._jsonl = jsonl
        trajectory.steps = steps
        trajectory._written = len(steps)
        trajectory._last_step_at = record.get("last_step_at")
        check_screenshots(run_dir, [(step.index, step.screenshot) for step in steps], len(steps))
        resumes = [*trajectory._meta.get("resumes", []), {"at": _now(), "after_step": len(steps)}]
        trajectory._meta["resumes"] = resumes
        trajectory._write_run_json()
        return trajectory

    @staticmethod
    def read_run(run_dir: Path | str) -> dict[str, Any]:
        """run.json of a run directory, as a dict; AgentError if there is none to read."""
        path = Path(run_dir) / "run.json"
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise AgentError(f"{run_dir} holds no run (no run.json): give a directory under runs/") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise AgentError(f"{path} cannot be read ({exc}): the run cannot be resumed") from None
        if not isinstance(record, dict):
            raise AgentError(f"{path} is not a run record (a JSON object)")
        return record

    @property
    def meta(self) -> dict[str, Any]:
        """The runner's part of run.json (a copy): limits, start, secret names, kind."""
        return dict(self._meta)

    @property
    def elapsed_s(self) -> float:
        """Seconds the run has been going, over every process that ran it (downtime excluded)."""
        return self._elapsed_before + time.monotonic() - self._opened

    def add_secret(self, text: str) -> None:
        """Register text that must never be written, from this step on; run.json (whose goal
        may hold it) is rewritten at once."""
        if self.redactor.add(text):
            self.flush()
            self._write_run_json()

    def record(self, **fields: Any) -> None:
        """Merge `fields` into run.json now, secrets redacted; also after the run has ended (a
        task's success checks are recorded so)."""
        self.flush()
        self._meta.update(fields)
        self._write_run_json()

    def append(self, step: Step, screenshot: Image | None = None) -> Step:
        """Record the step (redacted) and its screenshot: at once in `steps`, and on disk by
        the writer thread (screenshot, then line, then run.json), once the step before is
        there. The step as recorded; raises the AgentError of an earlier step's failed write."""
        self.flush()
        if screenshot is not None:
            step = step.model_copy(update={"screenshot": f"step-{step.index:03d}.png"})
            screenshot = screenshot.copy()  # 0.1 ms: the caller may go on using (or changing) its image
        step = redact(step, self.redactor)
        self.steps.append(step)
        self._last_step_at = _now()
        run_json = self._run_json()
        self._writer.submit(lambda: self._write(step, screenshot, run_json))
        return step

    def flush(self) -> None:
        """Wait until every step appended so far is on disk; raises the AgentError of a write
        that failed (then `steps` holds only the steps on disk)."""
        try:
            self._writer.wait()
        except Exception:
            del self.steps[self._written:]
            raise

    def _write(self, step: Step, screenshot: Image | None, run_json: bytes) -> None:
        """In the writer thread: the screenshot, then the line (fsynced), then run.json."""
        try:
            if screenshot is not None and step.screenshot is not None:
                # zlib level 1 with the run-length strategy: as fast as level 1 alone, and smaller
                # (22 KiB vs 28 KiB, 9 ms for the demo page); level 6 takes 14 ms.
                screenshot.save(self.run_dir / step.screenshot, format="PNG", compress_level=1,
                                compress_type=zlib.Z_RLE)
            self._jsonl.write(step.model_dump_json().encode("utf-8") + b"\n")
            self._jsonl.flush()
            os.fsync(self._jsonl.fileno())
            self._written += 1
            self._replace_run_json(run_json, durable=False)
        except OSError as exc:
            raise AgentError(f"cannot record step {step.index} in {self.run_dir} ({exc.strerror or exc}): "
                             "make room on that disk, then resume the run") from exc

    @contextmanager
    def running(self, outcome: Outcome) -> Iterator[RunEnd]:
        """Around a run's loop: ends the trajectory with the outcome the loop sets on the
        yielded RunEnd (`outcome` unless it says otherwise), `stopped` if the caller or the
        user stops it, `error` if it raises; the steps so far are on disk either way."""
        end = RunEnd(outcome)
        try:
            yield end
        except (GeneratorExit, KeyboardInterrupt):
            end.outcome = "stopped"
            raise
        except BaseException:
            end.outcome = "error"
            raise
        finally:
            self.end(end.outcome, end.answer)

    def end(self, outcome: Outcome, answer: str | None = None) -> None:
        """Wait for the writer, then record the outcome. A write that failed and was not raised
        yet is raised here, after run.json records the run as `error` (resumable)."""
        failure = self._writer.close()
        if failure is not None:
            del self.steps[self._written:]
            outcome = "error"
        self.outcome = outcome
        self.answer = self.redactor.value(answer)  # the model may write a secret into its answer
        try:
            self._write_run_json()
        finally:
            self._jsonl.close()
        if failure is not None:
            raise failure

    def _write_run_json(self) -> None:
        self._replace_run_json(self._run_json(), durable=True)

    def _run_json(self) -> bytes:
        record = {
            "goal": self.goal,
            "outcome": self.outcome,
            "answer": self.answer,
            "steps": len(self.steps),
            "started_at": self._started_at,
            "last_step_at": self._last_step_at,
            "elapsed_s": round(self.elapsed_s, 3),
            **self._meta,
        }
        return json.dumps(self.redactor.value(record), indent=2).encode("utf-8")

    def _replace_run_json(self, data: bytes, *, durable: bool) -> None:
        """Atomically (a reader sees the old file or the new, never half of one), and `durable`:
        fsynced, so that a power cut keeps it too. Each step's update is not: an fsync here would
        also flush that step's PNG (+8 ms a step, measured), and steps.jsonl (fsynced) is what a
        resume counts; the resume's needs (goal, limits, start, secrets' names) are written
        durably when the run is created, resumed, recorded or ended. On a filesystem that may put
        a rename on disk before the data it names (XFS; ext4 mounted noauto_da_alloc), a power
        cut in a step's update can empty run.json."""
        tmp = self.run_dir / "run.json.tmp"
        with tmp.open("wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        tmp.replace(self.run_dir / "run.json")

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    @staticmethod
    def read_steps(run_dir: Path | str) -> list[Step]:
        """Load the steps of a run directory (for reports, resume and tests). A last line cut
        short by a kill is skipped: the step being written then was never complete."""
        path = Path(run_dir) / "steps.jsonl"
        return whole_lines(path.read_bytes(), Step.model_validate_json, where=path)[0]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
