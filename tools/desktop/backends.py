"""Connecting the desktop executor: the lazy imports of mss, pyautogui and python-xlib.

`connect(display)` imports them (saying which `pip install` fixes a missing one), opens
the screen grabber and, on X11, our own connection to the display and its keyboard
(`tools.desktop.x11`); `release()` closes what `connect()` opened.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from tools.desktop import x11
from tools.errors import ExecutorError

__all__ = ["INSTALL_HINT", "X11", "Backends", "connect", "release"]

INSTALL_HINT = x11.INSTALL_HINT
X11 = sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd"))


@dataclass
class Backends:
    """What the desktop executor drives the screen with, once connected."""

    pyautogui: ModuleType
    grabber: Any  # mss.MSS
    screenshot_error: type[Exception]
    xdisplay: Any  # Xlib.display.Display on X11, else None
    keyboard: x11.XKeyboard | None


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def connect(display: str | None) -> Backends:
    """Import and open the backends for `display` (X11 only; None: $DISPLAY)."""
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
    make_grabber = getattr(mss, "MSS", None) or mss.mss  # mss 10.2 deprecates mss.mss()
    try:
        grabber = make_grabber(display=target) if X11 else make_grabber()
    except mss.exception.ScreenShotError as exc:
        if xdisplay is not None:
            xdisplay.close()
        raise ExecutorError(f"mss cannot capture this screen ({exc})") from exc
    keyboard = x11.XKeyboard(xdisplay) if xdisplay is not None else None
    return Backends(pyautogui, grabber, mss.exception.ScreenShotError, xdisplay, keyboard)


def release(backends: Backends) -> None:
    """Give back borrowed keycodes, close the grabber and the X connection; never raises."""
    for close in (
        backends.keyboard.restore if backends.keyboard is not None else None,
        backends.grabber.close,
        backends.xdisplay.close if backends.xdisplay is not None else None,
    ):
        if close is not None:
            with contextlib.suppress(Exception):  # tearing down: a dead display cannot be tidied
                close()
