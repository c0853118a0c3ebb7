"""What every kind of run shares: `run`, `steps`, `stop`, and the trajectory it writes.

`Agent` (a model decides each step) and `ScriptRunner` (the steps are written down) are
both a `Runner`: `steps(job)` yields each `Step` once it is on disk, `run(job)` drives
`steps` to the end and returns the `Trajectory`, and `stop()` ends a run after the step in
flight. The CLI follows any Runner the same way.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Generic, TypeVar

from agent.trajectory import Step, Trajectory

__all__ = ["Runner"]

Job = TypeVar("Job")


class Runner(ABC, Generic[Job]):
    """A run of `Job` (a goal, a script) on an executor, one recorded Step at a time."""

    trajectory: Trajectory | None = None

    def __init__(self) -> None:
        self.trajectory = None
        self._stop = threading.Event()

    def stop(self) -> None:
        """End the run after the step in flight, as outcome `stopped`. Safe to call from another
        thread or a signal handler: unlike an exception, it never cuts a browser call in half."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self, job: Job, *, run_id: str | None = None) -> Trajectory:
        """Run `job` to its end; the trajectory, also kept as `self.trajectory`."""
        for _ in self.steps(job, run_id=run_id):
            pass
        assert self.trajectory is not None
        return self.trajectory

    @abstractmethod
    def steps(self, job: Job, *, run_id: str | None = None) -> Iterator[Step]:
        """Yield each step of the run as soon as it is on disk."""

    def _begin(self, trajectory: Trajectory) -> Trajectory:
        """Make `trajectory` this run's, and clear a stop left from an earlier run."""
        self.trajectory = trajectory
        self._stop.clear()
        return trajectory
