"""Independent jobs (MiniWoB episodes, task files) on N workers, each holding what its jobs reuse.

    batch = run_jobs(MiniWoBWorker(...), [("click-button", 0), ("click-button", 1)], workers=2)
    batch = run_jobs(worker, jobs, workers=4, ray="auto")       # Ray actors; or ray="HOST:PORT"
    batch.results                                                 # one per finished job, in the jobs' order

A `Worker` is a picklable recipe: `open()` starts, in the worker's process, what its jobs share
(a browser, an X display), `run(job)` does one job, `close()` stops it all, and `failed(job, why)`
is the record of a job that never finished. One worker runs in this process; more run as
local processes (`concurrent.futures`, spawn), or as Ray actors that each ask for `worker.cpus`
CPUs. This module only keeps each worker's next job (DEPTH) queued: the engines move the jobs
and the results, and Ray places the actors.

Each local worker is a one-process ProcessPoolExecutor, and each actor runs its calls in order,
so when a worker dies we know the job it was running. That job runs once more on a fresh worker
(a new process, a new browser), then counts as failed with the reason; the jobs queued behind it
go back to the others. An exception raised by a job is a bug: the workers stop and it is
raised here. Ctrl-C kills the workers (their browsers go with them) and returns what finished,
with `interrupted` set.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from tools.errors import AgentError

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

__all__ = ["INSTALL_RAY", "TEST_DIE_ENV", "Batch", "Worker", "check_ray", "run_jobs"]

log = logging.getLogger(__name__)

J = TypeVar("J")
R = TypeVar("R")

INSTALL_RAY = "--ray needs Ray, which is not installed: pip install 'internvl-agent[scale]'"
ATTEMPTS = 2  # a job whose worker dies runs once more, then counts as failed
# Jobs handed to a worker at a time: the next one waits in its queue, so the worker starts it
# without waiting for this process to be scheduled (on a busy machine, that wait can be as long
# as a short episode). A worker runs its jobs in order, so the first unfinished one is the one
# it was running when it died.
DEPTH = 2

# Test-only: "LABEL=FILE". A worker about to run the job labelled LABEL kills its own process
# while FILE holds a count above 0, after lowering it by one: the retry tests make a worker die
# this way. Never set it outside the tests.
TEST_DIE_ENV = "INTERNVL_AGENT_TEST_DIE"


class Worker(Protocol[J, R]):
    """What a worker does with its jobs (a picklable recipe; its state starts in `open`)."""

    cpus: float  # what one worker needs (its browser): a Ray actor asks for this many CPUs

    def open(self) -> None: ...

    def run(self, job: J) -> R: ...

    def close(self) -> None: ...

    def failed(self, job: J, why: str) -> R: ...

    def label(self, job: J) -> str: ...


@dataclass(frozen=True)
class Batch(Generic[R]):
    """The results of the jobs that finished, in the jobs' order (all of them unless interrupted)."""

    results: list[R]
    interrupted: bool = False


def check_ray() -> None:
    """AgentError, with the install line, when Ray cannot be imported."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise AgentError(INSTALL_RAY) from None


def run_jobs(worker: Worker[J, R], jobs: Sequence[J], *, workers: int = 1, ray: str | None = None,
             on_result: Callable[[R], None] | None = None) -> Batch[R]:
    """Run every job on `workers` workers: in this process for one, else in local processes, or
    as Ray actors with `ray` ("auto": a local Ray of `workers` CPUs, unless RAY_ADDRESS names a
    cluster; or an address to connect to). `on_result` sees each result as it comes, in any order."""
    if workers < 1:
        raise AgentError(f"--workers must be at least 1, not {workers}")
    if ray is not None:
        check_ray()
        with _RaySession(ray, workers * worker.cpus):
            return _run_on_slots(worker, jobs, min(workers, len(jobs)), _RaySlot, on_result)
    if workers == 1:
        return _run_here(worker, jobs, on_result)
    return _run_on_slots(worker, jobs, min(workers, len(jobs)), _LocalSlot, on_result)


def _run_here(worker: Worker[J, R], jobs: Sequence[J], on_result: Callable[[R], None] | None) -> Batch[R]:
    results: list[R] = []
    worker.open()
    try:
        for job in jobs:
            results.append(worker.run(job))
            if on_result is not None:
                on_result(results[-1])
    except KeyboardInterrupt:
        return Batch(results, interrupted=True)
    finally:
        worker.close()
    return Batch(results)


class _Slot(Protocol):
    """One worker, wherever it runs: a job at a time."""

    def submit(self, job: Any) -> Future[Any]: ...

    def died(self, error: BaseException) -> str | None: ...  # why, if `error` means the worker died

    def close(self) -> None: ...

    def kill(self) -> None: ...


def _run_on_slots(worker: Worker[J, R], jobs: Sequence[J], count: int, make: Callable[[Any], _Slot],
                  on_result: Callable[[R], None] | None) -> Batch[R]:
    done: dict[int, R] = {}
    attempts = [0] * len(jobs)
    waiting = list(range(len(jobs)))[::-1]  # popped from the end: the jobs' order
    queued: dict[_Slot, list[tuple[Future[Any], int]]] = {}  # per worker, in the order it runs them
    slots: list[_Slot] = []

    def top_up(slot: _Slot) -> None:
        while waiting and len(queued[slot]) < DEPTH:
            index = waiting.pop()
            attempts[index] += 1
            queued[slot].append((slot.submit(jobs[index]), index))

    def add_worker() -> None:
        slots.append(make(worker))
        queued[slots[-1]] = []
        top_up(slots[-1])

    def finish(index: int, result: R) -> None:
        done[index] = result
        if on_result is not None:
            on_result(result)

    def lost(slot: _Slot, why: str) -> None:
        """The worker died: what it finished counts, the job it was running (its first unfinished
        one) is charged an attempt, the ones waiting behind it go back untouched."""
        log.warning("a worker died (%s)", why)
        slot.kill()
        slots.remove(slot)
        unfinished = []
        for future, index in queued.pop(slot):
            if future.done() and future.exception() is None:
                finish(index, future.result())
            else:
                unfinished.append(index)
        for position, index in enumerate(reversed(unfinished)):  # the culprit ends up next to run
            if position == len(unfinished) - 1 and attempts[index] >= ATTEMPTS:
                log.warning("%s failed: its worker died twice", worker.label(jobs[index]))
                finish(index, worker.failed(jobs[index], f"its worker died twice ({why})"))
                continue
            if position < len(unfinished) - 1:
                attempts[index] -= 1  # it never ran
            waiting.append(index)
        if waiting:  # a fresh worker in its place
            add_worker()

    try:
        for _ in range(count):
            add_worker()
        while any(queued.values()):
            running = [future for queue in queued.values() for future, _ in queue]
            wait(running, return_when=FIRST_COMPLETED)
            for slot in list(queued):
                while slot in queued and queued[slot] and queued[slot][0][0].done():
                    future, index = queued[slot][0]
                    error = future.exception()
                    if error is None:
                        queued[slot].pop(0)
                        finish(index, future.result())
                        top_up(slot)
                        continue
                    why = slot.died(error)
                    if why is None:
                        raise error  # a bug in the job: the `finally` stops the workers
                    lost(slot, why)
    except KeyboardInterrupt:
        for slot in slots:
            slot.kill()
        slots.clear()
        return Batch([done[index] for index in sorted(done)], interrupted=True)
    finally:
        for slot in slots:
            if queued.get(slot):  # still busy (an error is on its way up): its jobs are abandoned
                slot.kill()
            else:
                slot.close()
    return Batch([done[index] for index in range(len(jobs))])


# -- in the worker's process ------------------------------------------------------------------

_opened: Worker[Any, Any] | None = None


def _open_here(worker: Worker[Any, Any]) -> None:
    """A local worker's start: its own process group, so a terminal's Ctrl-C reaches only the
    parent (which then kills the workers), not them nor their browsers half-way through a job."""
    global _opened
    os.setpgrp()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    worker.open()
    _opened = worker


def _run_here_one(job: Any) -> Any:
    assert _opened is not None
    _die_if_told(_opened.label(job))
    return _opened.run(job)


def _close_here() -> None:
    global _opened
    if _opened is not None:
        _opened.close()
        _opened = None


def _die_if_told(label: str) -> None:
    """The test-only hook (TEST_DIE_ENV)."""
    told = os.environ.get(TEST_DIE_ENV, "")
    wanted, _, counter = told.partition("=")
    if not counter or wanted != label:
        return
    path = Path(counter)
    left = int(path.read_text().strip() or 0)
    if left > 0:
        path.write_text(f"{left - 1}\n")
        os.kill(os.getpid(), signal.SIGKILL)


# -- local processes ------------------------------------------------------------------------------

class _LocalSlot:
    """A worker in a process of its own (spawned: a fresh interpreter, a fresh browser)."""

    def __init__(self, worker: Worker[Any, Any]) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.pool: ProcessPoolExecutor = ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("spawn"), initializer=_open_here, initargs=(worker,))
        self.process: Any = None

    def submit(self, job: Any) -> Future[Any]:
        from concurrent.futures.process import BrokenProcessPool

        try:
            future = self.pool.submit(_run_here_one, job)
        except BrokenProcessPool as exc:  # it died since its last result: say so the way a running job would
            future = Future()
            future.set_exception(exc)
            return future
        if self.process is None:  # spawned by the first submit; kept for its exit code and to kill it
            self.process = next(iter(self.pool._processes.values()), None)  # no public way
        return future

    def died(self, error: BaseException) -> str | None:
        from concurrent.futures.process import BrokenProcessPool

        if not isinstance(error, BrokenProcessPool):
            return None
        code = None
        if self.process is not None:  # the pool reaps it a moment after it fails the future
            self.process.join(timeout=5)
            code = self.process.exitcode
        if code is not None and code < 0:
            return f"its process was killed by {signal.Signals(-code).name}"
        return f"its process exited with code {code}" if code is not None else "its process ended"

    def close(self) -> None:
        try:
            self.pool.submit(_close_here).result(timeout=60)
        except Exception as exc:  # broken, or its browser would not close: the process goes anyway
            log.warning("a worker did not close cleanly: %s", exc)
            self.kill()
        self.pool.shutdown(wait=True, cancel_futures=True)

    def kill(self) -> None:
        if self.process is not None and self.process.is_alive():
            self.process.kill()  # its Playwright driver sees the pipe close and takes the browser down
        self.pool.shutdown(wait=False, cancel_futures=True)


# -- Ray ---------------------------------------------------------------------------------------------

class _RaySession:
    """ray.init for the run, unless Ray is already up (then it stays up); ray.shutdown after."""

    def __init__(self, address: str, cpus: float) -> None:
        self.address, self.cpus, self.started = address, cpus, False

    def __enter__(self) -> _RaySession:
        import ray

        if ray.is_initialized():
            return self
        options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
        if self.address != "auto":
            options["address"] = self.address
        elif not os.environ.get("RAY_ADDRESS"):
            options["num_cpus"] = max(1, round(self.cpus))  # a local Ray, as wide as the run
        try:
            ray.init(**options)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise AgentError(f"--ray {self.address}: Ray did not start ({first}): give 'auto' for a "
                             "local Ray, or the address of a running cluster (ray start --head)") from exc
        self.started = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.started:
            import ray

            ray.shutdown()


class _RaySlot:
    """A worker as a Ray actor asking for the CPUs its browser needs."""

    def __init__(self, worker: Worker[Any, Any]) -> None:
        self.actor = _actor_class().options(num_cpus=worker.cpus).remote(worker)

    def submit(self, job: Any) -> Future[Any]:
        return self.actor.run.remote(job).future()  # type: ignore[no-any-return]

    def died(self, error: BaseException) -> str | None:
        from ray.exceptions import RayActorError

        if not isinstance(error, RayActorError):
            return None
        return str(error).strip().splitlines()[0]

    def close(self) -> None:
        import ray

        try:
            ray.get(self.actor.close.remote(), timeout=60)
        except Exception as exc:  # it died meanwhile, or its browser would not close
            log.warning("a Ray worker did not close cleanly: %s", exc)
        ray.kill(self.actor)

    def kill(self) -> None:
        import ray

        ray.kill(self.actor)


def _actor_class() -> Any:
    """The actor, made once Ray is imported (Ray stays an optional dependency)."""
    global _actor
    if _actor is None:
        import ray

        class WorkerActor:
            def __init__(self, worker: Worker[Any, Any]) -> None:
                worker.open()
                self.worker = worker

            def run(self, job: Any) -> Any:
                _die_if_told(self.worker.label(job))
                return self.worker.run(job)

            def close(self) -> None:
                self.worker.close()

        _actor = ray.remote(max_restarts=0, max_task_retries=0)(WorkerActor)
    return _actor


_actor: Any = None
