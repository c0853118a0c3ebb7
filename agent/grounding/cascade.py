"""Several grounders in turn: the first that finds the target answers.

    CascadeGrounder([DOMGrounder(browser), OCRGrounder(), ModelGrounder(model)])

The cheap, exact ones go first (the page's markup, then the screenshot's text) and the model
last, so most targets cost no model call. The answer's `tried` says why each grounder before
it did not answer ("dom: no element on the page matches ..."), and a target that none finds
is a GroundingError that lists every reason. `auto_grounder` builds the usual cascade for an
executor.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
from collections.abc import Sequence

from agent.grounding import Grounder, Grounding
from model.base import VisionLanguageModel
from tools.errors import GroundingError
from tools.executor import Executor, Observation

__all__ = ["CascadeGrounder", "auto_grounder", "grounder_name"]

log = logging.getLogger(__name__)


def grounder_name(grounder: Grounder) -> str:
    """A grounder's short name: its `name` attribute, or its class name less "Grounder"
    (DOMGrounder -> "dom", OCRGrounder -> "ocr", ModelGrounder -> "model")."""
    name = getattr(grounder, "name", None)
    if isinstance(name, str) and name:
        return name
    return type(grounder).__name__.removesuffix("Grounder").lower() or type(grounder).__name__


class CascadeGrounder:
    """Tries each grounder in order; the first Grounding wins, with the others' reasons in `tried`."""

    name = "cascade"

    def __init__(self, grounders: Sequence[Grounder]) -> None:
        if not grounders:
            raise ValueError("a cascade needs at least one grounder")
        self.grounders = tuple(grounders)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(grounder_name(g) for g in self.grounders)

    def locate(self, observation: Observation, description: str) -> Grounding:
        reasons: list[str] = []
        for grounder, name in zip(self.grounders, self.names, strict=True):
            try:
                found = grounder.locate(observation, description)
            except GroundingError as exc:
                reasons.append(f"{name}: {exc.message}")
                continue
            return dataclasses.replace(found, tried=(*reasons, *found.tried))
        raise GroundingError(f"no grounder found {description!r} ({' -> '.join(self.names)}): "
                             + "; ".join(reasons))


def auto_grounder(executor: Executor, model: VisionLanguageModel | None = None) -> CascadeGrounder:
    """DOM -> OCR -> model in a browser, OCR -> model on the desktop. The model is left out
    when none is given, and OCR when rapidocr is not installed (with a warning saying how)."""
    from agent.grounding.dom import DOMGrounder
    from agent.grounding.model import ModelGrounder
    from agent.grounding.ocr import INSTALL_HINT, OCRGrounder
    from tools.browser import BrowserExecutor

    grounders: list[Grounder] = []
    if isinstance(executor, BrowserExecutor):
        grounders.append(DOMGrounder(executor))
    if importlib.util.find_spec("rapidocr") is not None:
        grounders.append(OCRGrounder())
    else:
        log.warning("grounding without OCR: %s", INSTALL_HINT)
    if model is not None:
        grounders.append(ModelGrounder(model))
    if not grounders:
        raise GroundingError(f"nothing can ground targets here: {INSTALL_HINT}, or load a model")
    return CascadeGrounder(grounders)
