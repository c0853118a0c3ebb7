"""`internvl-agent tasks DIR`: every task file in a folder, run and checked, with a table at the end
(`--workers N`: N at a time, agent/parallel.py; `bench tasks DIR` tabulates the same runs by stage)."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from agent.cli.app import app
from agent.cli.common import MODEL_HELP, BaseUrl, RunsDir, load_model, secrets_from_environment
from tools.errors import AgentError

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from agent.bench.task_files import TaskOutcome
    from agent.task_run import TaskRun
    from model.base import VisionLanguageModel
    from tasks.spec import Task

__all__ = ["tasks"]


@app.command()
def tasks(
    folder: Annotated[Path, typer.Argument(help="A folder of task files (*.yaml, *.yml).")],
    grounder: Annotated[str, typer.Option(
        help="How tasks with steps find their targets: 'auto' (the page's markup, then OCR, then the "
        "model if given), 'dom', 'ocr' or 'model'.")] = "auto",
    model: Annotated[str | None, typer.Option(
        help=MODEL_HELP + " Runs the goal of each task that has no steps, and grounds with --grounder model. "
        "Without it, tasks with no steps fail as not run.")] = None,
    base_url: BaseUrl = None,
    headed: Annotated[bool, typer.Option(help="Show the browser windows.")] = False,
    runs_dir: RunsDir = Path("runs"),
    secret: Annotated[list[str] | None, typer.Option(
        help="The name of an environment variable holding a secret (typed as <secret>NAME</secret>). "
        "Repeatable.")] = None,
    json_file: Annotated[Path | None, typer.Option(
        "--json", help="Also write the results to this file: a JSON list, one object a task.")] = None,
    workers: Annotated[int, typer.Option(
        min=1, help="Run N task files at a time, each in a process of its own (desktop tasks on an X "
        "display of their own). With --model, needs --base-url: the workers share the server.")] = 1,
) -> None:
    """Run every task file in FOLDER (its steps with the grounder, or its goal with the model), then
    print a table. Exits with 1 unless every task succeeds."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from agent.bench.miniwob import LOCAL_MODEL_IN_WORKERS
    from agent.bench.task_files import TaskFileWorker, task_files
    from agent.parallel import run_jobs
    from agent.task_run import GROUNDERS
    from tasks.spec import Task

    if grounder not in GROUNDERS:
        raise AgentError(f"--grounder {grounder!r}: give one of {', '.join(GROUNDERS)}")
    if grounder == "model" and model is None:
        raise AgentError("--grounder model needs --model")
    if workers > 1 and model is not None and base_url is None:
        raise AgentError(LOCAL_MODEL_IN_WORKERS.format(workers=workers))
    files = task_files(folder)
    loaded = [Task.load(path) for path in files]  # every file is checked before anything runs
    secrets = secrets_from_environment(secret or [])
    console = Console(stderr=True)
    vlm = None
    if model is not None:
        with console.status(f"loading model {model}"):
            vlm = load_model(model, base_url)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("tasks", total=len(loaded))
        if workers > 1:
            worker = TaskFileWorker(grounder, runs_dir, tuple(secrets), headless=not headed,
                                    endpoint=(base_url, model) if base_url and model else None,
                                    own_display=True)
            batch = run_jobs(worker, files, workers=workers, on_result=lambda row: progress.advance(bar))
            rows, stopped = batch.results, batch.interrupted
        else:
            rows, stopped = _run_here(loaded, progress, bar, grounder=grounder, model=vlm, runs_dir=runs_dir,
                                      secrets=secrets, headed=headed)
    _print_table(rows)
    if json_file is not None:
        json_file.write_text(json.dumps([row.to_json() for row in rows], indent=2) + "\n", encoding="utf-8")
    if stopped:
        print(f"internvl-agent: interrupted after {len(rows)} of {len(loaded)} tasks", file=sys.stderr)
        raise typer.Exit(130)
    if not all(row.success for row in rows):
        raise typer.Exit(1)


def _run_here(loaded: list[Task], progress: Progress, bar: TaskID, *, grounder: str,
              model: VisionLanguageModel | None, runs_dir: Path, secrets: dict[str, str],
              headed: bool) -> tuple[list[TaskOutcome], bool]:
    """One task after another in this process, showing each step; the first Ctrl-C ends the run
    in flight after its step, and no task starts after it."""
    from rich.markup import escape

    from agent.bench.task_files import run_task_file

    rows: list[TaskOutcome] = []
    with _ctrl_c_stops() as stopper:
        for task in loaded:
            def on_step(index: int, name: str = escape(task.name)) -> None:
                progress.update(bar, description=f"{name}: step {index}" if index else name)

            def watch(run: TaskRun | None) -> None:
                stopper.current = run

            on_step(0)
            rows.append(run_task_file(task, grounder=grounder, model=model, runs_dir=runs_dir,
                                      secrets=secrets, headless=not headed, on_step=on_step, watch=watch))
            progress.advance(bar)
            if stopper.stopped:
                break
    return rows, stopper.stopped


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


def _print_table(rows: list[TaskOutcome]) -> None:
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

