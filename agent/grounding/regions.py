"""Where a screenshot has something on it: boxes around what differs from its background.

OCR reads these crops instead of the whole screen, for two reasons. PP-OCR's text detector
loses small text on a large, mostly empty screen: on a black 1920x1080 Xvfb desktop with one
small Tk window it found no text at all, while the same window cropped (or on a 1280x800
screen) reads in full. And detection costs in proportion to the pixels it sees, so an empty
margin, a blank desktop or the space beside a dialog is time spent on nothing.

The background is the screenshot's commonest colour. Content closer than `gap` pixels is one
region (a line's words, a button and its label), so no word is cut in two.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.grounding import Box

if TYPE_CHECKING:
    import numpy as np

__all__ = ["content_regions"]

ALIGN = 32  # the text detector's input sides are multiples of this: crops are grown to them
MAX_REGIONS = 24  # beyond this, per-crop overhead outweighs the pixels saved: join nearer ones


def content_regions(rgb: np.ndarray, *, tolerance: int = 24, gap: int = 24, pad: int = 16,
                    whole_above: float = 0.85) -> list[Box]:
    """Boxes around the content of an RGB screenshot (H x W x 3, uint8), top to bottom: each
    group of pixels that differ from the background by more than `tolerance` in some channel,
    with groups less than `gap` px apart joined, grown by `pad` px and to multiples of 32 (inside
    the image), and overlapping boxes merged. The whole image when the content covers more than
    `whole_above` of it; [] when it is one colour."""
    import cv2
    import numpy as np

    height, width = rgb.shape[:2]
    whole = Box(0, 0, width - 1, height - 1)
    background = _commonest_colour(rgb)
    differs = cv2.absdiff(rgb, np.full_like(rgb, background)).max(axis=2) > tolerance
    cell = max(gap // 3, 1)  # content is pooled into cells, and cells within `gap` joined
    grid_w, grid_h = -(-width // cell), -(-height // cell)
    padded = np.zeros((grid_h * cell, grid_w * cell), dtype=bool)
    padded[:height, :width] = differs
    grid = padded.reshape(grid_h, cell, grid_w, cell).any(axis=(1, 3)).astype(np.uint8)
    if not grid.any():
        return []
    reach = 1
    while True:
        joined = cv2.dilate(grid, np.ones((2 * reach + 1, 2 * reach + 1), np.uint8))
        count, _, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
        if count - 1 <= MAX_REGIONS:
            break
        reach *= 2
    boxes = []
    for x, y, w, h, _ in stats[1:].tolist():  # in cells, grown by `reach` cells on each side
        left, top = (x + reach) * cell - pad, (y + reach) * cell - pad
        right, bottom = (x + w - reach) * cell + pad, (y + h - reach) * cell + pad
        boxes.append(_aligned(left, top, right, bottom, width, height))
    boxes = _merged(boxes, width, height)
    if sum(b.width * b.height for b in boxes) > whole_above * width * height:
        return [whole]
    return sorted(boxes, key=lambda b: (b.top, b.left))


def _commonest_colour(rgb: np.ndarray) -> np.ndarray:
    import numpy as np

    sample = rgb[::7, ::7].reshape(-1, 3).astype(np.uint32)
    packed = (sample[:, 0] << 16) | (sample[:, 1] << 8) | sample[:, 2]
    values, counts = np.unique(packed, return_counts=True)
    value = int(values[counts.argmax()])
    return np.array([(value >> 16) & 255, (value >> 8) & 255, value & 255], dtype=rgb.dtype)


def _aligned(left: int, top: int, right: int, bottom: int, width: int, height: int) -> Box:
    """The box [left, right) x [top, bottom), inside the image, grown to sides that are multiples
    of ALIGN where the image allows (so the detector need not stretch the crop)."""

    def span(start: int, end: int, limit: int) -> tuple[int, int]:
        start, end = max(start, 0), min(end, limit)
        size = min(-(-(end - start) // ALIGN) * ALIGN, limit)
        start = max(min(start - (size - (end - start)) // 2, limit - size), 0)
        return start, start + size - 1

    x1, x2 = span(left, right, width)
    y1, y2 = span(top, bottom, height)
    return Box(x1, y1, x2, y2)


def _merged(boxes: list[Box], width: int, height: int) -> list[Box]:
    """Overlapping boxes replaced by their (aligned) union, until none overlap: text read twice
    would count twice."""
    merged = list(boxes)
    changed = True
    while changed:
        changed = False
        for i in range(len(merged)):
            for j in range(i + 1, len(merged)):
                a, b = merged[i], merged[j]
                if a.left <= b.right and b.left <= a.right and a.top <= b.bottom and b.top <= a.bottom:
                    merged[i] = _aligned(min(a.left, b.left), min(a.top, b.top), max(a.right, b.right) + 1,
                                         max(a.bottom, b.bottom) + 1, width, height)
                    del merged[j]
                    changed = True
                    break
            if changed:
                break
    return merged
