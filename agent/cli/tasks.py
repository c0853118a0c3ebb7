"""`internvl-agent tasks DIR`: every task file in a folder, run and checked, with a table at the end."""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agent.cli.app import app
from agent.cli.common import MODEL_HELP, RunsDir, load_model, secrets_from_environment
from tools.errors import AgentError

if TYPE_CHECKING:
    from agent.task_run import TaskResult, TaskRun
    from model.base import VisionLanguageModel
    from tasks.spec import Task

__all__ = ["tasks"]


@dataclass(frozen=True)
class _Row:
    """One task's line in the table: its result, or why it could not run."""

    task: str
    result: TaskResult | None
    seconds: float
    error: str = ""

    @property
    def success(self) -> bool:
        return self.result is not None and self.result.success

    @property
    def why(self) -> str:
        return self.error or (self.result.why if self.result is not None else "")

    def to_json(self) -> dict[str, Any]:
        if self.result is not None:
            return {**self.result.to_json(), "seconds": self.result.seconds}
        return {"task": self.task, "success": False, "outcome": "not run", "steps": 0, "run_dir": None,
                "checks": [], "seconds": self.seconds, "why": self.error}


@app.command()
def tasks(
    folder: Annotated[Path, typer.Argument(help="A folder of task files (*.yaml, *.yml).")],
    grounder: Annotated[str, typer.Option(
        help="How tasks with steps find their targets: 'auto' (the page's markup, then OCR, then the "
        "model if given), 'dom', 'ocr' or 'model'.")] = "auto",
    model: Annotated[str | None, typer.Option(
        help=MODEL_HELP + " Runs the goal of each task that has no steps, and grounds with --grounder model. "
        "Without it, tasks with no steps fail as not run.")] = None,
    base_url: Annotated[str | None, typer.Option(
        help="Use a model served over an OpenAI-compatible API at this URL.")] = None,
    headed: Annotated[bool, typer.Option(help="Show the browser windows.")] = False,
    runs_dir: RunsDir = Path("runs"),
    secret: Annotated[list[str] | None, typer.Option(
        help="The name of an environment variable holding a secret (typed as <secret>NAME</secret>). "
        "Repeatable.")] = None,
    json_file: Annotated[Path | None, typer.Option(
        "--json", help="Also write the results to this file: a JSON list, one object a task.")] = None,
) -> None:
    """Run every task file in FOLDER (its steps with the grounder, or its goal with the model), then
    print a table. Exits with 1 unless every task succeeds."""
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from agent.task_run import GROUNDERS
    from tasks.spec import Task

    if grounder not in GROUNDERS:
        raise AgentError(f"--grounder {grounder!r}: give one of {', '.join(GROUNDERS)}")
    if grounder == "model" and model is None:
        raise AgentError("--grounder model needs --model")
    files = sorted(p for p in folder.glob("*") if p.suffix in (".yaml", ".yml")) if folder.is_dir() else []
    if not files:
        raise AgentError(f"{folder} holds no task files (*.yaml, *.yml): give a folder of them")
    loaded = [Task.load(path) for path in files]  # every file is checked before anything runs
    secrets = secrets_from_environment(secret or [])
    console = Console(stderr=True)
    vlm = None
    if model is not None:
        with console.status(f"loading model {model}"):
            vlm = load_model(model, base_url)
    rows: list[_Row] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress, _ctrl_c_stops() as stopper:
        bar = progress.add_task("tasks", total=len(loaded))
        for task in loaded:
            def on_step(index: int, name: str = escape(task.name)) -> None:
                progress.update(bar, description=f"{name}: step {index}" if index else name)

            on_step(0)
            rows.append(_run_one(task, grounder=grounder, model=vlm, runs_dir=runs_dir, secrets=secrets,
                                 headed=headed, stopper=stopper, on_step=on_step))
            progress.advance(bar)
            if stopper.stopped:
                break
    _print_table(rows)
    if json_file is not None:
        json_file.write_text(json.dumps([row.to_json() for row in rows], indent=2) + "\n", encoding="utf-8")
    if stopper.stopped:
        print(f"internvl-agent: interrupted after {len(rows)} of {len(loaded)} tasks", file=sys.stderr)
        raise typer.Exit(130)
    if not all(row.success for row in rows):
        raise typer.Exit(1)


def _run_one(task: Task, *, grounder: str, model: VisionLanguageModel | None, runs_dir: Path,
             secrets: dict[str, str], headed: bool, stopper: _Stopper,
             on_step: Callable[[int], None]) -> _Row:
    """One task, start to checks; a task that cannot run (no model for its goal, a program that
    opens no window) is a row saying why, and the others go on."""
    from agent.task_run import TaskRun

    t0 = time.monotonic()
    try:
        with TaskRun(task, grounder=grounder, model=model, runs_dir=runs_dir, secrets=secrets,
                     headless=not headed) as run:
            stopper.current = run
            for step in run.steps():
                on_step(step.index)
            return _Row(task.name, run.result(), time.monotonic() - t0)
    except AgentError as exc:
        return _Row(task.name, None, time.monotonic() - t0, error=exc.message)
    finally:
        stopper.current = None


class _Stopper:
    """What the first Ctrl-C stops: the run in flight, after its step, and the tasks after it."""

    def __init__(self) -> None:
        self.current: TaskRun | None = None
        self.stopped = False


@contextmanager
def _ctrl_c_stops() -> Iterator[_Stopper]:
    """The first Ctrl-C ends the run in flight after its step, and no task starts after it; a
    second one stops at once."""
    stopper = _Stopper()

    def on_ctrl_c(signum: int, frame: object) -> None:
        stopper.stopped = True
        if stopper.current is not None and stopper.current.runner is not None:
            stopper.current.runner.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        yield stopper
    finally:
        signal.signal(signal.SIGINT, previous)


def _print_table(rows: list[_Row]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table("task", "success", "steps", "seconds", "why", title="tasks")
    for row in rows:
        steps = str(row.result.steps) if row.result is not None else "-"
        ok = "[green]yes[/]" if row.success else "[red]no[/]"
        table.add_row(escape(row.task), ok, steps, f"{row.seconds:.1f}", escape(row.why))
    passed = sum(row.success for row in rows)
    console = Console(width=None if sys.stdout.isatty() else 200)  # a log: not cut at 80 columns
    console.print(table)
    console.print(f"{passed} of {len(rows)} tasks succeeded", highlight=False)

