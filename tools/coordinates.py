"""The coordinate rule's one conversion: InternVL's 0..1000 model space -> screenshot pixels.

The model speaks integers from 0 to 1000 relative to the image it was shown; every action
inside the framework carries pixels of that image. The parser and the grounder convert
through here; only the policy maps back, to show the model its earlier actions.
"""

from __future__ import annotations

import re

from tools.errors import ParseError

__all__ = ["BOX_RE", "MAX_SCAN", "parse_box", "short_repr", "to_pixels"]

MAX_SCAN = 20_000  # characters of model output looked at; an action or a box is never longer
_NUM = r"\s*([-+]?\d+(?:\.\d+)?)\s*"
BOX_RE = re.compile(rf"\[\[{_NUM},{_NUM},{_NUM},{_NUM}\]")


def parse_box(text: str, *, image_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The first InternVL box `[[x1, y1, x2, y2]]` (0..1000) in `text`, as (left, top, right,
    bottom) pixels of a screenshot of `image_size`; ParseError when there is none."""
    match = BOX_RE.search(text[:MAX_SCAN]) if isinstance(text, str) else None
    if match is None:
        raise ParseError("no box found: answer <ref>what</ref><box>[[x1, y1, x2, y2]]</box>, corners 0..1000")
    x1, y1, x2, y2 = (float(g) for g in match.groups())
    try:
        (left, right), (top, bottom) = (
            sorted(to_pixels(v, image_size[axis], field="box corner") for v in pair)
            for axis, pair in enumerate(((x1, x2), (y1, y2)))
        )
    except ValueError as exc:
        raise ParseError(f"box {match.group(0)[:60]}]: {exc}") from None
    return left, top, right, bottom


def to_pixels(value: object, size: int, *, field: str = "coordinate") -> int:
    """Map one InternVL coordinate (0..1000) onto `size` pixels: round(v * (size - 1) / 1000)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{field} must be a number from 0 to 1000, not {short_repr(value)}")
    if not 0 <= value <= 1000:  # also false for NaN; no float() that could overflow on a huge int
        raise ValueError(f"{field} must be from 0 to 1000 (relative to the image), got {short_repr(value)}")
    return round(value * (size - 1) / 1000)


def short_repr(value: object, limit: int = 40) -> str:
    """`value` as the model wrote it, cut to `limit` characters for an error message."""
    try:
        shown = repr(value)
    except Exception:  # a repr can only fail on exotic objects; the type name will do
        shown = type(value).__name__
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."
