"""What every executor shares: the protocol, the observation, and the coordinate map.

An executor is three methods and a context manager. `observe()` returns the screen;
`execute(action)` performs one GUI action whose points are screenshot pixels, and maps
them to its own input space through the observation's `Geometry`. What the executors
share inside `execute()` (finding an action's handler, refusing a target still in
words) is in tools/dispatch.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from PIL.Image import Image

    from tools.actions import BaseAction

__all__ = ["ActionResult", "Executor", "Geometry", "Observation"]


@dataclass(frozen=True)
class Geometry:
    """Affine map between screenshot pixels and the executor's input coordinates.

    `device = offset + screenshot * (device_size / screenshot_size)` on each axis.
    This one formula covers the HiDPI factor (a scale-2 screenshot is twice the CSS or
    logical size), a downscale applied to the observation, and a monitor's or region's
    offset on a multi-monitor desktop.
    """

    screenshot_size: tuple[int, int]
    device_size: tuple[int, int]
    offset: tuple[int, int] = (0, 0)

    @classmethod
    def identity(cls, width: int, height: int) -> Geometry:
        return cls((width, height), (width, height))

    @property
    def scale(self) -> tuple[float, float]:
        """Device units per screenshot pixel, per axis."""
        return (
            self.device_size[0] / self.screenshot_size[0],
            self.device_size[1] / self.screenshot_size[1],
        )

    def to_device(self, x: float, y: float) -> tuple[float, float]:
        sx, sy = self.scale
        return (self.offset[0] + x * sx, self.offset[1] + y * sy)

    def to_screenshot(self, x: float, y: float) -> tuple[float, float]:
        sx, sy = self.scale
        return ((x - self.offset[0]) / sx, (y - self.offset[1]) / sy)


@dataclass(frozen=True)
class Observation:
    """One look at the screen. `image` is what the model sees; points refer to it."""

    image: Image
    geometry: Geometry
    url: str | None = None
    title: str | None = None
    window: str | None = None
    timestamp: float = field(default_factory=time.time)
    settle_ms: float = 0.0
    settle_reason: str | None = None  # why the settle ended: "quiet", "bound" or "error"

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size

    def metadata(self) -> dict[str, object]:
        """The JSON-safe part of the observation, for trajectory records."""
        return {
            "size": list(self.image.size),
            "url": self.url,
            "title": self.title,
            "window": self.window,
            "timestamp": self.timestamp,
            "settle_ms": round(self.settle_ms, 2),
            "settle_reason": self.settle_reason,
            "geometry": {
                "screenshot_size": list(self.geometry.screenshot_size),
                "device_size": list(self.geometry.device_size),
                "offset": list(self.geometry.offset),
            },
        }


class ActionResult(BaseModel):
    """What happened when an action ran. A failure of the world is data, not an exception."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    error: str | None = None
    output: str | None = None
    elapsed_ms: float = 0.0

    @classmethod
    def failure(cls, error: str, elapsed_ms: float = 0.0) -> ActionResult:
        return cls(ok=False, error=error, elapsed_ms=elapsed_ms)


@runtime_checkable
class Executor(Protocol):
    """Something that can show the screen and act on it."""

    def observe(self) -> Observation: ...

    def execute(self, action: BaseAction) -> ActionResult: ...

    def close(self) -> None: ...

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc_info: object) -> None: ...
