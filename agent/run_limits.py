"""When a run ends: its limits, as run.json records them, and the rules a resume goes by."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent.trajectory import Outcome, Step
from tools.errors import AgentError

__all__ = ["Limits", "ended_by", "failures_at_end"]


@dataclass(frozen=True)
class Limits:
    """What bounds a run: recorded in run.json, and what a resume goes by."""

    max_steps: int
    max_seconds: float | None
    max_retries: int

    def record(self) -> dict[str, int | float | None]:
        return {"max_steps": self.max_steps, "max_seconds": self.max_seconds, "max_retries": self.max_retries}

    @classmethod
    def of(cls, meta: Mapping[str, Any]) -> Limits:
        try:
            seconds = meta.get("max_seconds")
            return cls(int(meta["max_steps"]), None if seconds is None else float(seconds),
                       int(meta.get("max_retries", 3)))
        except (KeyError, TypeError, ValueError):
            raise AgentError("run.json records no usable limits (max_steps, max_seconds, max_retries): "
                             "this run cannot be resumed") from None


def failures_at_end(steps: Sequence[Step]) -> int:
    """Unusable replies and failed actions in a row at the end of `steps`."""
    count = 0
    for step in reversed(steps):
        if step.ok:
            break
        count += 1
    return count


def ended_by(steps: Sequence[Step], limits: Limits) -> tuple[Outcome, str | None] | None:
    """How the run ended at its last recorded step, if that step ended it: for a resume of a
    run killed after its last step was written and before its end was."""
    if not steps:
        return None
    last = steps[-1]
    action = last.action or {}
    if last.ok and action.get("action") == "finish":
        return "finished", action.get("answer")
    if last.ok and action.get("action") == "fail":
        return "failed", action.get("reason")
    if failures_at_end(steps) > limits.max_retries:
        return "too_many_errors", None
    return None
