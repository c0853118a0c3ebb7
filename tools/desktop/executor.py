"""DesktopExecutor: observe a monitor or region with mss, act on it with pyautogui.

Coordinates. mss reports monitors (index 0 = all monitors combined, 1.. = each) and
grabs pixels; pyautogui moves the pointer in its own units, which are logical points
where the OS scales the desktop (macOS Retina) and pixels elsewhere. The pure functions
below turn a monitor or region into one `Geometry`, so a screenshot pixel maps to the
pointer through the monitor's offset, the HiDPI factor and any `max_size` downscale.
The HiDPI factor is one for the whole desktop: monitors of mixed scale are not handled.

X11. pyautogui connects to $DISPLAY once, when it is imported, so a process can drive
one X display: `display=` sets $DISPLAY before that import, and a second, different
display is refused. Text is typed by keysym (`tools.desktop.x11.XKeyboard`, which says why).
Elsewhere, ASCII goes through `pyautogui.write` and other text through the clipboard
(pyperclip) and the paste shortcut; that path is not exercised by our tests.

pyautogui's fail-safe stays on: a person who slams the pointer into any of the four
corners of the screen (pyautogui.FAILSAFE_POINTS: (0, 0) and the other three corners of
pyautogui.size() as it was at import, i.e. the X root window, or the primary monitor on
Windows and macOS) stops the run, and it surfaces as ExecutorError. pyautogui checks only
inside its own calls, so we check too: before every action, every few dozen characters
while typing through XTest, and every WAIT_SLICE_S while waiting. So that the agent
cannot trip it itself, a point on a corner pixel is moved one pixel inward.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from tools.actions import (
    BROWSER_ONLY,
    MAX_WAIT_SECONDS,
    Back,
    BaseAction,
    Click,
    Drag,
    Fail,
    Finish,
    Key,
    Move,
    Navigate,
    Scroll,
    Type,
    Wait,
    is_ungrounded,
)
from tools.desktop import x11
from tools.desktop.screens import Rect, capture_geometry, input_scale, monitor_rect, region_rect
from tools.errors import ExecutorError
from tools.executor import ActionResult, Geometry, Observation
from tools.keys import to_pyautogui

__all__ = ["DesktopExecutor"]

log = logging.getLogger(__name__)

INSTALL_HINT = x11.INSTALL_HINT
_DESKTOP_INSTEAD = {
    "navigate": "on the desktop, click the browser's address bar, type the URL and press enter",
    "back": "on the desktop, press alt+left in the browser window",
}
WAIT_SLICE_S = 0.1  # a wait checks the fail-safe this often
DRAG_STEPS = 10  # intermediate pointer moves, so applications see a real drag
X11 = sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd"))


# -- the executor --------------------------------------------------------------------------


@dataclass
class _Backends:
    pyautogui: ModuleType
    sct: Any  # mss.MSS
    screenshot_error: type[Exception]
    xdisplay: Any  # Xlib.display.Display on X11, else None
    keyboard: x11.XKeyboard | None


Handler = Callable[[_Backends, Any], None]


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
        self._backends: _Backends | None = None
        self._rect: Rect = (0, 0, 1, 1)
        self._scale = (1.0, 1.0)
        self._geometry: Geometry | None = None
        self._closed = False
        self._handlers: dict[type[BaseAction], Handler] = {
            Click: self._click, Move: self._move, Drag: self._drag, Scroll: self._scroll, Type: self._type,
            Key: self._key, Wait: self._wait, Navigate: self._nothing, Back: self._nothing,
            Finish: self._nothing, Fail: self._nothing,
        }

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
            _release(backends)

    @property
    def geometry(self) -> Geometry:
        """The map of the latest observation (or of the one `observe()` would make)."""
        self._live()
        if self._geometry is None:
            size = (self._rect[2], self._rect[3])  # mss grabs rect-sized images on X11 and Windows
            self._geometry = capture_geometry(self._rect, size, self._scale, self.max_size)
        return self._geometry

    def _live(self) -> _Backends:
        if self._closed:
            raise ExecutorError("this DesktopExecutor is closed: create a new one")
        if self._backends is None:
            backends = _connect(self.display)
            try:
                monitors = backends.sct.monitors
                self._rect = (
                    region_rect(monitors, self.region) if self.region is not None
                    else monitor_rect(monitors, self.monitor)
                )
                self._scale = input_scale(monitors, tuple(backends.pyautogui.size()))
            except BaseException as exc:
                _release(backends)
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

        b = self._live()
        left, top, width, height = self._rect
        try:
            shot = b.sct.grab({"left": left, "top": top, "width": width, "height": height})
        except b.screenshot_error as exc:
            raise ExecutorError(f"could not capture the screen ({exc}): is the display still up?") from exc
        image = Image.frombytes("RGB", shot.size, shot.bgra, "raw", "BGRX")
        self._geometry = capture_geometry(self._rect, image.size, self._scale, self.max_size)
        if self._geometry.screenshot_size != image.size:
            image = image.resize(self._geometry.screenshot_size, Image.Resampling.LANCZOS)
        window = x11.focused_window_name(b.xdisplay) if b.xdisplay is not None else None
        return Observation(image=image, geometry=self._geometry, window=window)

    # -- execute ------------------------------------------------------------------

    def execute(self, action: BaseAction) -> ActionResult:
        """Run one action. A missed or impossible action is an unsuccessful result."""
        handler = next((self._handlers[c] for c in type(action).__mro__ if c in self._handlers), None)
        if handler is None:
            supported = ", ".join(sorted(c.__name__.lower() for c in self._handlers))
            raise ExecutorError(f"DesktopExecutor cannot run {type(action).__name__}; it runs {supported}")
        if action.name in BROWSER_ONLY:
            return ActionResult.failure(f"{action.name} is browser-only: {_DESKTOP_INSTEAD[action.name]}")
        if is_ungrounded(action):
            return ActionResult.failure(
                f"{action.name} names a target described in words; it must be grounded to x and y first"
            )
        b = self._live()
        start = time.perf_counter()
        try:
            with _translated(b):
                b.pyautogui.failSafeCheck()  # pyautogui checks only in its own calls: XTest typing doesn't
                handler(b, action)
        except _ActionFailed as exc:
            return ActionResult.failure(f"{action.name} failed: {exc}", (time.perf_counter() - start) * 1000)
        return ActionResult(ok=True, elapsed_ms=(time.perf_counter() - start) * 1000)

    def _point(self, b: _Backends, x: int, y: int) -> tuple[int, int]:
        geometry = self.geometry
        width, height = geometry.screenshot_size
        if not (0 <= x < width and 0 <= y < height):
            raise _ActionFailed(f"point ({x}, {y}) is outside the {width}x{height} screenshot")
        dx, dy = geometry.to_device(x, y)
        point = (round(dx), round(dy))
        if point in b.pyautogui.FAILSAFE_POINTS:
            # Nudge off the corner so the agent never trips the person's emergency stop.
            w, h = b.pyautogui.size()
            point = (point[0] + (1 if point[0] < w / 2 else -1), point[1] + (1 if point[1] < h / 2 else -1))
        return point

    def _click(self, b: _Backends, action: Click) -> None:
        assert action.x is not None and action.y is not None
        x, y = self._point(b, action.x, action.y)
        with b.pyautogui.hold([to_pyautogui(k) for k in action.modifiers]):  # released in a finally
            b.pyautogui.click(x, y, clicks=action.clicks, interval=0.0, button=action.button)

    def _move(self, b: _Backends, action: Move) -> None:
        assert action.x is not None and action.y is not None
        b.pyautogui.moveTo(*self._point(b, action.x, action.y))

    def _drag(self, b: _Backends, action: Drag) -> None:
        assert not isinstance(action.start, str) and not isinstance(action.end, str)
        (x0, y0), (x1, y1) = self._point(b, *action.start), self._point(b, *action.end)
        b.pyautogui.moveTo(x0, y0)
        b.pyautogui.mouseDown(x0, y0, button="left")
        try:
            for i in range(1, DRAG_STEPS + 1):
                t = i / DRAG_STEPS
                b.pyautogui.moveTo(round(x0 + (x1 - x0) * t), round(y0 + (y1 - y0) * t))
        finally:
            b.pyautogui.mouseUp(x1, y1, button="left")

    def _scroll(self, b: _Backends, action: Scroll) -> None:
        if action.x is not None and action.y is not None:
            b.pyautogui.moveTo(*self._point(b, action.x, action.y))
        if action.dy:
            b.pyautogui.scroll(-action.dy)  # ours: dy > 0 scrolls down; pyautogui's: positive is up
        if action.dx:
            b.pyautogui.hscroll(action.dx)  # positive scrolls right in both

    def _type(self, b: _Backends, action: Type) -> None:
        if b.keyboard is not None:
            b.keyboard.type(action.text, check=b.pyautogui.failSafeCheck)
        elif action.text.isascii():
            b.pyautogui.write(action.text)
        else:
            import pyperclip  # a dependency of pyautogui; native clipboard on Windows and macOS

            pyperclip.copy(action.text)
            b.pyautogui.hotkey("command" if sys.platform == "darwin" else "ctrl", "v")
        if action.submit:
            b.pyautogui.press("enter")

    def _key(self, b: _Backends, action: Key) -> None:
        b.pyautogui.hotkey(*(to_pyautogui(k) for k in action.keys))

    def _wait(self, b: _Backends, action: Wait) -> None:
        # In slices, checking the fail-safe after each: a plain sleep would not heed it.
        deadline = time.monotonic() + min(action.seconds, MAX_WAIT_SECONDS)
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, WAIT_SLICE_S))
            b.pyautogui.failSafeCheck()

    def _nothing(self, b: _Backends, action: BaseAction) -> None:
        return None


class _ActionFailed(Exception):
    """A handler's way to report a failure of the world."""


# -- connecting: lazy imports ------------------------------------------------------------


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _connect(display: str | None) -> _Backends:
    # Missing packages first: their fix does not depend on the display.
    missing = [name for name in ("mss", "pyautogui") if not _importable(name)]
    if missing:
        raise ExecutorError(f"{' and '.join(missing)} not installed: {INSTALL_HINT}")
    import mss
    import mss.exception

    xdisplay: Any = None
    if X11:
        target, xdisplay, pyautogui = x11.connect(display)
    elif display is not None:
        raise ExecutorError("display= names an X11 display, and this platform has none: leave it out")
    else:
        import pyautogui
    pyautogui.PAUSE = 0  # no sleep after each call; the fail-safe stays on
    grabber = getattr(mss, "MSS", None) or mss.mss  # mss 10.2 deprecates mss.mss()
    try:
        sct = grabber(display=target) if X11 else grabber()
    except mss.exception.ScreenShotError as exc:
        if xdisplay is not None:
            xdisplay.close()
        raise ExecutorError(f"mss cannot capture this screen ({exc})") from exc
    keyboard = x11.XKeyboard(xdisplay) if xdisplay is not None else None
    return _Backends(pyautogui, sct, mss.exception.ScreenShotError, xdisplay, keyboard)


def _release(backends: _Backends) -> None:
    for release in (
        backends.keyboard.restore if backends.keyboard is not None else None,
        backends.sct.close,
        backends.xdisplay.close if backends.xdisplay is not None else None,
    ):
        if release is not None:
            with contextlib.suppress(Exception):  # tearing down: a dead display cannot be tidied
                release()


@contextlib.contextmanager
def _translated(b: _Backends) -> Iterator[None]:
    """pyautogui's and Xlib's errors, in our terms, at the border."""
    fatal: tuple[type[BaseException], ...] = (OSError,)
    if b.xdisplay is not None:
        import Xlib.error

        fatal += (Xlib.error.ConnectionClosedError,)
    try:
        yield
    except x11.CannotType as exc:
        raise _ActionFailed(str(exc)) from exc
    except b.pyautogui.FailSafeException as exc:
        raise ExecutorError(
            "pyautogui's fail-safe fired: the pointer is in a corner of the screen, which is the "
            "emergency stop; move it away from the corner to go on"
        ) from exc
    except fatal as exc:
        raise ExecutorError(f"lost the display ({exc}): check that the X server is running") from exc
