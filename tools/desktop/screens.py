"""Screen geometry for the desktop: mss-style monitor lists -> one `Geometry`.

Pure functions, so multi-monitor layouts, negative offsets and HiDPI factors are tested
without a display (Xvfb shows mss a single monitor). mss numbers monitors 0 = all
combined, 1.. = each; rectangles are (left, top, width, height) in mss's physical pixels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tools.errors import ExecutorError
from tools.executor import Geometry

__all__ = ["Rect", "capture_geometry", "fit_within", "input_scale", "monitor_rect", "region_rect"]

Rect = tuple[int, int, int, int]  # left, top, width, height, in mss's (physical) pixels


def _describe(monitors: Sequence[Mapping[str, int]]) -> str:
    return "; ".join(
        f"{index} = {'all monitors ' if index == 0 else ''}"
        f"{each['width']}x{each['height']} at ({each['left']}, {each['top']})"
        for index, each in enumerate(monitors)
    )


def monitor_rect(monitors: Sequence[Mapping[str, int]], monitor: int) -> Rect:
    """The rectangle of mss monitor `monitor` (0 = all combined), or ExecutorError listing them."""
    if not 0 <= monitor < len(monitors):
        raise ExecutorError(
            f"monitor {monitor} does not exist; this screen has {_describe(monitors)}: "
            "pass one of those numbers as monitor="
        )
    chosen = monitors[monitor]
    return (chosen["left"], chosen["top"], chosen["width"], chosen["height"])


def region_rect(monitors: Sequence[Mapping[str, int]], region: Sequence[int]) -> Rect:
    """Check that `region` (left, top, width, height) lies on the virtual screen."""
    left, top, width, height = (int(v) for v in region)
    everything = monitors[0]
    right, bottom = everything["left"] + everything["width"], everything["top"] + everything["height"]
    if width <= 0 or height <= 0 or left < everything["left"] or top < everything["top"] \
            or left + width > right or top + height > bottom:
        raise ExecutorError(
            f"region {tuple(region)} is not a non-empty rectangle inside the screen "
            f"({everything['width']}x{everything['height']} at ({everything['left']}, {everything['top']})): "
            "give (left, top, width, height) in absolute screen pixels"
        )
    return (left, top, width, height)


def input_scale(monitors: Sequence[Mapping[str, int]], logical_size: tuple[int, int]) -> tuple[float, float]:
    """Input units per mss pixel, from pyautogui's screen size.

    pyautogui.size() is the whole root window on X11 but the primary display on Windows
    and macOS, so it is compared with the virtual screen first, then with the primary.
    Equal sizes mean no scaling; a Retina primary at 2x gives 0.5.
    """
    everything = monitors[0]
    primary = next((each for each in monitors[1:] if each.get("is_primary")), None) or next(
        (each for each in monitors[1:] if each["left"] == 0 and each["top"] == 0), everything
    )
    for candidate in (everything, primary):
        if (candidate["width"], candidate["height"]) == tuple(logical_size):
            return (1.0, 1.0)
    return (logical_size[0] / primary["width"], logical_size[1] / primary["height"])


def fit_within(size: tuple[int, int], max_size: tuple[int, int] | None) -> tuple[int, int]:
    """The largest size with `size`'s aspect ratio that fits `max_size`; never enlarges."""
    if max_size is None or (size[0] <= max_size[0] and size[1] <= max_size[1]):
        return size
    ratio = min(max_size[0] / size[0], max_size[1] / size[1])
    return (max(1, round(size[0] * ratio)), max(1, round(size[1] * ratio)))


def capture_geometry(
    rect: Rect, image_size: tuple[int, int], scale: tuple[float, float], max_size: tuple[int, int] | None
) -> Geometry:
    """Screenshot pixels (after any downscale) -> pyautogui coordinates, for a capture of `rect`."""
    left, top, width, height = rect
    sx, sy = scale
    return Geometry(
        screenshot_size=fit_within(image_size, max_size),
        device_size=(round(width * sx), round(height * sy)),
        offset=(round(left * sx), round(top * sy)),
    )
