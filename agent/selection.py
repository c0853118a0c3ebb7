"""Best-of-N: several sampled replies, grouped by what they would do, and one of them picked.

The policy samples N replies in one batched `generate` (GenerationConfig(n=N)) and parses
each into a `Candidate`. Candidates whose actions would do the same thing form a group:

- a click, move or scroll lands in the same place: the same grounded box (a target in words
  found by the grounder, or a point inside such a box), or two points within `tolerance` (a
  fraction of the screenshot's diagonal); words that could not be grounded compare as text;
- typing is the same text into the same target (the same place, as above);
- any other action has the same fields once normalized (text trimmed, spaces collapsed, case
  folded): two `finish` with one answer spelled alike are one vote.

Without a critic the largest group wins (self-consistency); with one (agent.critic), each
group's first member is scored and the best-scored group wins, ties to the larger group.
Replies that did not parse never win while another did. Each candidate's record (text,
action, group, score, picked) goes into the step's `candidates`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.grounding import Box, Grounder, Grounding
from model.base import GenerationConfig
from tools.actions import BaseAction, Click, Drag, Move, Scroll, Type
from tools.errors import GroundingError

if TYPE_CHECKING:
    from agent.critic import Critic
    from tools.executor import Observation

__all__ = ["BestOfN", "Candidate", "Place", "RememberedGrounder", "SAMPLING_TEMPERATURE"]

SAMPLING_TEMPERATURE = 0.7  # when the policy's own config is greedy: n greedy replies would be one reply
DEFAULT_TOLERANCE = 0.02  # of the screenshot's diagonal: 29 px at 1280x720
_NO_SIZE_TOLERANCE_PX = 20.0


@dataclass(frozen=True)
class Candidate:
    """One sampled reply: its text, the actions parsed from it (or why it did not parse), and,
    once chosen among, its group (None: it did not parse), its critic score and whether it won."""

    text: str
    actions: tuple[BaseAction, ...] = ()
    parse_error: str | None = None
    group: int | None = None
    score: float | None = None
    picked: bool = False

    @property
    def action(self) -> BaseAction | None:
        """The action a step records: the last call of the reply."""
        return self.actions[-1] if self.actions else None

    def record(self) -> dict[str, Any]:
        """The JSON form a step keeps in `candidates`."""
        action = self.action
        return {
            "text": self.text,
            "action": action.model_dump(mode="json") if action is not None else None,
            **({"calls": len(self.actions)} if len(self.actions) > 1 else {}),
            **({"parse_error": self.parse_error} if self.parse_error is not None else {}),
            "group": self.group,
            "score": None if self.score is None else round(self.score, 4),
            "picked": self.picked,
        }


@dataclass(frozen=True)
class Place:
    """Where an action lands: a pixel point, the box of a grounded target, or words no grounder found."""

    point: tuple[int, int] | None = None
    box: Box | None = None
    words: str | None = None

    def same(self, other: Place, tolerance_px: float) -> bool:
        if self.box is not None and other.point is not None and self.box.contains(*other.point):
            return True
        if other.box is not None and self.point is not None and other.box.contains(*self.point):
            return True
        if self.box is None and other.box is None and self.point is not None and other.point is not None:
            return math.dist(self.point, other.point) <= tolerance_px
        if self.words is not None and other.words is not None:
            return _normalized(self.words) == _normalized(other.words)
        return False

    @property
    def mark(self) -> Box | tuple[int, int] | None:
        """What a critic draws on the screenshot: the box where there is one, else the point."""
        return self.box if self.box is not None else self.point


class BestOfN:
    """Samples `n` candidates per step and picks one (see the module docstring).

    `grounder` finds the targets in words of the candidates, so that "the Save button" and a
    click inside its box are one vote; without one, targets compare as text. `tolerance`:
    how far apart, as a fraction of the screenshot's diagonal, two clicks may be and still agree.
    """

    def __init__(self, n: int, *, critic: Critic | None = None, grounder: Grounder | None = None,
                 tolerance: float = DEFAULT_TOLERANCE, temperature: float = SAMPLING_TEMPERATURE) -> None:
        if n < 2:
            raise ValueError(f"Best-of-N needs n of at least 2, not {n}")
        if not 0 <= tolerance < 1:
            raise ValueError(f"tolerance is a fraction of the screen's diagonal in [0, 1), not {tolerance}")
        if not temperature > 0:
            raise ValueError(f"Best-of-N samples: temperature must be above 0, not {temperature}")
        self.n, self.critic, self.grounder = n, critic, grounder
        self.tolerance, self.temperature = tolerance, temperature

    def sampling(self, config: GenerationConfig) -> GenerationConfig:
        """`config` asking for n samples; a greedy config samples at `temperature`."""
        return dataclasses.replace(config, n=self.n, temperature=config.temperature or self.temperature)

    def choose(self, goal: str, observation: Observation | None,
               candidates: Sequence[Candidate]) -> tuple[int, list[Candidate]]:
        """(the index of the picked candidate, every candidate with its group, score and pick)."""
        if not candidates:
            raise ValueError("no candidates to choose from")
        places = _Places(observation, self.grounder)
        tolerance_px = self._tolerance_px(observation)
        groups: list[list[int]] = []
        for i, candidate in enumerate(candidates):
            if not candidate.actions:
                continue
            for members in groups:
                if _same_actions(candidates[members[0]].actions, candidate.actions, places, tolerance_px):
                    members.append(i)
                    break
            else:
                groups.append([i])
        scores = [self._score(goal, observation, candidates[m[0]], places) for m in groups]
        chosen = [
            dataclasses.replace(c, group=next((g for g, m in enumerate(groups) if i in m), None))
            for i, c in enumerate(candidates)
        ]
        if not groups:  # nothing parsed: the first reply's error goes back to the model
            chosen[0] = dataclasses.replace(chosen[0], picked=True)
            return 0, chosen
        # The best score (a critic), then the most votes, then the earliest sampled.
        best = max(range(len(groups)), key=lambda g: (scores[g] if scores[g] is not None else 0.0,
                                                     len(groups[g]), -groups[g][0]))
        picked = groups[best][0]
        for g, members in enumerate(groups):
            for i in members:
                chosen[i] = dataclasses.replace(chosen[i], score=scores[g], picked=i == picked)
        return picked, chosen

    def _score(self, goal: str, observation: Observation | None, candidate: Candidate,
               places: _Places) -> float | None:
        if self.critic is None or candidate.action is None:
            return None
        place = places.of(candidate.action)
        mark = place.mark if place is not None else None
        return self.critic.score(goal, observation, candidate.action, mark)

    def _tolerance_px(self, observation: Observation | None) -> float:
        size = getattr(observation, "size", None)
        if not size:
            return _NO_SIZE_TOLERANCE_PX
        return self.tolerance * math.hypot(*size)


class RememberedGrounder:
    """A grounder that answers each (observation, description) once: the candidates' targets
    are found while grouping, and the picked one is not looked for again when it is acted on.
    Only the newest observation's answers are kept."""

    def __init__(self, grounder: Grounder) -> None:
        self.grounder = grounder
        self._observation: Observation | None = None
        self._answers: dict[str, Grounding | GroundingError] = {}

    def locate(self, observation: Observation, description: str) -> Grounding:
        if observation is not self._observation:
            self._observation, self._answers = observation, {}
        if description not in self._answers:
            try:
                self._answers[description] = self.grounder.locate(observation, description)
            except GroundingError as exc:
                self._answers[description] = exc
        answer = self._answers[description]
        if isinstance(answer, GroundingError):
            raise answer
        return answer

    def __repr__(self) -> str:
        return f"RememberedGrounder({self.grounder!r})"


class _Places:
    """Where each action lands on one observation, its targets grounded at most once each."""

    def __init__(self, observation: Observation | None, grounder: Grounder | None) -> None:
        self.observation, self.grounder = observation, grounder
        self._found: dict[str, Place] = {}

    def of(self, action: BaseAction) -> Place | None:
        if isinstance(action, Click | Move | Scroll | Type):
            if getattr(action, "x", None) is not None:
                return Place(point=(action.x, action.y))  # type: ignore[union-attr]
            return self.words(action.target) if action.target is not None else None
        return None

    def end(self, value: tuple[int, int] | str) -> Place:
        return self.words(value) if isinstance(value, str) else Place(point=(value[0], value[1]))

    def words(self, description: str) -> Place:
        if description not in self._found:
            place = Place(words=description)
            if self.grounder is not None and self.observation is not None:
                try:
                    found = self.grounder.locate(self.observation, description)
                    place = Place(point=found.point, box=found.box, words=description)
                except GroundingError:
                    pass  # not on the screen: it still agrees with the same words
            self._found[description] = place
        return self._found[description]


def _same_actions(a: Sequence[BaseAction], b: Sequence[BaseAction], places: _Places,
                  tolerance_px: float) -> bool:
    return len(a) == len(b) and all(_same(x, y, places, tolerance_px) for x, y in zip(a, b, strict=True))


def _same(a: BaseAction, b: BaseAction, places: _Places, tolerance_px: float) -> bool:
    if a.name != b.name or type(a) is not type(b):
        return False
    if isinstance(a, Drag) and isinstance(b, Drag):
        return (places.end(a.start).same(places.end(b.start), tolerance_px)
                and places.end(a.end).same(places.end(b.end), tolerance_px))
    if isinstance(a, Click | Move | Scroll | Type):
        here, there = places.of(a), places.of(b)
        if (here is None) != (there is None):
            return False
        if here is not None and there is not None and not here.same(there, tolerance_px):
            return False
        placed = {"x", "y", "target"}
        if isinstance(a, Type):  # the text exactly: "Ada" and "ada" type different things
            return a.text == b.text and _fields(a, placed | {"text"}) == _fields(b, placed | {"text"})
        return _fields(a, placed) == _fields(b, placed)
    return _fields(a) == _fields(b)


def _fields(action: BaseAction, leave_out: set[str] | frozenset[str] = frozenset()) -> Any:
    return _normalized({k: v for k, v in action.model_dump(mode="json").items() if k not in leave_out})


_SPACES = re.compile(r"\s+")


def _normalized(value: Any) -> Any:
    if isinstance(value, str):
        return _SPACES.sub(" ", value).strip().casefold()
    if isinstance(value, dict):
        return {k: _normalized(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [_normalized(v) for v in value]
    if isinstance(value, float):
        return round(value, 3)
    return value
