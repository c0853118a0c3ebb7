"""The bench's terminal output: a progress bar while episodes run, and a table per task after."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from statistics import fmean
from typing import TYPE_CHECKING

from agent.bench.episodes import STAGES, EpisodeRecord

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["episode_progress", "print_table", "summary_rows"]


@contextlib.contextmanager
def episode_progress(total: int, *, enabled: bool = True) -> Iterator[Callable[[EpisodeRecord], None]]:
    """A rich progress bar over `total` episodes (to stderr); yields the function that advances it."""
    if not enabled:
        yield lambda record: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[ok]}"), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        job = bar.add_task("miniwob", total=total, ok="")
        successes = 0

        def advance(record: EpisodeRecord) -> None:
            nonlocal successes
            successes += record.success
            bar.update(job, advance=1, description=f"{record.task} #{record.seed}", ok=f"{successes} ok")

        yield advance


def summary_rows(records: Sequence[EpisodeRecord]) -> list[dict[str, object]]:
    """Per (policy, task), in first-seen order, then "all": episodes, successes, mean reward,
    mean steps, seconds per episode, and mean milliseconds per stage per episode."""
    groups: dict[tuple[str, str], list[EpisodeRecord]] = {}
    for record in records:
        groups.setdefault((record.policy, record.task), []).append(record)
    rows = [_row(policy, task, group) for (policy, task), group in groups.items()]
    if len(groups) > 1:
        rows.append(_row(",".join(dict.fromkeys(r.policy for r in records)), "all", list(records)))
    return rows


def _row(policy: str, task: str, group: list[EpisodeRecord]) -> dict[str, object]:
    return {
        "policy": policy, "task": task, "episodes": len(group), "successes": sum(r.success for r in group),
        "mean_reward": fmean(r.reward for r in group), "steps": fmean(r.steps for r in group),
        "seconds": fmean(r.seconds for r in group),
        **{stage: fmean(r.timings_ms.get(stage, 0.0) for r in group) for stage in STAGES},
    }


def print_table(records: Sequence[EpisodeRecord], console: Console | None = None) -> None:
    """Success per task, mean reward, steps, seconds per episode and milliseconds per stage."""
    from rich.console import Console
    from rich.table import Table

    console = console if console is not None else Console()
    rows = summary_rows(records)
    stages = [stage for stage in STAGES if any(float(row[stage]) > 0 for row in rows)]  # type: ignore[arg-type]
    policies = sorted({r.policy for r in records})
    table = Table(title=f"MiniWoB++ ({', '.join(policies)}): {len(records)} episodes", title_justify="left")
    for header in ("task", "success", "reward", "steps", "s/ep"):
        table.add_column(header, justify="left" if header == "task" else "right")
    for stage in stages:
        table.add_column(f"{stage} ms", justify="right")
    for position, row in enumerate(rows):
        episodes, successes = int(row["episodes"]), int(row["successes"])  # type: ignore[call-overload]
        task = str(row["task"]) if len(policies) == 1 else f"{row['task']} ({row['policy']})"
        cells = [f"[bold]{task}[/]" if row["task"] == "all" else task,
                 f"{successes}/{episodes} ({100 * successes / episodes:.0f}%)", f"{row['mean_reward']:.2f}",
                 f"{row['steps']:.1f}", f"{row['seconds']:.2f}"]
        cells += [f"{row[stage]:.1f}" for stage in stages]
        table.add_row(*cells, end_section=position == len(rows) - 2 and rows[-1]["task"] == "all")
    console.print(table)
