"""A task file, run end to end: start it, run its steps or its goal, check its success, stop it.

    result = run_task(Task.load("signup.yaml"))                     # its steps, DOM grounder
    result = run_task(task.model_copy(update={"steps": None}), model=model)   # its goal, a model

With steps, a ScriptRunner runs them with the grounder ("dom": the page's markup, a browser
only; "model": `model` finds each target on the screenshot). Without steps, an Agent works
towards the goal with `max_steps` and a SafetyPolicy on `allowed_domains`. Then the success
checks run on the live executor, whatever the outcome, and go into run.json (`checks`,
`success`). A task succeeds when its run finished and its checks pass (no `success:` block:
when its run finished).

`TaskRun` is the same in parts, for callers that follow the steps as they happen (the CLI).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.vault import PLACEHOLDER
from tasks.checks import CheckResult, run_checks
from tasks.spec import Task
from tools.actions import Type
from tools.errors import TaskError

if TYPE_CHECKING:
    from agent.grounding import Grounder
    from agent.runner import Runner
    from agent.trajectory import Step, Trajectory
    from model.base import VisionLanguageModel
    from tasks.start import Started
    from tools.executor import Executor

__all__ = ["GROUNDERS", "TaskResult", "TaskRun", "make_grounder", "refusal", "run_task"]

# auto: DOM -> OCR -> model in a browser, OCR -> model on a desktop (agent/grounding/cascade.py)
GROUNDERS = ("auto", "dom", "ocr", "model")


@dataclass(frozen=True)
class TaskResult:
    """How a task went: its run's outcome and steps, its checks, and the verdict."""

    task: str
    success: bool
    outcome: str
    steps: int
    run_dir: Path
    checks: tuple[CheckResult, ...]
    seconds: float
    answer: str | None = None  # the run's answer: a finish's, a fail's reason, or the step that failed

    def to_json(self) -> dict[str, Any]:
        """The CLI's --json object."""
        return {"task": self.task, "success": self.success, "outcome": self.outcome, "steps": self.steps,
                "run_dir": str(self.run_dir), "checks": [check.to_json() for check in self.checks]}

    @property
    def why(self) -> str:
        """Why it failed, in one line ("" when it succeeded): the run's end, or the first failed check."""
        if self.success:
            return ""
        if self.outcome != "finished":
            return f"the run's outcome was {self.outcome}" + (f": {self.answer}" if self.answer else "")
        failed = next((check for check in self.checks if not check.ok), None)
        return f"{failed.check}: {failed.why}" if failed is not None else "a check failed"


def make_grounder(name: str, executor: Executor, model: VisionLanguageModel | None) -> Grounder:
    """The grounder called `name` (one of GROUNDERS) for `executor`."""
    if name == "dom":
        from agent.grounding.dom import DOMGrounder

        return DOMGrounder(executor)  # type: ignore[arg-type]  # refusal() made sure it is a browser
    if name == "ocr":
        from agent.grounding.ocr import OCRGrounder

        return OCRGrounder()
    if name == "model":
        from agent.grounding.model import ModelGrounder

        assert model is not None
        return ModelGrounder(model)
    from agent.grounding.cascade import auto_grounder

    return auto_grounder(executor, model)


def refusal(task: Task, *, grounder: str, with_model: bool,
            secret_names: Collection[str] | None = None) -> str | None:
    """Why `task` cannot run this way (before anything starts or any model loads), or None.
    `secret_names`: the secrets it will be given, when known (a step may type one it lacks)."""
    if task.steps is None:
        if not with_model:
            return f"task {task.name!r} has no steps: give a model (--model) to work towards its goal"
        return None
    if grounder not in GROUNDERS:
        return f"grounder {grounder!r}: give one of {', '.join(GROUNDERS)}"
    if grounder == "dom" and not task.browser:
        return (f"task {task.name!r} runs on the desktop, and the dom grounder reads web pages: ground "
                "with --grounder ocr, auto or model, or start the task in a browser (start.url, "
                "start.serve, --url)")
    if grounder == "model" and not with_model:
        return "the model grounder needs a model: give --model (or --grounder dom in a browser)"
    for index, step in enumerate(task.steps, start=1):
        wanted = PLACEHOLDER.findall(step.text) if isinstance(step, Type) else []
        missing = [name for name in wanted if secret_names is not None and name not in secret_names]
        if missing:
            return (f"step {index} of task {task.name!r} types the secret {missing[0]!r}, which it was not "
                    f"given: pass it (on the command line, --secret {missing[0]} with its value in that "
                    "environment variable)")
    return None


class TaskRun:
    """One task, in parts: `with TaskRun(task, ...) as run:` starts it; `run.steps()` runs it,
    step by step (`run.runner.stop()` ends it early); `run.result()` checks it and records the
    checks; leaving the block stops what the task started."""

    def __init__(self, task: Task, *, grounder: str = "dom", model: VisionLanguageModel | None = None,
                 runs_dir: Path | str = Path("runs"), secrets: Mapping[str, str] | None = None,
                 headless: bool = True, best_of: int = 1) -> None:
        why = refusal(task, grounder=grounder, with_model=model is not None, secret_names=list(secrets or {}))
        if why is not None:
            raise TaskError(why)
        self.task, self.grounder, self.model = task, grounder, model
        self.runs_dir, self.secrets, self.headless = Path(runs_dir), dict(secrets or {}), headless
        self.best_of = best_of  # replies sampled per step by a model's run (agent.selection)
        self.runner: Runner[Any] | None = None
        self._stack = ExitStack()
        self._started: Started | None = None
        self._t0 = 0.0

    def __enter__(self) -> TaskRun:
        from tasks.start import started

        self._t0 = time.monotonic()
        with ExitStack() as stack:
            self._started = stack.enter_context(started(self.task, headless=self.headless))
            self.runner = self._runner(self._started)
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    def steps(self, *, run_id: str | None = None) -> Iterator[Step]:
        """Run the task; yield each step once it is on disk."""
        assert self.runner is not None and self._started is not None, "use TaskRun in a `with` block"
        job: Any = self.task if self.task.steps is not None else self.task.goal
        start = {"url": self._started.url} if self._started.url else {}  # run.json's, for a resume
        if self.task.source is not None:
            start["task"] = str(self.task.source)
        return self.runner.steps(job, run_id=run_id, start=start)

    def result(self) -> TaskResult:
        """Check the task's success on the live executor; record the checks in run.json."""
        assert self.runner is not None and self._started is not None, "use TaskRun in a `with` block"
        trajectory: Trajectory | None = self.runner.trajectory
        assert trajectory is not None, "run the steps first"
        checks: tuple[CheckResult, ...] = ()
        if self.task.success is not None:
            from agent.grounding.ocr import screen_text

            checks = tuple(run_checks(self.task.success, self._started.executor, answer=trajectory.answer,
                                      base_dir=self.task.folder, read_text=screen_text))
        success = trajectory.outcome == "finished" and (not checks or checks[-1].ok)
        trajectory.record(task=self.task.name, success=success, checks=[check.to_json() for check in checks])
        return TaskResult(task=self.task.name, success=success, outcome=trajectory.outcome,
                          steps=len(trajectory), run_dir=trajectory.run_dir, checks=checks,
                          seconds=round(time.monotonic() - self._t0, 3), answer=trajectory.answer)

    def _runner(self, start: Started) -> Runner[Any]:
        if self.task.steps is not None:
            from agent.script import ScriptRunner

            grounder = make_grounder(self.grounder, start.executor, self.model)
            return ScriptRunner(start.executor, grounder, runs_dir=self.runs_dir, secrets=self.secrets)
        from agent.loop import Agent
        from agent.safety import SafetyPolicy

        assert self.model is not None
        safety = SafetyPolicy(allowed_domains=self.task.allowed_domains, strict=self.task.strict)
        return Agent(self.model, start.executor, max_steps=self.task.max_steps, runs_dir=self.runs_dir,
                     secrets=self.secrets, safety=safety, best_of=self.best_of,
                     surface="web browser" if self.task.browser else "desktop")


def run_task(task: Task, *, grounder: str = "dom", model: VisionLanguageModel | None = None,
             runs_dir: Path = Path("runs"), secrets: Mapping[str, str] | None = None, headless: bool = True,
             run_id: str | None = None) -> TaskResult:
    """Start `task`, run it (its steps with `grounder`, else its goal with `model`), check it, stop it."""
    with TaskRun(task, grounder=grounder, model=model, runs_dir=runs_dir, secrets=secrets,
                 headless=headless) as run:
        for _ in run.steps(run_id=run_id):
            pass
        return run.result()
