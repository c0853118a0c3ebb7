"""DesktopExecutor: observe a monitor or region with mss, act on it with pyautogui.

Coordinates. mss reports monitors (index 0 = all monitors combined, 1.. = each) and
grabs pixels; pyautogui moves the pointer in its own units, which are logical points
where the OS scales the desktop (macOS Retina) and pixels elsewhere. The pure functions
of `tools.desktop.screens` turn a monitor or region into one `Geometry`, so a screenshot
pixel maps to the pointer through the monitor's offset, the HiDPI factor and any
`max_size` downscale. The HiDPI factor is one for the whole desktop: monitors of mixed
scale are not handled.

X11. pyautogui connects to $DISPLAY once, when it is imported, so a process can drive
one X display: `display=` sets $DISPLAY before that import, and a second, different
display is refused (`tools.desktop.backends`, `tools.desktop.x11`). The actions
themselves are in `tools.desktop.input`.

pyautogui's fail-safe stays on: a person who slams the pointer into any of the four
corners of the screen (pyautogui.FAILSAFE_POINTS: (0, 0) and the other three corners of
pyautogui.size() as it was at import, i.e. the X root window, or the primary monitor on
Windows and macOS) stops the run, and it surfaces as ExecutorError. pyautogui checks only
inside its own calls, so we check too: before every action, every few dozen characters
while typing through XTest, and every WAIT_SLICE_S while waiting. So that the agent
cannot trip it itself, a point on a corner pixel is moved one pixel inward.
"""

from __future__ import annotations

import logging
import time

from tools.actions import BROWSER_ONLY, BaseAction
from tools.desktop import x11
from tools.desktop.backends import Backends, connect, release
from tools.desktop.input import DesktopInput, translated
from tools.desktop.screens import Rect, capture_geometry, input_scale, monitor_rect, region_rect
from tools.dispatch import ActionFailed, Dispatcher, refuse_ungrounded
from tools.errors import ExecutorError
from tools.executor import ActionResult, Geometry, Observation

__all__ = ["DesktopExecutor"]

log = logging.getLogger(__name__)

_DESKTOP_INSTEAD = {
    "navigate": "on the desktop, click the browser's address bar, type the URL and press enter",
    "back": "on the desktop, press alt+left in the browser window",
}


class DesktopExecutor:
    """An Executor for the desktop: a monitor (mss numbering) or an absolute `region`.

    `region=(left, top, width, height)` takes precedence over `monitor`. `max_size`
    downscales observations to fit; actions still land on the full-resolution pixel.
    """

    def __init__(
        self,
        monitor: int = 1,
        region: tuple[int, int, int, int] | None = None,
        display: str | None = None,
        max_size: tuple[int, int] | None = None,
    ) -> None:
        if region is not None and len(region) != 4:
            raise ValueError("region must be (left, top, width, height)")
        if max_size is not None and (len(max_size) != 2 or min(max_size) <= 0):
            raise ValueError("max_size must be (width, height), both positive")
        self.monitor, self.region, self.display, self.max_size = monitor, region, display, max_size
        self._backends: Backends | None = None
        self._rect: Rect = (0, 0, 1, 1)
        self._scale = (1.0, 1.0)
        self._geometry: Geometry | None = None
        self._closed = False
        self._dispatcher = Dispatcher("DesktopExecutor", DesktopInput(lambda: self.geometry))

    def __enter__(self) -> DesktopExecutor:
        self._live()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the screen grabber and any borrowed keycodes. Safe to call more than once."""
        self._closed = True
        backends, self._backends = self._backends, None
        if backends is not None:
            release(backends)

    @property
    def geometry(self) -> Geometry:
        """The map of the latest observation (or of the one `observe()` would make)."""
        self._live()
        if self._geometry is None:
            size = (self._rect[2], self._rect[3])  # mss grabs rect-sized images on X11 and Windows
            self._geometry = capture_geometry(self._rect, size, self._scale, self.max_size)
        return self._geometry

    def _live(self) -> Backends:
        if self._closed:
            raise ExecutorError("this DesktopExecutor is closed: create a new one")
        if self._backends is None:
            backends = connect(self.display)
            try:
                monitors = backends.grabber.monitors
                self._rect = (
                    region_rect(monitors, self.region) if self.region is not None
                    else monitor_rect(monitors, self.monitor)
                )
                self._scale = input_scale(monitors, tuple(backends.pyautogui.size()))
            except BaseException as exc:
                release(backends)
                if isinstance(exc, backends.screenshot_error):
                    raise ExecutorError(f"mss cannot list the monitors ({exc})") from exc
                raise
            self._backends = backends
            log.debug("desktop capture %s, input scale %s", self._rect, self._scale)
        return self._backends

    # -- observe ------------------------------------------------------------------

    def observe(self) -> Observation:
        """Grab the monitor or region; the geometry maps its pixels to pointer coordinates."""
        from PIL import Image

        backends = self._live()
        left, top, width, height = self._rect
        try:
            shot = backends.grabber.grab({"left": left, "top": top, "width": width, "height": height})
        except backends.screenshot_error as exc:
            raise ExecutorError(f"could not capture the screen ({exc}): is the display still up?") from exc
        image = Image.frombytes("RGB", shot.size, shot.bgra, "raw", "BGRX")
        self._geometry = capture_geometry(self._rect, image.size, self._scale, self.max_size)
        if self._geometry.screenshot_size != image.size:
            image = image.resize(self._geometry.screenshot_size, Image.Resampling.LANCZOS)
        xdisplay = backends.xdisplay
        window = x11.focused_window_name(xdisplay) if xdisplay is not None else None
        return Observation(image=image, geometry=self._geometry, window=window)

    # -- execute ------------------------------------------------------------------

    def execute(self, action: BaseAction) -> ActionResult:
        """Run one action. A missed or impossible action is an unsuccessful result."""
        handler = self._dispatcher.handler_for(action)
        if action.name in BROWSER_ONLY:
            return ActionResult.failure(f"{action.name} is browser-only: {_DESKTOP_INSTEAD[action.name]}")
        if (ungrounded := refuse_ungrounded(action)) is not None:
            return ungrounded
        backends = self._live()
        start = time.perf_counter()
        try:
            with translated(backends):
                # pyautogui checks only in its own calls: XTest typing doesn't.
                backends.pyautogui.failSafeCheck()
                handler(backends, action)
        except ActionFailed as exc:
            return ActionResult.failure(f"{action.name} failed: {exc}", (time.perf_counter() - start) * 1000)
        return ActionResult(ok=True, elapsed_ms=(time.perf_counter() - start) * 1000)
