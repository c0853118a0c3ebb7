"""Task files as jobs: each one started, run, checked and stopped (agent/task_run.py), in this
process or in a worker of agent/parallel.py. `internvl-agent tasks DIR` and `bench tasks DIR` use it.

    worker = TaskFileWorker(grounder="dom", runs_dir=Path("runs").resolve())
    batch = run_jobs(worker, task_files(Path("tests/tasks/signup")), workers=2)
    print_table([outcome.as_record() for outcome in batch.results], title="tasks")

Every task starts what its file names (a served folder and a browser, or a program), as it does
when run alone, so a worker reuses nothing of a browser between tasks. A worker in a process
of its own gives desktop tasks an X display of its own (Xvfb), so that two programs never share
a screen. Secrets travel by name: a worker reads their values from its own environment, which
it inherits from this process.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.bench.episodes import EpisodeRecord
from tools.errors import AgentError

if TYPE_CHECKING:
    from agent.task_run import TaskResult, TaskRun
    from model.base import VisionLanguageModel
    from tasks.spec import Task
    from tools.desktop.xvfb import XvfbDisplay

__all__ = ["TaskFileWorker", "TaskOutcome", "run_task_file", "task_files"]


@dataclass(frozen=True)
class TaskOutcome:
    """One task file's result, or why it could not run, with the time per stage of its steps."""

    task: str
    result: TaskResult | None
    seconds: float
    error: str = ""
    how: str = ""  # "steps (dom)": its steps, with that grounder; "goal (model)": its goal, with a model
    goal: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return self.result is not None and self.result.success

    @property
    def why(self) -> str:
        return self.error or (self.result.why if self.result is not None else "")

    def to_json(self) -> dict[str, Any]:
        """`tasks DIR --json`'s object for this task."""
        if self.result is not None:
            return {**self.result.to_json(), "seconds": self.result.seconds}
        return {"task": self.task, "success": False, "outcome": "not run", "steps": 0, "run_dir": None,
                "checks": [], "seconds": self.seconds, "why": self.error}

    def as_record(self) -> EpisodeRecord:
        """The same as a bench record (`bench tasks`' table and JSON); its reward is 1 for a success."""
        result = self.result
        score = 1.0 if self.success else 0.0
        return EpisodeRecord(
            task=self.task, seed=0, policy=self.how, utterance=self.goal, success=self.success, reward=score,
            raw_reward=score, outcome=result.outcome if result is not None else "not run",
            steps=result.steps if result is not None else 0, seconds=self.seconds, timings_ms=self.timings_ms,
            run_dir=result.run_dir if result is not None else None,
            checks=result.checks if result is not None else (), note=self.why or None)


def task_files(folder: Path) -> list[Path]:
    """The task files (*.yaml, *.yml) in `folder`, by name; AgentError when there are none."""
    files = sorted(p for p in folder.glob("*") if p.suffix in (".yaml", ".yml")) if folder.is_dir() else []
    if not files:
        raise AgentError(f"{folder} holds no task files (*.yaml, *.yml): give a folder of them")
    return files


def run_task_file(task: Task, *, grounder: str, model: VisionLanguageModel | None, runs_dir: Path,
                  secrets: dict[str, str], headless: bool = True,
                  on_step: Callable[[int], None] | None = None,
                  watch: Callable[[TaskRun | None], None] | None = None) -> TaskOutcome:
    """One task, start to checks. A task that cannot run (no model for its goal, a program that
    opens no window) is an outcome saying why. `watch` sees the run while it is under way (to
    stop it), then None."""
    from agent.task_run import TaskRun

    how = f"steps ({grounder})" if task.steps is not None else "goal (model)"
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    try:
        with TaskRun(task, grounder=grounder, model=model, runs_dir=runs_dir, secrets=secrets,
                     headless=headless) as run:
            timings["reset"] = (time.monotonic() - t0) * 1e3  # the start: a server, a browser, a program
            if watch is not None:
                watch(run)
            for step in run.steps():
                for stage, ms in step.timings_ms.items():
                    timings[stage] = timings.get(stage, 0.0) + ms
                if on_step is not None:
                    on_step(step.index)
            return TaskOutcome(task.name, run.result(), time.monotonic() - t0, how=how, goal=task.goal or "",
                               timings_ms=timings)
    except AgentError as exc:
        return TaskOutcome(task.name, None, time.monotonic() - t0, error=exc.message, how=how,
                           goal=task.goal or "", timings_ms=timings)
    finally:
        if watch is not None:
            watch(None)


@dataclass
class TaskFileWorker:
    """A worker's task files (jobs: paths). A picklable recipe until `open()`.

    model: in this process only; endpoint: (base_url, model name) of the server workers share.
    own_display: start an Xvfb display for this worker's desktop tasks (set for local workers)."""

    grounder: str = "auto"
    runs_dir: Path = Path("runs")
    secret_names: tuple[str, ...] = ()
    headless: bool = True
    model: VisionLanguageModel | None = None
    endpoint: tuple[str, str] | None = None
    own_display: bool = False
    cpus: float = 1.0  # a browser, or a program on its display
    _secrets: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    _display: XvfbDisplay | None = field(default=None, init=False, repr=False)

    def open(self) -> None:
        if self.endpoint is not None:
            from model.remote import OpenAICompatibleModel

            self.model = OpenAICompatibleModel(*self.endpoint)
        self._secrets = {name: os.environ.get(name, "") for name in self.secret_names}

    def run(self, job: Path) -> TaskOutcome:
        from tasks.spec import Task

        try:
            task = Task.load(job)
        except AgentError as exc:  # checked before the run started: changed since
            return self.failed(job, exc.message)
        if not task.browser and self.own_display and self._display is None:
            from tools.desktop.xvfb import XvfbDisplay

            try:
                self._display = XvfbDisplay(1280, 800).start()
            except AgentError as exc:  # no Xvfb here: this task cannot run, the others may
                return TaskOutcome(task.name, None, 0.0, error=exc.message)
            os.environ["DISPLAY"] = self._display.display  # this worker's process only
        return run_task_file(task, grounder=self.grounder, model=self.model, runs_dir=self.runs_dir,
                             secrets=self._secrets, headless=self.headless)

    def close(self) -> None:
        if self._display is not None:
            self._display.stop()
            self._display = None

    def failed(self, job: Path, why: str) -> TaskOutcome:
        return TaskOutcome(job.stem, None, 0.0, error=why)

    def label(self, job: Path) -> str:
        return job.name
