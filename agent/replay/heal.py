"""Finding a step's target when its words no longer do: the fallbacks of a replay.

    grounder = HealingGrounder(cascade, executor, fallback, folder=script.folder, heal_with=model)
    act(executor, action, observation, grounder)      # as with any grounder
    grounder.records    # {target: {"found": "as written", "by": "dom"}} or "healed", by "crop" / "model"

In order: the words, through the script's grounder (the cascade); then the recorded crop,
matched on the new screen (crops.py), accepted at MATCH_THRESHOLD or above; then the model
grounder, when one is given (`--heal-with MODEL`). When all fail, the GroundingError says what
each one saw. A healed target is said in words again from the live screen (targets.py: the
element under the point, or the OCR text on it), with a new crop and point: `healed` holds
them, for `--write-back` to put into the file.
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.grounding import Grounder, Grounding
from agent.grounding.cascade import grounder_name
from agent.replay.crops import MATCH_THRESHOLD, Crop, CropMatch, cut_crop, load_crop, match_crop
from agent.replay.targets import describe_element, describe_text
from tasks.steps import Fallback
from tools.errors import AgentError, GroundingError
from tools.executor import Executor, Observation

__all__ = ["Healed", "HealingGrounder"]

_SHOWN = 300  # characters of a grounder's reasons that a record keeps


@dataclass(frozen=True)
class Healed:
    """A target found by a fallback: what healed it, how sure, why the words failed, and what
    the file should say now (new words, crop and point)."""

    description: str
    by: str
    score: float
    why: str
    words: str | None
    crop: Crop
    at: tuple[float, float]


def screen_scale(observation: Observation) -> float:
    """Screenshot pixels per device pixel."""
    return observation.geometry.screenshot_size[0] / max(1, observation.geometry.device_size[0])


class HealingGrounder:
    """The words first, then the recorded crop, then the model: the first that finds the target."""

    name = "healing"

    def __init__(self, grounder: Grounder, executor: Executor, fallback: Fallback | None, *,
                 folder: Path, heal_with: Grounder | None = None, threshold: float = MATCH_THRESHOLD) -> None:
        self.grounder, self.executor, self.fallback = grounder, executor, fallback
        self.folder, self.heal_with, self.threshold = folder, heal_with, threshold
        self.records: dict[str, dict[str, Any]] = {}
        self.healed: Healed | None = None

    def locate(self, observation: Observation, description: str) -> Grounding:
        t0 = time.perf_counter()
        try:
            found = self.grounder.locate(observation, description)
        except GroundingError as exc:
            words_failed = exc.message
        else:
            self.records[description] = {"found": "as written", "by": found.source, "ms": _ms(t0)}
            return found
        saw = {"words": words_failed}
        healed = self._crop(observation, saw) or self._model(observation, description, saw)
        if healed is None:
            self.records[description] = {"found": "no", "tried": {k: v[:_SHOWN] for k, v in saw.items()},
                                         "ms": _ms(t0)}
            raise GroundingError(f"{words_failed}; then " + "; ".join(f"{k}: {v}" for k, v in saw.items()
                                                                      if k != "words"))
        by, grounding = healed
        names = sorted(set(re.findall(r"(?:^|[;:] )([a-z]+): ", words_failed))) or ["the grounder"]
        why = f"its words {description!r} found nothing ({', '.join(names)})" + "".join(
            f"; {k}: {v}" for k, v in saw.items() if k not in ("words", by))
        self.records[description] = {"found": "healed", "by": by, "score": round(grounding.score, 3),
                                     "point": list(grounding.point),
                                     "tried": {k: v[:_SHOWN] for k, v in saw.items()}, "ms": _ms(t0)}
        self.healed = self._healed(observation, description, by, grounding, why)
        return dataclasses.replace(grounding, tried=(f"words: {words_failed}",))

    def _crop(self, observation: Observation, saw: dict[str, str]) -> tuple[str, Grounding] | None:
        if self.fallback is None or self.fallback.crop is None:
            saw["crop"] = "the step keeps no crop"
            return None
        try:
            crop = load_crop(self.folder / self.fallback.crop)
        except AgentError as exc:
            saw["crop"] = exc.message
            return None
        match = match_crop(observation.image, crop, screen_scale(observation))
        if match is None:
            saw["crop"] = "the crop is blank or larger than the screen"
            return None
        if match.score < self.threshold:
            saw["crop"] = f"{match.describe()}, below the {self.threshold:g} a match needs"
            return None
        return "crop", _grounding(match)

    def _model(self, observation: Observation, description: str,
               saw: dict[str, str]) -> tuple[str, Grounding] | None:
        if self.heal_with is None:
            saw["model"] = "none given (--heal-with MODEL)"
            return None
        try:
            found = self.heal_with.locate(observation, description)
        except GroundingError as exc:
            saw["model"] = exc.message
            return None
        return grounder_name(self.heal_with), found

    def _healed(self, observation: Observation, description: str, by: str, grounding: Grounding,
                why: str) -> Healed:
        """What the file should say of the target now, read off the live screen."""
        x, y = grounding.point
        scale = screen_scale(observation)
        words = None
        if getattr(self.executor, "element_at", None) is not None:
            try:
                element = describe_element(self.executor, observation, x, y)  # type: ignore[arg-type]
            except AgentError:
                element = None
            words = element["description"] if element else None
        if words is None:
            try:
                words = describe_text(self._ocr().read(observation), x, y, scale)
            except AgentError:  # no OCR engine here: the words stay as they were
                words = None
        crop = cut_crop(observation.image, (x, y), scale, grounding.box)
        width, height = observation.image.size
        return Healed(description, by, grounding.score, why, words, crop,
                      (round(x / width, 4), round(y / height, 4)))


    def _ocr(self) -> Any:
        """The cascade's OCR grounder (its reading of this screen is cached), else a new one."""
        from agent.grounding.ocr import OCRGrounder

        for grounder in (self.grounder, *getattr(self.grounder, "grounders", ())):
            if isinstance(grounder, OCRGrounder):
                return grounder
        return OCRGrounder()


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1e3, 2)


def _grounding(match: CropMatch) -> Grounding:
    return Grounding(match.box, match.point, match.score, "crop")
