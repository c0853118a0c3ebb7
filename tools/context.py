"""What a tool may ask for beyond its arguments: the run's context, and a way to ask again.

A tool parameter annotated `RunContext` (or `RunContext[Deps]`) is filled by the agent and
left out of the schema the model reads. A tool that raises `ToolRetry("why")` has its
reason sent back to the model, which may call it again (bounded by the agent's max_retries).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar, get_origin

__all__ = ["RunContext", "ToolRetry", "is_context_type"]

Deps = TypeVar("Deps")


@dataclass(frozen=True)
class RunContext(Generic[Deps]):
    """Given to a tool that asks for it: the agent's `deps`, the run's id and the step's index.
    `run_dir`: the run's directory (where a tool that runs an agent keeps the child run), and
    `record_child`: how such a tool links the child run into the run's record (run.json).
    `stopping`: whether the run was asked to stop, so that a tool that runs long (a child agent)
    can end early."""

    deps: Deps
    run_id: str = ""
    step: int = 0
    run_dir: Path | None = None
    record_child: Callable[[Mapping[str, Any]], None] | None = None
    stopping: Callable[[], bool] | None = None


class ToolRetry(Exception):
    """Raised by a tool to tell the model what to change before calling it again."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def is_context_type(hint: Any) -> bool:
    """Whether a parameter's type hint asks for the RunContext."""
    return hint is RunContext or get_origin(hint) is RunContext
