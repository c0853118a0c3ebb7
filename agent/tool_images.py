"""Images that tools returned: saved beside their step, and shown to the model in later turns.

The loop saves each image a step's tools returned as `step-NNN-tool-K.png` (K from 1, in the
order of the calls) and records the names in `Step.tool_images`, and in a reply of several
calls, under each call's `images` too. The policy shows the images of the steps in its history
window, oldest first and each after a caption naming its step and tool, then the screenshot
(if there is a screen), then the text: the model backend tiles them as it tiles screenshots,
and `GenerationConfig.keep_images` drops the oldest first, so the current screen goes last.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.trajectory import Step
from tools.executor import ActionResult
from tools.tool_output import images_of

if TYPE_CHECKING:
    from PIL.Image import Image

    from agent.trajectory import Trajectory

__all__ = ["ToolImages", "shown_tool_images", "tool_image_name"]

_CACHED = 32  # images kept in memory: more than a history window of ten steps usually holds
_PNG_MODES = ("1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16")
_NAME = re.compile(r"step-\d{3,}-tool-\d+\.png")


def tool_image_name(index: int, k: int) -> str:
    """The file of the k-th image (from 1) that step `index`'s tools returned."""
    return f"step-{index:03d}-tool-{k}.png"


class ToolImages:
    """A run's tool images by file name: saved by `save`, read back by `load` (from memory
    when this process saved them, else from the run directory: a resumed run)."""

    def __init__(self) -> None:
        self._cache: OrderedDict[Path, Image] = OrderedDict()

    def save(self, run_dir: Path, index: int, results: Sequence[ActionResult],
             calls: list[dict[str, Any]] | None = None) -> list[str] | None:
        """Write the images of step `index`'s tool results (`calls[n]` is the record of
        `results[n]`, and gets its images' names); their names, or None when there are none."""
        names: list[str] = []
        for n, result in enumerate(results):
            mine: list[str] = []
            for image in images_of(result):
                name = tool_image_name(index, len(names) + 1)
                # zlib level 1, as screenshots: the write is on the step's path
                (image if image.mode in _PNG_MODES else image.convert("RGB")).save(
                    run_dir / name, format="PNG", compress_level=1)
                self._keep(run_dir / name, image)
                names.append(name)
                mine.append(name)
            if calls is not None and mine:
                calls[n]["images"] = mine
        return names or None

    def load(self, trajectory: Trajectory | None, name: str) -> Image | None:
        """The image `name` of the trajectory's run, or None if it is not there (lost)."""
        if trajectory is None or not _NAME.fullmatch(name):  # only a file of ours, beside its step
            return None
        path = trajectory.run_dir / name
        if (image := self._cache.get(path)) is not None:
            self._cache.move_to_end(path)
            return image
        from PIL import Image as PILImage

        try:
            with PILImage.open(path) as opened:
                opened.load()
                image = opened.copy()
        except (OSError, ValueError):
            return None
        self._keep(path, image)
        return image

    def _keep(self, path: Path, image: Image) -> None:
        self._cache[path] = image
        self._cache.move_to_end(path)
        while len(self._cache) > _CACHED:
            self._cache.popitem(last=False)


def shown_tool_images(history: Sequence[Step], lines: list[str],
                      load: Callable[[str], Image | None] | None) -> tuple[list[str | Image], list[str]]:
    """The parts to put before the screenshot (a caption, then the image, for each tool image
    of `history`), and `lines` (one per step of `history`) saying which steps returned images."""
    parts: list[str | Image] = []
    out = list(lines)
    for n, step in enumerate(history):
        if not step.tool_images:
            continue
        shown = 0
        for name, tool in _images_by_tool(step):
            image = load(name) if load is not None else None
            if image is not None:
                parts += [f"Returned by {tool} in step {step.index}:\n", image, "\n"]
                shown += 1
        lost = len(step.tool_images) - shown
        note = f"{shown} image{'s' if shown != 1 else ''} returned, shown above" if shown else ""
        note += ("; " if note else "") + (f"{lost} image{'s' if lost != 1 else ''} lost" if lost else "")
        out[n] = f"{out[n]} [{note}]"
    return parts, out


def _images_by_tool(step: Step) -> list[tuple[str, str]]:
    """(file name, which tool returned it) for each tool image of the step."""
    if step.calls:
        found = [(name, f"call {k} ({call.get('action', {}).get('action', '?')})")
                 for k, call in enumerate(step.calls, 1) for name in call.get("images") or ()]
        if found:
            return found
    tool = (step.action or {}).get("action", "a tool")
    return [(name, str(tool)) for name in step.tool_images or ()]
