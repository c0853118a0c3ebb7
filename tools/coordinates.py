"""The 0..1000 coordinate rule, in both directions. This module is its one owner.

The model speaks InternVL's convention: numbers from 0 to `MODEL_SPACE_MAX` (1000),
relative to the image it was shown. Every action inside the framework carries pixels of
that image. So:

- `to_pixels` maps model space to screenshot pixels: the parser uses it for points, and
  `parse_box` for the grounder's `[[x1, y1, x2, y2]]` boxes;
- `to_model_space` maps pixels back: the policy uses it to show the model its earlier
  actions in the space it speaks;
- `MODEL_SPACE_SCHEMA` tells the model the rule: the JSON schema of x, y and points
  that the registry exports for GUI actions.

It lives in `tools` because the registry needs the schema, and `tools` never imports
`agent`. Screenshot pixels -> device input is another rule, owned by `tools.executor.Geometry`.
"""

from __future__ import annotations

import re
from typing import Any

from tools.errors import ParseError

__all__ = [
    "BOX_RE",
    "MAX_SCAN",
    "MODEL_SPACE_MAX",
    "MODEL_SPACE_SCHEMA",
    "in_model_space",
    "parse_box",
    "short_repr",
    "to_model_space",
    "to_pixels",
]

MODEL_SPACE_MAX = 1000  # the far edge of the image: 0..1000 across and down, whatever its pixels
MAX_SCAN = 20_000  # characters of model output looked at; an action or a box is never longer
_NUMBER = r"\s*([-+]?\d+(?:\.\d+)?)\s*"
BOX_RE = re.compile(rf"\[\[{_NUMBER},{_NUMBER},{_NUMBER},{_NUMBER}\]")

_SPAN, _MAX = f"0..{MODEL_SPACE_MAX}", MODEL_SPACE_MAX
_COORDINATE_SCHEMA: dict[str, Any] = {"type": "integer", "minimum": 0, "maximum": MODEL_SPACE_MAX}
# GUI actions hold screenshot pixels, but the model writes model space and the parser
# converts; the exported schema describes what the model should write.
MODEL_SPACE_SCHEMA: dict[str, dict[str, Any]] = {
    "x": {**_COORDINATE_SCHEMA, "description": f"{_SPAN} across the image width (0 left, {_MAX} right)"},
    "y": {**_COORDINATE_SCHEMA, "description": f"{_SPAN} down the image height (0 top, {_MAX} bottom)"},
    **{
        end: {
            "anyOf": [
                {"type": "array", "items": _COORDINATE_SCHEMA, "minItems": 2, "maxItems": 2},
                {"type": "string", "minLength": 1},
            ],
            "description": f"a point [x, y] in {_SPAN} image coordinates, or the target described in words",
        }
        for end in ("start", "end")
    },
}


def in_model_space(value: float) -> bool:
    """Whether `value` lies in 0..1000; false for NaN."""
    return 0 <= value <= MODEL_SPACE_MAX


def to_pixels(value: object, size: int, *, field: str = "coordinate") -> int:
    """Map one InternVL coordinate (0..1000) onto `size` pixels: round(v * (size - 1) / 1000)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{field} must be a number from 0 to {MODEL_SPACE_MAX}, not {short_repr(value)}")
    if not in_model_space(value):  # no float() that could overflow on a huge int
        raise ValueError(
            f"{field} must be from 0 to {MODEL_SPACE_MAX} (relative to the image), got {short_repr(value)}"
        )
    return round(value * (size - 1) / MODEL_SPACE_MAX)


def to_model_space(pixel: Any, size: int) -> int:
    """Map one pixel of an image `size` pixels long back to 0..1000: round(p * 1000 / (size - 1)).

    A one-pixel image is treated as two pixels long, so the map never divides by zero.
    """
    return round(pixel * MODEL_SPACE_MAX / max(size - 1, 1))


def parse_box(text: str, *, image_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The first InternVL box `[[x1, y1, x2, y2]]` (0..1000) in `text`, as (left, top, right,
    bottom) pixels of a screenshot of `image_size`; ParseError when there is none."""
    match = BOX_RE.search(text[:MAX_SCAN]) if isinstance(text, str) else None
    if match is None:
        raise ParseError(
            f"no box found: answer <ref>what</ref><box>[[x1, y1, x2, y2]]</box>, corners {_SPAN}"
        )
    x1, y1, x2, y2 = (float(corner) for corner in match.groups())
    try:
        (left, right), (top, bottom) = (
            sorted(to_pixels(value, image_size[axis], field="box corner") for value in pair)
            for axis, pair in enumerate(((x1, x2), (y1, y2)))
        )
    except ValueError as exc:
        raise ParseError(f"box {match.group(0)[:60]}]: {exc}") from None
    return left, top, right, bottom


def short_repr(value: object, limit: int = 40) -> str:
    """`value` as the model wrote it, cut to `limit` characters for an error message."""
    try:
        shown = repr(value)
    except Exception:  # a repr can only fail on exotic objects; the type name will do
        shown = type(value).__name__
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."
