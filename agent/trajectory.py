"""Step records on disk: `runs/<id>/steps.jsonl` plus one `step-NNN.png` per step.

Each step is written and flushed as it happens, so a crash or a kill loses at most the
step in flight. `run.json` holds the goal and, once the run ends, its outcome.
Secrets never reach disk: the agent's secrets and any text typed with secret=True are
redacted from both files before each write (screenshots are not: see the README).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from secrets import token_hex
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, quote_plus

from pydantic import BaseModel, ConfigDict, Field

from tools.errors import AgentError
from tools.executor import ActionResult

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["Outcome", "RunEnd", "Step", "Trajectory", "new_run_id"]

Outcome = Literal["running", "finished", "failed", "max_steps", "max_seconds", "too_many_errors", "looping",
                  "blocked", "stopped", "error"]
REDACTED = "[secret]"


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
    timings_ms: dict[str, float] = Field(default_factory=dict)
    screenshot: str | None = None

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


def redact(step: Step, secret_texts: Sequence[str]) -> Step:
    """Replace every secret, wherever it appears in the record, except in the action's name:
    a name is one of ours, and a secret that happens to be part of one ("n" in "finish")
    must not change what the record says was done."""
    if not any(secret_texts):
        return step
    record = _scrub(step.model_dump(mode="json"), secret_texts)
    if step.action is not None and "action" in step.action:
        record["action"]["action"] = step.action["action"]
    return Step.model_validate(record)


def _spellings(text: str) -> set[str]:
    """The ways a secret may appear in a record: as it is, escaped inside a JSON string (ASCII
    or not) or a Python one, and percent-encoded in a URL (a form sent with GET)."""
    return {text, json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1], repr(text)[1:-1],
            quote(text, safe=""), quote_plus(text)}


def _scrub(value: Any, secret_texts: Sequence[str]) -> Any:
    """`value` (JSON-like, keys included) with each spelling of each secret replaced by
    REDACTED, the longest first."""
    variants = sorted({v for t in secret_texts if t for v in _spellings(t)}, key=len, reverse=True)

    def scrub(value: Any) -> Any:
        if isinstance(value, str):
            for v in variants:
                value = value.replace(v, REDACTED)
            return value
        if isinstance(value, dict):  # keys too: `grounded` is keyed by descriptions in words
            return {scrub(k): scrub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [scrub(v) for v in value]
        return value

    return scrub(value)


@dataclass
class RunEnd:
    """How a run ended, set by its loop inside Trajectory.running."""

    outcome: Outcome
    answer: str | None = None


class Trajectory:
    """An append-only run directory. Also readable after the fact with `load`."""

    def __init__(self, run_dir: Path, *, goal: str, meta: dict[str, Any] | None = None,
                 secret_values: Sequence[str] = ()) -> None:
        self.run_dir = run_dir
        self.goal = goal
        self.steps: list[Step] = []
        self.outcome: Outcome = "running"
        self.answer: str | None = None
        self._meta = dict(meta or {})
        # Known before run.json is first written: the goal may hold one.
        self._secrets: list[str] = list(dict.fromkeys(text for text in secret_values if text))
        run_dir.mkdir(parents=True, exist_ok=True)
        try:  # "x": two runs must never interleave their steps in one file
            self._jsonl = (run_dir / "steps.jsonl").open("x", encoding="utf-8")
        except FileExistsError:
            raise AgentError(
                f"{run_dir} already holds a run: pick another run_id, or remove that directory"
            ) from None
        self._write_run_json()

    @classmethod
    def create(cls, runs_dir: Path | str, *, goal: str, run_id: str | None = None,
               meta: dict[str, Any] | None = None, secret_values: Sequence[str] = ()) -> Trajectory:
        return cls(Path(runs_dir) / (run_id or new_run_id()), goal=goal, meta=meta,
                   secret_values=secret_values)

    def add_secret(self, text: str) -> None:
        """Register text that must never be written, from this step on; run.json (whose goal
        may hold it) is rewritten at once."""
        if text and text not in self._secrets:
            self._secrets.append(text)
            self._write_run_json()

    def append(self, step: Step, screenshot: Image | None = None) -> Step:
        """Write the step (and its screenshot) and flush both to disk before returning."""
        if screenshot is not None:
            name = f"step-{step.index:03d}.png"
            # zlib level 1, not 6: the write is on the step path (7 ms vs 11 ms for the demo page here).
            screenshot.save(self.run_dir / name, compress_level=1)
            step = step.model_copy(update={"screenshot": name})
        step = redact(step, self._secrets)
        self._jsonl.write(step.model_dump_json() + "\n")
        self._jsonl.flush()
        os.fsync(self._jsonl.fileno())
        self.steps.append(step)
        return step

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
        self.outcome = outcome
        self.answer = _scrub(answer, self._secrets)  # the model may write a secret into its answer
        self._write_run_json()
        self._jsonl.close()

    def _write_run_json(self) -> None:
        record = {
            "goal": self.goal,
            "outcome": self.outcome,
            "answer": self.answer,
            "steps": len(self.steps),
            **self._meta,
        }
        tmp = self.run_dir / "run.json.tmp"
        tmp.write_text(json.dumps(_scrub(record, self._secrets), indent=2), encoding="utf-8")
        tmp.replace(self.run_dir / "run.json")

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    @staticmethod
    def read_steps(run_dir: Path | str) -> list[Step]:
        """Load the steps of a run directory (for reports, resume and tests)."""
        path = Path(run_dir) / "steps.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines.pop()  # the step being written when the process was killed: never complete
        return [Step.model_validate_json(line) for line in lines if line.strip()]
