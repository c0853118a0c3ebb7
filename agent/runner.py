"""What every kind of run shares: `run`, `steps`, `stop`, and the trajectory it writes.

`Agent` (a model decides each step) and `ScriptRunner` (the steps are written down) are
both a `Runner`: `steps(job)` yields each `Step` once it is on disk, `run(job)` drives
`steps` to the end and returns the `Trajectory`, and `stop()` ends a run after the step in
flight. The CLI follows any Runner the same way. Each also has a `resume` that goes on with
a run a kill, a crash or a stop left unfinished; the helpers here reopen it for them.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

from pydantic import ValidationError

from agent.trajectory import Step, Trajectory
from agent.vault import Secrets
from tools.actions import Navigate
from tools.errors import AgentError
from tools.executor import Executor

__all__ = ["Kind", "Runner", "Start"]

log = logging.getLogger(__name__)

Job = TypeVar("Job")
Kind = Literal["agent", "script"]
# Where a run starts, recorded in run.json for a resume: {"url": ...} for a browser, and the
# file it came from ({"script": path} or {"task": path}) when there is one.
Start = Mapping[str, str]


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

    def run(self, job: Job, *, run_id: str | None = None, start: Start | None = None) -> Trajectory:
        """Run `job` to its end; the trajectory, also kept as `self.trajectory`."""
        return self.drive(self.steps(job, run_id=run_id, start=start))

    def drive(self, steps: Iterator[Step]) -> Trajectory:
        """Drive `steps` (from `steps()` or `resume()`) to the end; the trajectory."""
        for _ in steps:
            pass
        assert self.trajectory is not None
        return self.trajectory

    @abstractmethod
    def steps(self, job: Job, *, run_id: str | None = None, start: Start | None = None) -> Iterator[Step]:
        """Yield each step of the run as soon as it is recorded (on disk before the next step
        acts). `start` goes into run.json, for a resume (see Start)."""

    def _begin(self, trajectory: Trajectory) -> Trajectory:
        """Make `trajectory` this run's, and clear a stop left from an earlier run."""
        self.trajectory = trajectory
        self._stop.clear()
        return trajectory

    def _resumed(self, run_dir: Path | str, kind: Kind, secrets: Secrets,
                 check: Callable[[dict[str, Any]], object] | None = None) -> Trajectory:
        """The run in `run_dir`, reopened as this run's, once it is known to be a run of this
        kind that was given the same secrets (by name: values never reach disk), and `check`
        (the runner's own) has not refused its run.json. Nothing is touched before then."""
        record = Trajectory.read_run(run_dir)
        if record.get("kind") != kind:
            was = record.get("kind") or "a run that records no kind (written before resume existed)"
            raise AgentError(f"{run_dir} is {was}, not a {kind} run: resume it as what it is")
        recorded = list(record.get("secret_names") or [])
        if sorted(recorded) != sorted(secrets.names):
            names = ", ".join(recorded) or "none"
            raise AgentError(f"{run_dir} ran with the secrets named {names}; give exactly those again "
                             f"(given: {', '.join(secrets.names) or 'none'})")
        if check is not None:
            check(record)
        return self._begin(Trajectory.resume(run_dir, secret_values=secrets.values))

    @staticmethod
    def _reopen(executor: Executor, trajectory: Trajectory, allows: Callable[[str], bool] | None = None,
                start_url: str | None = None) -> str | None:
        """Take a browser back to where the run was: the page of its last step (or, before any,
        its start URL), unless `allows` refuses it. `start_url`: where the run starts now, when
        that moved (a folder served again on a new port): pages on the old start's origin are
        opened on the new one. The URL it went to, or None (a desktop run, or the executor is
        there already). A page's state (a form half filled) does not come back."""
        started = (trajectory.meta.get("start") or {}).get("url")
        candidates = [url for url in (_last_url(trajectory.steps), started, start_url) if url]
        if start_url and started:
            candidates = [_moved(url, started, start_url) for url in candidates]
        candidates = [url for url in candidates if allows is None or allows(url)]
        if not candidates:
            return None
        url = candidates[0]
        if executor.observe().url == url:
            return None
        try:
            action = Navigate(url=url)
        except ValidationError:
            raise AgentError(f"cannot reopen {url!r}: not a URL the browser can open") from None
        result = executor.execute(action)
        if not result.ok:
            raise AgentError(f"cannot reopen {url} to resume the run: {result.error}")
        log.info("resuming %s on %s", trajectory.run_dir, url)
        return url


def _last_url(steps: Sequence[Step]) -> Any:
    """Where the last step left the browser, as far as the record says: the address a
    `navigate` went to, or else the page the step was taken on (its observation's url; None on
    a desktop). A click that followed a link is not known to have moved: it was on that page."""
    if not steps:
        return None
    last = steps[-1]
    action = last.action or {}
    if last.ok and action.get("action") == "navigate" and isinstance(action.get("url"), str):
        return action["url"]
    return last.observation.get("url")


def _moved(url: str, old_start: str, new_start: str) -> str:
    """`url` on the new start's origin (scheme, host and port) if it was on the old start's."""
    parts, old, new = urlsplit(url), urlsplit(old_start), urlsplit(new_start)
    if (parts.scheme, parts.netloc) != (old.scheme, old.netloc):
        return url
    return urlunsplit(parts._replace(scheme=new.scheme, netloc=new.netloc))
