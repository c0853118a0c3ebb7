"""`internvl-agent bench ...`: suites run through the agent's own path, as a table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agent.cli.app import app
from agent.cli.common import load_model

__all__ = ["bench", "bench_grounding", "bench_miniwob"]

bench = typer.Typer(no_args_is_help=True, help="Benchmarks: suites run through the agent's own path.")
app.add_typer(bench, name="bench")


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
    json_path: Annotated[Path | None, typer.Option(
        "--json", help="Write every episode to this JSON file.")] = None,
    time_limit: Annotated[str | None, typer.Option(
        help="Seconds, 'task' (the task's own limit) or 'none'. Default: none for a model, else the task's.",
    )] = None,
) -> None:
    """MiniWoB++ on Playwright: success per task, mean reward, steps, seconds and per-stage timings."""
    from rich.console import Console

    from agent.bench import miniwob_tasks, parse_time_limit, print_table, run_miniwob

    limit = parse_time_limit(time_limit)
    names = miniwob_tasks(tasks, policy, seeds=seeds, with_model=model is not None)  # before any model loads
    vlm = load_model(model, None) if model else None
    print_table(run_miniwob(names, seeds, policy, vlm, json_path, progress=True, time_limit=limit), Console())


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
