"""The desktop executor: mss captures the screen, pyautogui drives it.

    executor  DesktopExecutor: observe a monitor or a region, act on it, the fail-safe
    input     how each GUI action becomes pyautogui input, and its errors in our terms
    backends  connecting: the lazy imports of mss, pyautogui and python-xlib
    screens   pure screen geometry: monitors, regions, HiDPI, downscale -> one Geometry
    x11       X11 plumbing: connecting, the focused window, typing any text by keysym
    xvfb      XvfbDisplay: a private virtual display for tests and headless runs

Nothing here imports pyautogui or mss at module level: `import tools.desktop` is cheap.
"""

from tools.desktop.executor import DesktopExecutor
from tools.desktop.xvfb import XvfbDisplay

__all__ = ["DesktopExecutor", "XvfbDisplay"]
