"""The trajectory's writer: one thread that writes a run's steps in order, one at a time."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

__all__ = ["StepWriter"]


class StepWriter:
    """One thread that runs a trajectory's writes in order, one step at a time: `submit` waits
    until the step before is on disk, so a kill finds at most one step unwritten (back-pressure
    keeps it so when the disk is slower than the steps). The PNG encoder and the file writes
    release the GIL, so the write overlaps the next step's settle, capture and model call."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trajectory-writer")
        self._pending: Future[None] | None = None
        self._failure: Exception | None = None
        self._reported = False

    def submit(self, write: Callable[[], None]) -> None:
        self.wait()
        self._pending = self._pool.submit(write)

    def wait(self) -> None:
        """Until what was submitted is on disk; raises what a write raised (now, and on every
        later call: nothing is written after a step that was not)."""
        if self._pending is not None:
            try:
                self._pending.result()
            except Exception as exc:
                self._failure = exc
            self._pending = None  # not reached on Ctrl-C while waiting: the next wait waits again
        if self._failure is not None:
            self._reported = True
            raise self._failure

    def close(self) -> Exception | None:
        """Wait for the last write and stop the thread; a failure that no `wait` raised yet."""
        reported = self._reported
        try:
            self.wait()
        except Exception as exc:
            return None if reported else exc
        finally:
            self._pool.shutdown()
        return None
