"""The grounding benchmark: ScreenSpot-format records, any grounder, point-in-box accuracy.

One JSON object a line:

    {"img_filename": "page-000.png", "instruction": "the Save button", "bbox": [x, y, w, h],
     "data_type": "text", "platform": "web"}

`bbox` is ScreenSpot's `[x, y, w, h]` in the image's pixels; with `"bbox_format": "xyxy"` it is
`[x1, y1, x2, y2]`. `image` may stand for `img_filename`. Synthetic sets (grounding_synth.py)
add `html`, `viewport` and `scale`, so a grounder that reads the page's markup is scored on
the live page, rendered as the screenshot was; a pixel-only grounder sees only the PNG.

A grounder is duck-typed (`tasks` never imports `agent`): anything with
`locate(observation, instruction)` that returns an object with a `point`, or an (x, y) pair,
and raises (an AgentError, usually GroundingError) when it finds nothing. A hit is a point
inside the box, edges included. `summarize` gives accuracy per data type and per platform,
with the median and 90th percentile of the time `locate` took.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tools.errors import AgentError, TaskError
from tools.executor import Geometry, Observation

if TYPE_CHECKING:
    from tools.browser import BrowserExecutor

__all__ = [
    "GroundingOutcome", "GroundingRecord", "GroundingRow", "Locator", "observation_of", "read_records",
    "score", "score_live", "score_pixels", "summarize",
]


class Locator(Protocol):
    def locate(self, observation: Observation, description: str) -> Any: ...


@dataclass(frozen=True)
class GroundingRecord:
    """One target: the screenshot, the words, and its box as (x1, y1, x2, y2) in image pixels."""

    image: Path
    instruction: str
    box: tuple[float, float, float, float]
    data_type: str = "text"
    platform: str = "web"
    html: Path | None = None  # the page the screenshot shows, for grounders that read markup
    viewport: tuple[int, int] | None = None  # its CSS size, and the device scale it was shot at
    scale: float = 1.0
    line: int = 0

    def contains(self, x: float, y: float) -> bool:
        x1, y1, x2, y2 = self.box
        return x1 <= x <= x2 and y1 <= y <= y2


@dataclass(frozen=True)
class GroundingOutcome:
    """What one grounder made of one record: the point (None when it found nothing), a hit or
    not, the milliseconds `locate` took, and why it failed."""

    record: GroundingRecord
    point: tuple[float, float] | None
    hit: bool
    ms: float
    error: str | None = None


@dataclass(frozen=True)
class GroundingRow:
    """Accuracy of one group ("data_type" "icon", "platform" "web", or "all" "all")."""

    group: str
    value: str
    n: int
    hits: int
    median_ms: float
    p90_ms: float

    @property
    def accuracy(self) -> float:
        return self.hits / self.n if self.n else 0.0

    def record(self) -> dict[str, Any]:
        return {"group": self.group, "value": self.value, "n": self.n, "hits": self.hits,
                "accuracy": round(self.accuracy, 4), "median_ms": round(self.median_ms, 2),
                "p90_ms": round(self.p90_ms, 2)}


def read_records(path: str | Path) -> list[GroundingRecord]:
    """The records of a JSONL file (blank lines skipped); TaskError naming the line of a bad one.
    Relative image and html paths are read from the file's folder."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise TaskError(f"cannot read grounding records from {path}: {exc.strerror or exc}") from exc
    records = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                records.append(_record(json.loads(line), path.parent, number))
            except (ValueError, TypeError, KeyError) as exc:
                raise TaskError(f"{path}:{number}: not a grounding record ({exc}): each line needs "
                                "img_filename, instruction and bbox [x, y, w, h] "
                                "(or [x1, y1, x2, y2] with \"bbox_format\": \"xyxy\")") from exc
    return records


def _record(raw: Any, folder: Path, line: int) -> GroundingRecord:
    if not isinstance(raw, dict):
        raise ValueError("a line must be a JSON object")
    image = raw.get("img_filename", raw.get("image"))
    instruction = raw["instruction"]
    if not isinstance(image, str) or not image or not isinstance(instruction, str) or not instruction.strip():
        raise ValueError("img_filename and instruction must be non-empty strings")
    bbox = [float(v) for v in raw["bbox"]]
    if len(bbox) != 4:
        raise ValueError(f"bbox has {len(bbox)} numbers, not 4")
    fmt = raw.get("bbox_format", "xywh")
    if fmt not in ("xywh", "xyxy"):
        raise ValueError(f"bbox_format is 'xywh' or 'xyxy', not {fmt!r}")
    x1, y1, a, b = bbox
    x2, y2 = (x1 + a, y1 + b) if fmt == "xywh" else (a, b)
    if x2 < x1 or y2 < y1:
        raise ValueError(f"bbox {bbox} is empty")
    viewport = raw.get("viewport")
    return GroundingRecord(
        image=folder / image, instruction=instruction, box=(x1, y1, x2, y2),
        data_type=str(raw.get("data_type", "text")), platform=str(raw.get("platform", "web")),
        html=folder / raw["html"] if raw.get("html") else None,
        viewport=(int(viewport[0]), int(viewport[1])) if viewport else None,
        scale=float(raw.get("scale", 1.0)), line=line,
    )


def observation_of(record: GroundingRecord) -> Observation:
    """The record's PNG as an observation, its geometry from the record's device scale."""
    from PIL import Image

    try:
        with Image.open(record.image) as opened:
            image = opened.convert("RGB")
    except OSError as exc:
        raise TaskError(f"line {record.line}: cannot open {record.image} ({exc})") from exc
    width, height = image.size
    device = record.viewport or (round(width / record.scale), round(height / record.scale))
    return Observation(image=image, geometry=Geometry((width, height), device))


def score(record: GroundingRecord, grounder: Locator, observation: Observation) -> GroundingOutcome:
    """Time one `grounder.locate(observation, instruction)` and judge its point."""
    t0 = time.perf_counter()
    try:
        found = grounder.locate(observation, record.instruction)
    except AgentError as exc:
        return GroundingOutcome(record, None, False, (time.perf_counter() - t0) * 1e3, exc.message)
    ms = (time.perf_counter() - t0) * 1e3
    x, y = getattr(found, "point", found)
    return GroundingOutcome(record, (x, y), record.contains(x, y), ms)


def score_pixels(records: Sequence[GroundingRecord], grounder: Locator) -> Iterator[GroundingOutcome]:
    """The grounder on each record's PNG only (one observation per image, so caches work)."""
    cached: tuple[Path, Observation] | None = None
    for record in records:
        if cached is None or cached[0] != record.image:
            cached = (record.image, observation_of(record))
        yield score(record, grounder, cached[1])


def score_live(records: Sequence[GroundingRecord],
               make: Callable[[BrowserExecutor], Locator]) -> Iterator[GroundingOutcome]:
    """The grounder that `make(browser)` builds, on each record's page, live in Chromium at the
    viewport and device scale it was shot at (records need `html`). Each page is loaded once."""
    from tools.browser import BrowserExecutor

    missing = [r.line for r in records if r.html is None]
    if missing:
        raise TaskError(f"lines {missing[:5]} have no html page: score them with a pixel-only grounder")
    groups: dict[tuple[Path, tuple[int, int] | None, float], list[GroundingRecord]] = {}
    for record in records:
        assert record.html is not None
        groups.setdefault((record.html.parent, record.viewport, record.scale), []).append(record)
    for (folder, viewport, scale), group in groups.items():
        size = viewport or (1280, 720)
        with _served(folder) as url, BrowserExecutor(viewport=size, device_scale_factor=scale,
                                                    capture="png") as browser:
            grounder = make(browser)
            page: Path | None = None
            observation = None
            for record in group:
                if record.html != page or observation is None:
                    page = record.html
                    assert page is not None
                    browser.page.goto(f"{url}/{page.name}")
                    observation = browser.observe()
                yield score(record, grounder, observation)


@contextmanager
def _served(folder: Path) -> Iterator[str]:
    from tasks.serve import serve_folder

    with serve_folder(folder) as url:
        yield url


def summarize(outcomes: Iterable[GroundingOutcome]) -> list[GroundingRow]:
    """Rows for all, then per data type, then per platform (sorted by value within a group)."""
    outcomes = list(outcomes)
    rows = [_row("all", "all", outcomes)]
    for group in ("data_type", "platform"):
        values = sorted({getattr(o.record, group) for o in outcomes})
        rows += [_row(group, v, [o for o in outcomes if getattr(o.record, group) == v]) for v in values]
    return rows


def _row(group: str, value: str, outcomes: list[GroundingOutcome]) -> GroundingRow:
    times = sorted(o.ms for o in outcomes)
    p90 = times[math.ceil(0.9 * len(times)) - 1] if times else 0.0  # nearest rank
    return GroundingRow(group, value, len(outcomes), sum(o.hit for o in outcomes),
                        statistics.median(times) if times else 0.0, p90)
