"""Targets described in words, found on the screenshot: "the Submit button" -> (412, 305).

By default the model that plans also grounds: InternVL3 is trained on its own grounding
prompt (prompts.GROUNDING_PROMPT) and answers `<ref>..</ref><box>[[x1, y1, x2, y2]]</box>`
in 0..1000. `ground()` turns an action that names targets into the pixel actions that the
executors run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from tools.actions import BaseAction, Click, Drag, Move, Scroll, Type, is_ungrounded
from tools.executor import ActionResult, Executor, Observation

__all__ = ["ActRecord", "Box", "Grounder", "act", "ground"]


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


@runtime_checkable
class Grounder(Protocol):
    def locate(self, observation: Observation, description: str) -> Box:
        """Where `description` is on the observation's screenshot; GroundingError if nowhere."""
        ...


def ground(
    action: BaseAction, observation: Observation, grounder: Grounder
) -> tuple[list[BaseAction], dict[str, list[int]]]:
    """(the pixel actions that carry out `action`, {description: [x, y]} of each target found).

    A target becomes the centre of its box; `type` with a target becomes a click on it, then
    the typing.
    """
    found: dict[str, list[int]] = {}

    def point(description: str) -> tuple[int, int]:
        x, y = grounder.locate(observation, description).center
        found[description] = [x, y]
        return x, y

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
    """What came of one `act`: the executor's result, where each target was found, and the time
    grounding took."""

    result: ActionResult
    grounded: dict[str, list[int]] | None  # each target in words -> the [x, y] it was found at
    ground_ms: float


def act(executor: Executor, action: BaseAction, observation: Observation, grounder: Grounder) -> ActRecord:
    """Carry out `action` on `executor`, its targets grounded on `observation` first (a
    GroundingError propagates: the caller decides whether to look again or give up)."""
    t0 = time.perf_counter()
    actions, grounded = ground(action, observation, grounder) if is_ungrounded(action) else ([action], None)
    ground_ms = (time.perf_counter() - t0) * 1e3
    result = ActionResult(ok=True)
    for each in actions:  # a `type` on a target is a click, then the typing
        result = executor.execute(each)
        if not result.ok:
            break
    return ActRecord(result, grounded, ground_ms)
