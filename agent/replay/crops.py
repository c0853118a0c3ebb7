"""A target's recorded picture: cut from the step's screenshot, and found again on a new screen.

A crop is a small PNG of the target as it looked when the run was recorded: its box (padded a
little) when a grounder or the page said where it was, else a window around the point. The
PNG's text chunks keep the point inside the crop and the device scale it was taken at, so a
match on a screen of another scale (or with the target resized) still yields the point to act
on. Matching is OpenCV's normalised cross-correlation (TM_CCOEFF_NORMED), run in device
pixels over a few scales around the ratio of the two screens' scales.

`MATCH_THRESHOLD` was set from measurements on the replay test app (bench/replay.py, quoted in
the README's "Compile and replay"): a control that kept its look scored 0.90 to 1.00 on its own
page, and 0.99 moved to the other side of the page at device scale 2; but a text button's crop
scored up to 0.88 on other pages, on a button of the same style with other words. So a match
must clear 0.93: a crop heals what moved or was renamed and still looks the same, and a control
that was restyled or relabelled (0.67 to 0.77 on its own page) is left to the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agent.grounding import Box
from tools.errors import AgentError

if TYPE_CHECKING:
    import numpy as np
    from PIL.Image import Image

__all__ = ["MATCH_THRESHOLD", "Crop", "CropMatch", "cut_crop", "load_crop", "match_crop"]

MATCH_THRESHOLD = 0.93
PAD = 4  # device pixels around a known box: the edge of the control is part of its picture
WINDOW = (120, 48)  # device pixels around a point with no box
MAX_SHARE = 0.4  # a box wider or taller than this share of the screen is a container, not the target
# Sizes tried, relative to the ratio of the two screens' device scales: a control may have grown
# or shrunk a little when the page was restyled.
SCALES = (1.0, 0.9, 1.1, 0.8, 1.25, 0.7, 1.4)
_MIN_CONTRAST = 4.0  # a crop whose grey levels vary less than this is blank: it would match anywhere


@dataclass(frozen=True)
class Crop:
    """A crop image, the point to act on inside it (its pixels), and the device scale it was cut at."""

    image: Image
    point: tuple[int, int]
    scale: float

    def save(self, path: Path) -> None:
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        info.add_text("point", f"{self.point[0]},{self.point[1]}")
        info.add_text("scale", f"{self.scale:g}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.image.save(path, format="PNG", pnginfo=info)


@dataclass(frozen=True)
class CropMatch:
    """Where a crop matched best on a screen: its score (-1..1), box and point (screenshot pixels)."""

    score: float
    box: Box
    point: tuple[int, int]

    def describe(self) -> str:
        return f"best match {self.score:.2f} at {list(self.point)}"


def cut_crop(image: Image, point: tuple[int, int], scale: float, box: Box | None = None) -> Crop:
    """The crop of `image` showing the target at `point` (screenshot pixels); `box`: the target's
    own box when known; `scale`: screenshot pixels per device pixel."""
    width, height = image.size
    x, y = point
    pad = round(PAD * scale)
    if box is not None and box.width <= MAX_SHARE * width and box.height <= MAX_SHARE * height \
            and box.width >= 4 * scale and box.height >= 4 * scale and box.contains(x, y):
        left, top, right, bottom = box.left - pad, box.top - pad, box.right + pad + 1, box.bottom + pad + 1
    else:
        half_w, half_h = round(WINDOW[0] * scale / 2), round(WINDOW[1] * scale / 2)
        left, top, right, bottom = x - half_w, y - half_h, x + half_w, y + half_h
    left, top = max(0, left), max(0, top)
    right, bottom = min(width, right), min(height, bottom)
    return Crop(image.crop((left, top, right, bottom)).convert("RGB"), (x - left, y - top), scale)


def load_crop(path: Path) -> Crop:
    """A crop saved by `Crop.save`; AgentError when it cannot be read."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    try:
        with PILImage.open(path) as opened:
            opened.load()
            image = opened.convert("RGB")
            text = dict(getattr(opened, "text", {}) or {})
    except (OSError, UnidentifiedImageError) as exc:
        raise AgentError(f"cannot read the crop {path}: {exc}: compile the run again") from None
    try:
        px, py = (int(v) for v in str(text.get("point", "")).split(","))
        scale = float(text.get("scale", "1"))
    except ValueError:
        px, py, scale = image.width // 2, image.height // 2, 1.0  # a crop made by hand: its centre
    return Crop(image, (px, py), scale)


def match_crop(screen: Image, crop: Crop, screen_scale: float) -> CropMatch | None:
    """The best match of `crop` on `screen` (whose device scale is `screen_scale`) over SCALES;
    None when the crop is blank or larger than the screen at every scale."""
    import cv2
    import numpy as np

    shown = _gray(screen, 1.0 / screen_scale)  # both in device pixels: fewer pixels, one size
    template = _gray(crop.image, 1.0 / crop.scale)
    if float(template.std()) < _MIN_CONTRAST:
        return None
    best: tuple[float, tuple[int, int], float] | None = None
    for factor in SCALES:
        sized = _resized(template, factor)
        th, tw = sized.shape
        if th < 4 or tw < 4 or th > shown.shape[0] or tw > shown.shape[1]:
            continue
        scores = cv2.matchTemplate(shown, sized, cv2.TM_CCOEFF_NORMED)
        scores = np.nan_to_num(scores, nan=-1.0, posinf=-1.0, neginf=-1.0)
        _, score, _, (left, top) = cv2.minMaxLoc(scores)
        if best is None or score > best[0]:
            best = (float(score), (left, top), factor)
    if best is None:
        return None
    score, (left, top), factor = best
    # Back to the screen's pixels: device pixels times its scale; the crop's point follows its size.
    ratio = factor * screen_scale / crop.scale
    th, tw = round(crop.image.height * ratio), round(crop.image.width * ratio)
    x0, y0 = round(left * screen_scale), round(top * screen_scale)
    box = Box(x0, y0, x0 + tw - 1, y0 + th - 1)
    point = (x0 + round(crop.point[0] * ratio), y0 + round(crop.point[1] * ratio))
    return CropMatch(round(score, 4), box, point)


def _gray(image: Image, factor: float) -> np.ndarray:
    import numpy as np

    gray = np.asarray(image.convert("L"), dtype=np.uint8)
    return _resized(gray, factor)


def _resized(gray: np.ndarray, factor: float) -> np.ndarray:
    import cv2

    if abs(factor - 1.0) < 1e-6:
        return gray
    height, width = gray.shape
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
