"""Step records on disk: `runs/<id>/steps.jsonl` plus one `step-NNN.png` per step.

Each step is written and flushed as it happens, so a crash or a kill loses at most the
step in flight. `run.json` holds the goal and, once the run ends, its outcome.
Secrets never reach disk: the agent's secrets and any text typed with secret=True are
redacted from both files before each write (screenshots are not: see the README).
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tools.errors import AgentError
from tools.executor import ActionResult

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["Outcome", "Step", "Trajectory", "new_run_id"]

Outcome = Literal["running", "finished", "failed", "max_steps", "max_seconds", "too_many_errors", "looping",
                  "blocked", "stopped", "error"]
REDACTED = "[secret]"


def new_run_id() -> str:
    """Sortable by time, unique across concurrent runs."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


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
    """Replace every secret, wherever it appears in the record."""
    if not any(secret_texts):
        return step
    return Step.model_validate(_scrub(step.model_dump(mode="json"), secret_texts))


def _scrub(value: Any, secret_texts: Sequence[str]) -> Any:
    """`value` (JSON-like) with each secret replaced by REDACTED.

    The model may have written a secret escaped (inside a JSON string or a Python call), so
    each is also looked for in its escaped spellings, the longest first.
    """
    variants = sorted({v for t in secret_texts if t for v in (t, json.dumps(t)[1:-1], repr(t)[1:-1])},
                      key=len, reverse=True)

    def scrub(value: Any) -> Any:
        if isinstance(value, str):
            for v in variants:
                value = value.replace(v, REDACTED)
            return value
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [scrub(v) for v in value]
        return value

    return scrub(value)


class Trajectory:
    """An append-only run directory. Also readable after the fact with `load`."""

    def __init__(self, run_dir: Path, *, goal: str, meta: dict[str, Any] | None = None,
                 secrets: Sequence[str] = ()) -> None:
        self.run_dir = run_dir
        self.goal = goal
        self.steps: list[Step] = []
        self.outcome: Outcome = "running"
        self.answer: str | None = None
        self._meta = dict(meta or {})
        self._secrets: list[str] = []
        for text in secrets:  # before run.json is first written: the goal may hold one
            self.add_secret(text)
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
               meta: dict[str, Any] | None = None, secrets: Sequence[str] = ()) -> Trajectory:
        return cls(Path(runs_dir) / (run_id or new_run_id()), goal=goal, meta=meta, secrets=secrets)

    @property
    def steps_path(self) -> Path:
        return self.run_dir / "steps.jsonl"

    def add_secret(self, text: str) -> None:
        """Register text that must never be written, from this step on (run.json included)."""
        if text and text not in self._secrets:
            self._secrets.append(text)

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

    def end(self, outcome: Outcome, answer: str | None = None) -> None:
        self.outcome = outcome
        self.answer = answer
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
        with path.open(encoding="utf-8") as f:
            return [Step.model_validate_json(line) for line in f if line.strip()]
