"""`internvl-agent bench ...`: suites run through the agent's own path, as a table."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from agent.cli.app import app
from agent.cli.common import MODEL_HELP, RunsDir, load_model, secrets_from_environment
from agent.parallel import Batch
from tools.errors import AgentError

if TYPE_CHECKING:
    from agent.bench import EpisodeRecord

__all__ = ["bench", "bench_grounding", "bench_miniwob", "bench_tasks"]

bench = typer.Typer(no_args_is_help=True, help="Benchmarks: suites run through the agent's own path.")
app.add_typer(bench, name="bench")


Workers = Annotated[int, typer.Option(
    min=1, help="Run the jobs in N local processes, each with its own browser (or X display).")]
SharedBaseUrl = Annotated[str | None, typer.Option(
    help="A model served over an OpenAI-compatible API at this URL (needed with --workers > 1 or --ray: "
    "the workers share it).")]


@bench.command("miniwob")
def bench_miniwob(
    tasks: Annotated[str, typer.Option(
        help="Task names, comma-separated (click-button,enter-text), or 'all'.")] = "all",
    seeds: Annotated[int, typer.Option(min=1, help="Episodes per task, seeded 0..N-1.")] = 1,
    policy: Annotated[str, typer.Option(
        help="'reference' (reads the DOM, acts through the executor), 'grounded' (the utterance as "
        "targets in words, found by the embedded grounders) or 'model' (the agent with --model).",
    )] = "reference",
    model: Annotated[str | None, typer.Option(help="The model for --policy model.")] = None,
    base_url: SharedBaseUrl = None,
    json_path: Annotated[Path | None, typer.Option(
        "--json", help="Write every episode to this JSON file.")] = None,
    time_limit: Annotated[str | None, typer.Option(
        help="Seconds, 'task' (the task's own limit) or 'none'. Default: none for a model, else the task's.",
    )] = None,
    workers: Workers = 1,
    ray: Annotated[str | None, typer.Option(
        help="Run the episodes as Ray actors: 'auto' (a local Ray, --workers CPUs wide) or a cluster's "
        "address. Needs pip install 'internvl-agent[scale]'.")] = None,
) -> None:
    """MiniWoB++ on Playwright: success per task, mean reward, steps, seconds and per-stage timings."""
    from rich.console import Console

    from agent.bench import miniwob_batch, miniwob_tasks, parse_time_limit, print_table

    limit = parse_time_limit(time_limit)
    names = miniwob_tasks(tasks, policy, seeds=seeds, with_model=model is not None)  # before any model loads
    _check_workers(workers, ray, model, base_url)
    vlm = load_model(model, base_url) if model else None
    batch = miniwob_batch(names, seeds, policy, vlm, progress=True, time_limit=limit, workers=workers,
                          ray=ray)
    _report(batch, json_path, len(names) * seeds, "episodes", lambda: print_table(batch.results, Console()))


@bench.command("tasks")
def bench_tasks(
    folder: Annotated[Path, typer.Argument(help="A folder of task files (*.yaml, *.yml).")],
    grounder: Annotated[str, typer.Option(
        help="How tasks with steps find their targets: 'auto', 'dom', 'ocr' or 'model'.")] = "auto",
    model: Annotated[str | None, typer.Option(
        help=MODEL_HELP + " Runs the goal of each task that has no steps.")] = None,
    base_url: SharedBaseUrl = None,
    runs_dir: RunsDir = Path("runs"),
    secret: Annotated[list[str] | None, typer.Option(
        help="The name of an environment variable holding a secret. Repeatable.")] = None,
    headed: Annotated[bool, typer.Option(help="Show the browser windows.")] = False,
    json_path: Annotated[Path | None, typer.Option(
        "--json", help="Write every task's result to this JSON file.")] = None,
    workers: Workers = 1,
) -> None:
    """Every task file in FOLDER, run and checked: success per task, steps, seconds and per-stage timings."""
    from rich.console import Console

    from agent.bench import print_table
    from agent.bench.table import episode_progress
    from agent.bench.task_files import TaskFileWorker, task_files
    from agent.parallel import run_jobs
    from agent.task_run import GROUNDERS
    from tasks.spec import Task

    if grounder not in GROUNDERS:
        raise AgentError(f"--grounder {grounder!r}: give one of {', '.join(GROUNDERS)}")
    if grounder == "model" and model is None:
        raise AgentError("--grounder model needs --model")
    files = task_files(folder)
    for path in files:
        Task.load(path)  # every file is checked before anything runs
    names = tuple(secret or [])
    secrets_from_environment(list(names))  # each one set, before any worker starts
    _check_workers(workers, None, model, base_url)
    worker = TaskFileWorker(grounder, runs_dir, names, headless=not headed, own_display=workers > 1)
    if model is not None:
        vlm = load_model(model, base_url)
        if workers > 1:
            worker.endpoint = (base_url or "", model)
        else:
            worker.model = vlm
    with episode_progress(len(files), label="tasks") as advance:
        batch = run_jobs(worker, files, workers=workers,
                         on_result=lambda outcome: advance(outcome.as_record()))
    records = [outcome.as_record() for outcome in batch.results]
    printed = Batch(records, batch.interrupted)
    title = f"Tasks in {folder}"
    _report(printed, json_path, len(files), "tasks",
            lambda: print_table(records, Console(), title=title, reward=False, noun="tasks"))


def _check_workers(workers: int, ray: str | None, model: str | None, base_url: str | None) -> None:
    """One line, before anything starts: Ray missing, or a local model that each worker would load."""
    from agent.bench.miniwob import LOCAL_MODEL_IN_WORKERS
    from agent.parallel import check_ray

    if ray is not None:
        check_ray()
    if model is not None and base_url is None and (workers > 1 or ray is not None):
        raise AgentError(LOCAL_MODEL_IN_WORKERS.format(workers=workers))


def _report(batch: Batch[EpisodeRecord], json_path: Path | None, total: int, what: str,
            print_table: Callable[[], None]) -> None:
    """The table and the JSON file of what finished; after a Ctrl-C, a line and exit 130."""
    from agent.bench import write_json

    print_table()
    if json_path is not None:
        write_json(batch.results, json_path)
    if batch.interrupted:
        print(f"internvl-agent: interrupted after {len(batch.results)} of {total} {what}", file=sys.stderr)
        raise typer.Exit(130)


@bench.command("grounding")
def bench_grounding(
    data: Annotated[Path | None, typer.Argument(
        help="ScreenSpot-format JSONL: image, instruction, bbox ([x, y, w, h], or [x1, y1, x2, y2] with "
        '"bbox_format": "xyxy"), data_type, platform.')] = None,
    synthesize: Annotated[Path | None, typer.Option(
        help="First make a synthetic set in this folder (pages rendered in Chromium, boxes from the DOM) "
        "and score it.")] = None,
    count: Annotated[int, typer.Option(min=1, help="Targets in the synthetic set.")] = 300,
    seed: Annotated[int, typer.Option(help="The synthetic set's seed: the same seed, the same set.")] = 0,
    grounder: Annotated[str, typer.Option(help="dom, ocr, cascade or model.")] = "dom",
    model: Annotated[str | None, typer.Option(
        help="For --grounder model, or the cascade's last step.")] = None,
    json_path: Annotated[Path | None, typer.Option(
        "--json", help="Write every target's result here.")] = None,
) -> None:
    """Point-in-box accuracy of a grounder per data type and platform, with median and p90 latency."""
    from rich.console import Console

    from agent.bench import print_grounding_table, run_grounding_bench

    vlm = load_model(model, None) if model else None
    records = run_grounding_bench(data, grounder, synthesize_dir=synthesize, count=count, seed=seed,
                                  model=vlm, json_path=json_path, progress=True)
    print_grounding_table(records, Console())
