"""`bench grounding`: a grounder scored on ScreenSpot-format records (tasks/grounding.py).

    run_grounding_bench("sets/synth/grounding.jsonl", "dom")
    run_grounding_bench(None, "ocr", synthesize_dir="sets/synth", count=300, seed=0)

`dom` reads each record's live page (synthetic sets keep the HTML beside the PNG); `ocr` and
`model` see only the PNG; `cascade` is DOM -> OCR (-> model when one is given) on the live page,
or OCR (-> model) on the PNG when a record has no page. The result holds every outcome and the
rows that `print_grounding_table` shows: point-in-box accuracy overall, per data type and per
platform, with the median and 90th percentile of the milliseconds one `locate` took.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.grounding import GroundingOutcome, GroundingRecord, GroundingRow, read_records, summarize
from tools.errors import TaskError

if TYPE_CHECKING:
    from rich.console import Console

    from model.base import VisionLanguageModel

__all__ = ["GROUNDERS", "GroundingBench", "print_grounding_table", "run_grounding_bench"]

GROUNDERS = ("dom", "ocr", "cascade", "model")


@dataclass(frozen=True)
class GroundingBench:
    """One grounder's run over one set: every outcome, and the summary rows."""

    grounder: str
    data: Path
    outcomes: tuple[GroundingOutcome, ...]
    rows: tuple[GroundingRow, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "grounder": self.grounder, "data": str(self.data), "rows": [r.record() for r in self.rows],
            "targets": [{
                "image": o.record.image.name, "instruction": o.record.instruction, "line": o.record.line,
                "data_type": o.record.data_type, "platform": o.record.platform,
                "box": list(o.record.box), "point": list(o.point) if o.point else None,
                "hit": o.hit, "ms": round(o.ms, 2), "error": o.error,
            } for o in self.outcomes],
        }


def run_grounding_bench(
    jsonl: str | Path | None,
    grounder_name: str = "dom",
    *,
    synthesize_dir: str | Path | None = None,
    count: int = 300,
    seed: int = 0,
    model: VisionLanguageModel | None = None,
    json_path: str | Path | None = None,
    progress: bool = False,
) -> GroundingBench:
    """Score `grounder_name` on the records of `jsonl`, or on a set synthesized first into
    `synthesize_dir` (`count` targets from `seed`); write the result to `json_path` if given."""
    if grounder_name not in GROUNDERS:
        raise TaskError(f"unknown grounder {grounder_name!r}: choose one of {', '.join(GROUNDERS)}")
    if grounder_name == "model" and model is None:
        raise TaskError("--grounder model needs a model: pass --model NAME_OR_PATH")
    if synthesize_dir is not None:
        from tasks.grounding_synth import synthesize

        jsonl = synthesize(synthesize_dir, count=count, seed=seed)
    if jsonl is None:
        raise TaskError("give a JSONL file of grounding records, or --synthesize DIR to make one")
    records = read_records(jsonl)
    if not records:
        raise TaskError(f"{jsonl} holds no grounding records")
    outcomes = tuple(_with_progress(_outcomes(records, grounder_name, model), len(records), progress))
    bench = GroundingBench(grounder_name, Path(jsonl), outcomes, tuple(summarize(outcomes)))
    if json_path is not None:
        path = Path(json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(bench.to_json(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return bench


def _outcomes(records: list[GroundingRecord], name: str,
              model: VisionLanguageModel | None) -> Iterator[GroundingOutcome]:
    from tasks.grounding import score_live, score_pixels

    live = all(r.html is not None for r in records)
    if name == "dom":
        from agent.grounding.dom import DOMGrounder

        if not live:
            raise TaskError("the dom grounder reads pages: these records have no html beside their images; "
                            "use --grounder ocr, cascade or model")
        yield from score_live(records, DOMGrounder)
    elif name == "cascade" and live:
        from agent.grounding.cascade import auto_grounder

        yield from score_live(records, lambda browser: auto_grounder(browser, model))
    else:
        yield from score_pixels(records, _pixel_grounder(name, model))


def _pixel_grounder(name: str, model: VisionLanguageModel | None) -> Any:
    from agent.grounding.cascade import CascadeGrounder
    from agent.grounding.ocr import OCRGrounder

    if name == "ocr":
        return OCRGrounder()
    from agent.grounding.model import ModelGrounder

    if name == "model":
        assert model is not None
        return ModelGrounder(model)
    return CascadeGrounder([OCRGrounder(), *([ModelGrounder(model)] if model is not None else [])])


def _with_progress(outcomes: Iterator[GroundingOutcome], total: int,
                   enabled: bool) -> Iterator[GroundingOutcome]:
    if not enabled:
        yield from outcomes
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("grounding"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[hits]}"),
               TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        job = bar.add_task("grounding", total=total, hits="")
        hits = 0
        for outcome in outcomes:
            hits += outcome.hit
            bar.update(job, advance=1, hits=f"{hits} hit")
            yield outcome


def print_grounding_table(bench: GroundingBench, console: Console | None = None) -> None:
    """Accuracy overall, per data type and per platform, with median and p90 milliseconds."""
    from rich.console import Console
    from rich.table import Table

    console = console if console is not None else Console()
    heading = f"Grounding ({bench.grounder}) on {bench.data.name}: {len(bench.outcomes)} targets"
    table = Table(title=heading, title_justify="left")
    for header in ("group", "targets", "hits", "accuracy", "median ms", "p90 ms"):
        table.add_column(header, justify="left" if header == "group" else "right")
    for position, row in enumerate(bench.rows):
        label = "[bold]all[/]" if row.group == "all" else f"{row.group}: {row.value}"
        following = bench.rows[position + 1] if position + 1 < len(bench.rows) else None
        table.add_row(label, str(row.n), str(row.hits), f"{100 * row.accuracy:.1f}%", f"{row.median_ms:.1f}",
                      f"{row.p90_ms:.1f}", end_section=following is not None and following.group != row.group)
    console.print(table)
