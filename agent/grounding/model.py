"""Grounding with a vision-language model: InternVL's own grounding prompt, answered in 0..1000.

On a large screen one pass is coarse: InternVL sees the screenshot as at most a few 448-px
tiles, so a small target is a few pixels of a tile. `zoom` adds a second pass on a crop
around the first box, shown at tile resolution (448 px, or about twice the box), whose box
is mapped back to the full screenshot. It is on by default above 1920x1080.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.grounding import Box, Grounding
from agent.prompts import GROUNDING_PROMPT
from model.base import GenerationConfig, Message, VisionLanguageModel
from tools.coordinates import parse_box
from tools.errors import GroundingError, ParseError
from tools.executor import Observation

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["ZOOM_ABOVE", "ModelGrounder", "zoom_window"]

TILE = 448  # InternVL's tile side: a crop this size is seen at full resolution
ZOOM_ABOVE = 1920 * 1080  # auto zoom on screens with more pixels than this
SCORE = 0.5  # a model's box comes with no calibrated confidence


def zoom_window(box: Box, image_size: tuple[int, int], tile: int = TILE) -> Box:
    """The crop for the second pass: about twice `box` on each axis, at least one tile,
    centred on the box and shifted (never shrunk) to stay inside the image."""
    width, height = image_size
    crop_w = min(max(2 * box.width, tile), width)
    crop_h = min(max(2 * box.height, tile), height)
    cx, cy = box.center
    left = min(max(cx - crop_w // 2, 0), width - crop_w)
    top = min(max(cy - crop_h // 2, 0), height - crop_h)
    return Box(left, top, left + crop_w - 1, top + crop_h - 1)


class ModelGrounder:
    """Grounds with a vision-language model and InternVL's grounding prompt, greedily.

    `zoom`: True always refines on a crop, False never, None (default) above 1920x1080.
    """

    def __init__(self, model: VisionLanguageModel, *, max_new_tokens: int = 48,
                 zoom: bool | None = None) -> None:
        self.model = model
        self.generation = GenerationConfig(max_new_tokens=max_new_tokens)
        self.zoom = zoom

    def locate(self, observation: Observation, description: str) -> Grounding:
        box, answer = self._ask(observation.image, description)
        if box is None:
            raise GroundingError(
                f"could not find {description!r} on the screen (the grounding answer was {answer[:80]!r}): "
                "describe it another way, or give x and y"
            )
        width, height = observation.size
        zoom = self.zoom if self.zoom is not None else width * height > ZOOM_ABOVE
        window = zoom_window(box, observation.size)
        if zoom and (window.width < width or window.height < height):
            crop = observation.image.crop((window.left, window.top, window.right + 1, window.bottom + 1))
            refined, _ = self._ask(crop, description)
            if refined is not None:  # no box on the crop: the first pass stands
                box = Box(refined.left + window.left, refined.top + window.top,
                          refined.right + window.left, refined.bottom + window.top)
        return Grounding.of(box, "model", SCORE)

    def _ask(self, image: Image, description: str) -> tuple[Box | None, str]:
        """(the model's box for `description` on `image` in its pixels, or None; its answer)."""
        prompt = Message.user(image, GROUNDING_PROMPT.format(description))
        answer = self.model.generate([prompt], self.generation).text
        try:
            return Box(*parse_box(answer, image_size=image.size)), answer
        except ParseError:
            return None, answer
