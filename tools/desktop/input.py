"""How each GUI action becomes pyautogui input on the desktop.

`DesktopInput` is the desktop's `tools.dispatch.ActionHandlers`: the executor's
Dispatcher finds the method for an action. Points arrive in screenshot pixels and go
through the executor's current Geometry to pointer coordinates; a point on a corner
pixel, where pyautogui's fail-safe would fire, is moved one pixel inward.

Typing. On X11, text is typed by keysym (`tools.desktop.x11.XKeyboard`, which says why).
Elsewhere, ASCII goes through `pyautogui.write` and other text through the clipboard
(pyperclip) and the paste shortcut; that path is not exercised by our tests.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator

from tools.actions import MAX_WAIT_SECONDS, BaseAction, Click, Drag, Key, Move, Scroll, Type, Wait
from tools.desktop import x11
from tools.desktop.backends import Backends
from tools.dispatch import DRAG_STEPS, ActionFailed
from tools.errors import ExecutorError
from tools.executor import Geometry
from tools.keys import to_pyautogui

__all__ = ["WAIT_SLICE_S", "DesktopInput", "translated"]

WAIT_SLICE_S = 0.1  # a wait checks the fail-safe this often


class DesktopInput:
    """The action handlers; `geometry` gives the map of the latest observation."""

    def __init__(self, geometry: Callable[[], Geometry]) -> None:
        self._geometry = geometry

    def _point(self, backends: Backends, x: int, y: int) -> tuple[int, int]:
        geometry = self._geometry()
        width, height = geometry.screenshot_size
        if not (0 <= x < width and 0 <= y < height):
            raise ActionFailed(f"point ({x}, {y}) is outside the {width}x{height} screenshot")
        device_x, device_y = geometry.to_device(x, y)
        point = (round(device_x), round(device_y))
        if point in backends.pyautogui.FAILSAFE_POINTS:
            # Nudge off the corner so the agent never trips the person's emergency stop.
            screen_width, screen_height = backends.pyautogui.size()
            point = (
                point[0] + (1 if point[0] < screen_width / 2 else -1),
                point[1] + (1 if point[1] < screen_height / 2 else -1),
            )
        return point

    def click(self, backends: Backends, action: Click) -> None:
        assert action.x is not None and action.y is not None
        x, y = self._point(backends, action.x, action.y)
        pyautogui = backends.pyautogui
        with pyautogui.hold([to_pyautogui(key) for key in action.modifiers]):  # released in a finally
            pyautogui.click(x, y, clicks=action.clicks, interval=0.0, button=action.button)

    def move(self, backends: Backends, action: Move) -> None:
        assert action.x is not None and action.y is not None
        backends.pyautogui.moveTo(*self._point(backends, action.x, action.y))

    def drag(self, backends: Backends, action: Drag) -> None:
        assert not isinstance(action.start, str) and not isinstance(action.end, str)
        (x0, y0), (x1, y1) = self._point(backends, *action.start), self._point(backends, *action.end)
        pyautogui = backends.pyautogui
        pyautogui.moveTo(x0, y0)
        pyautogui.mouseDown(x0, y0, button="left")
        try:
            for step in range(1, DRAG_STEPS + 1):
                share = step / DRAG_STEPS
                pyautogui.moveTo(round(x0 + (x1 - x0) * share), round(y0 + (y1 - y0) * share))
        finally:
            pyautogui.mouseUp(x1, y1, button="left")

    def scroll(self, backends: Backends, action: Scroll) -> None:
        pyautogui = backends.pyautogui
        if action.x is not None and action.y is not None:
            pyautogui.moveTo(*self._point(backends, action.x, action.y))
        if action.dy:
            pyautogui.scroll(-action.dy)  # ours: dy > 0 scrolls down; pyautogui's: positive is up
        if action.dx:
            pyautogui.hscroll(action.dx)  # positive scrolls right in both

    def type(self, backends: Backends, action: Type) -> None:
        pyautogui = backends.pyautogui
        if action.clear:
            pyautogui.hotkey("command" if sys.platform == "darwin" else "ctrl", "a")
        if backends.keyboard is not None:
            backends.keyboard.type(action.text, check=pyautogui.failSafeCheck)
        elif action.text.isascii():
            pyautogui.write(action.text)
        else:
            import pyperclip  # a dependency of pyautogui; native clipboard on Windows and macOS

            pyperclip.copy(action.text)
            pyautogui.hotkey("command" if sys.platform == "darwin" else "ctrl", "v")
        if action.submit:
            pyautogui.press("enter")

    def key(self, backends: Backends, action: Key) -> None:
        backends.pyautogui.hotkey(*(to_pyautogui(key) for key in action.keys))

    def wait(self, backends: Backends, action: Wait) -> None:
        # In slices, checking the fail-safe after each: a plain sleep would not heed it.
        deadline = time.monotonic() + min(action.seconds, MAX_WAIT_SECONDS)
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, WAIT_SLICE_S))
            backends.pyautogui.failSafeCheck()

    def nothing(self, backends: Backends, action: BaseAction) -> None:
        return None

    # Browser-only: DesktopExecutor refuses them, saying what to do instead, before any handler runs.
    navigate = back = nothing


@contextlib.contextmanager
def translated(backends: Backends) -> Iterator[None]:
    """pyautogui's and Xlib's errors, in our terms, at the border."""
    fatal: tuple[type[BaseException], ...] = (OSError,)
    if backends.xdisplay is not None:
        import Xlib.error

        fatal += (Xlib.error.ConnectionClosedError,)
    try:
        yield
    except x11.CannotType as exc:
        raise ActionFailed(str(exc)) from exc
    except backends.pyautogui.FailSafeException as exc:
        raise ExecutorError(
            "pyautogui's fail-safe fired: the pointer is in a corner of the screen, which is the "
            "emergency stop; move it away from the corner to go on"
        ) from exc
    except fatal as exc:
        raise ExecutorError(f"lost the display ({exc}): check that the X server is running") from exc
