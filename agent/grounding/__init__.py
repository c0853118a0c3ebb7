"""Targets described in words, found on the screenshot: "the Submit button" -> (412, 305).

A `Grounder` answers `locate(observation, description) -> Grounding`: the box, the point to
act on, a score and which grounder answered (`source`). By default the model that plans also
grounds: InternVL3 is trained on its own grounding prompt (prompts.GROUNDING_PROMPT) and
answers `<ref>..</ref><box>[[x1, y1, x2, y2]]</box>` in 0..1000 (model.py). Without a model:
the page's markup (dom.py), the screenshot's text (ocr.py), or both in turn (cascade.py).
`ground()` turns an action that names targets into the pixel actions that the executors run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from tools.actions import BaseAction, Click, Drag, Move, Scroll, Type, is_ungrounded
from tools.executor import ActionResult, Executor, Observation

__all__ = [
    "ActRecord", "Box", "Grounder", "Grounding", "act", "ground", "grounded_points", "grounding_records",
]


@dataclass(frozen=True)
class Box:
    """A region of the screenshot, in its pixels (edges included)."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def center(self) -> tuple[int, int]:
        return (self.left + self.right) // 2, (self.top + self.bottom) // 2

    @property
    def width(self) -> int:
        return self.right - self.left + 1

    @property
    def height(self) -> int:
        return self.bottom - self.top + 1

    def contains(self, x: float, y: float) -> bool:
        return self.left <= x <= self.right and self.top <= y <= self.bottom


@dataclass(frozen=True)
class Grounding:
    """Where a described target was found: its box, the point to act on (in screenshot
    pixels), how sure the grounder is (0..1; the model's 0.5 is a constant, not a
    calibrated confidence), which grounder answered (`source`: "dom", "ocr", "model"), and,
    through a cascade, why the grounders before it did not (`tried`: "dom: no element ...")."""

    box: Box
    point: tuple[int, int]
    score: float
    source: str
    tried: tuple[str, ...] = ()

    @classmethod
    def of(cls, box: Box, source: str, score: float = 1.0, point: tuple[int, int] | None = None) -> Grounding:
        """A grounding whose point is the box centre unless given."""
        return cls(box, point if point is not None else box.center, score, source)

    @property
    def center(self) -> tuple[int, int]:
        return self.box.center

    def record(self) -> dict[str, Any]:
        """The JSON form that a trajectory step keeps."""
        record: dict[str, Any] = {
            "box": [self.box.left, self.box.top, self.box.right, self.box.bottom],
            "point": list(self.point), "score": round(self.score, 3), "source": self.source,
        }
        if self.tried:
            record["tried"] = list(self.tried)
        return record


@runtime_checkable
class Grounder(Protocol):
    def locate(self, observation: Observation, description: str) -> Grounding:
        """Where `description` is on the observation's screenshot; GroundingError if nowhere."""
        ...


def ground(
    action: BaseAction, observation: Observation, grounder: Grounder
) -> tuple[list[BaseAction], dict[str, Grounding]]:
    """(the pixel actions that carry out `action`, {description: Grounding} of each target found).

    A target becomes its grounding's point; `type` with a target becomes a click on it, then
    the typing.
    """
    found: dict[str, Grounding] = {}

    def point(description: str) -> tuple[int, int]:
        found[description] = grounding = grounder.locate(observation, description)
        return grounding.point

    target = getattr(action, "target", None)
    if isinstance(action, Type) and target is not None:
        x, y = point(target)
        return [Click(x=x, y=y), action.model_copy(update={"target": None})], found
    if isinstance(action, Click | Move | Scroll) and target is not None:
        x, y = point(target)
        return [action.model_copy(update={"target": None, "x": x, "y": y})], found
    if isinstance(action, Drag):
        ends = {end: point(value) if isinstance(value, str) else value
                for end, value in (("start", action.start), ("end", action.end))}
        return [action.model_copy(update=ends)], found
    return [action], found


@dataclass(frozen=True)
class ActRecord:
    """What came of one `act`: the executor's result, where each target was found (None when
    nothing was looked for), and the time grounding took."""

    result: ActionResult
    found: dict[str, Grounding] | None
    ground_ms: float

    @property
    def grounded(self) -> dict[str, list[int]] | None:
        """Each target in words -> the [x, y] it was found at (Step.grounded)."""
        return grounded_points(self.found)

    @property
    def grounding(self) -> dict[str, dict[str, Any]] | None:
        """Each target in words -> its box, point, score and source (Step.grounding)."""
        return grounding_records(self.found)


def grounded_points(found: dict[str, Grounding] | None) -> dict[str, list[int]] | None:
    """{description: [x, y]}, the form of Step.grounded."""
    return None if found is None else {d: list(g.point) for d, g in found.items()}


def grounding_records(found: dict[str, Grounding] | None) -> dict[str, dict[str, Any]] | None:
    """{description: {box, point, score, source}}, the form of Step.grounding."""
    return None if found is None else {d: g.record() for d, g in found.items()}


def act(executor: Executor, action: BaseAction, observation: Observation, grounder: Grounder) -> ActRecord:
    """Carry out `action` on `executor`, its targets grounded on `observation` first (a
    GroundingError propagates: the caller decides whether to look again or give up)."""
    t0 = time.perf_counter()
    actions, found = ground(action, observation, grounder) if is_ungrounded(action) else ([action], None)
    ground_ms = (time.perf_counter() - t0) * 1e3
    result = ActionResult(ok=True)
    for each in actions:  # a `type` on a target is a click, then the typing
        result = executor.execute(each)
        if not result.ok:
            break
    return ActRecord(result, found, ground_ms)
