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
def episode_progress(total: int, *, enabled: bool = True,
                     label: str = "miniwob") -> Iterator[Callable[[EpisodeRecord], None]]:
    """A rich progress bar over `total` episodes (to stderr); yields the function that advances it."""
    if not enabled:
        yield lambda record: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[ok]}"), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        job = bar.add_task(label, total=total, ok="")
        successes = 0

        def advance(record: EpisodeRecord) -> None:
            nonlocal successes
            successes += record.success
            bar.update(job, advance=1, description=f"{record.task} #{record.seed}", ok=f"{successes} ok")

        yield advance


def summary_rows(records: Sequence[EpisodeRecord]) -> list[dict[str, object]]:
    """Per (policy, task), in first-seen order, then "all": episodes, successes, mean reward,
    mean steps, seconds per episode, and mean milliseconds per stage per episode (the STAGES,
    then any other stage a record timed, such as a script's whole "step")."""
    groups: dict[tuple[str, str], list[EpisodeRecord]] = {}
    for record in records:
        groups.setdefault((record.policy, record.task), []).append(record)
    stages = _stages(records)
    rows = [_row(policy, task, group, stages) for (policy, task), group in groups.items()]
    if len(groups) > 1:
        rows.append(_row(",".join(dict.fromkeys(r.policy for r in records)), "all", list(records), stages))
    return rows


def _stages(records: Sequence[EpisodeRecord]) -> list[str]:
    extra = dict.fromkeys(stage for r in records for stage in r.timings_ms if stage not in STAGES)
    return [*STAGES, *extra]


def _row(policy: str, task: str, group: list[EpisodeRecord], stages: list[str]) -> dict[str, object]:
    return {
        "policy": policy, "task": task, "episodes": len(group), "successes": sum(r.success for r in group),
        "mean_reward": fmean(r.reward for r in group), "steps": fmean(r.steps for r in group),
        "seconds": fmean(r.seconds for r in group),
        **{stage: fmean(r.timings_ms.get(stage, 0.0) for r in group) for stage in stages},
    }


def print_table(records: Sequence[EpisodeRecord], console: Console | None = None, *, title: str | None = None,
                reward: bool = True, noun: str = "episodes") -> None:
    """Success per task, mean reward, steps, seconds per episode and milliseconds per stage.
    `title`: what ran (default: MiniWoB++ and the policies); `reward=False` leaves out the reward
    column (task files have none beyond success); `noun`: what the records are, for the title."""
    from rich.console import Console
    from rich.table import Table

    console = console if console is not None else Console()
    if not records:
        console.print(f"{title or 'MiniWoB++'}: no {noun} finished")
        return
    rows = summary_rows(records)
    stages = [stage for stage in _stages(records) if any(float(row[stage]) > 0 for row in rows)]  # type: ignore[arg-type]
    policies = sorted({r.policy for r in records})
    heading = title or f"MiniWoB++ ({', '.join(policies)})"
    table = Table(title=f"{heading}: {len(records)} {noun}", title_justify="left")
    headers = ("task", "success", *(("reward",) if reward else ()), "steps", "s/ep")
    for header in headers:
        table.add_column(header, justify="left" if header == "task" else "right")
    for stage in stages:
        table.add_column(f"{stage} ms", justify="right")
    for position, row in enumerate(rows):
        episodes, successes = int(row["episodes"]), int(row["successes"])  # type: ignore[call-overload]
        task = str(row["task"]) if len(policies) == 1 else f"{row['task']} ({row['policy']})"
        cells = [f"[bold]{task}[/]" if row["task"] == "all" else task,
                 f"{successes}/{episodes} ({100 * successes / episodes:.0f}%)"]
        cells += [f"{row['mean_reward']:.2f}"] if reward else []
        cells += [f"{row['steps']:.1f}", f"{row['seconds']:.2f}"]
        cells += [f"{row[stage]:.1f}" for stage in stages]
        table.add_row(*cells, end_section=position == len(rows) - 2 and rows[-1]["task"] == "all")
    console.print(table)
