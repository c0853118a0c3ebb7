"""The desktop's coordinate map, as pure functions over mss-style monitor lists.

Xvfb shows mss a single monitor with no scaling, so several monitors, negative offsets
and HiDPI are proven here, on the monitor lists mss reports on such machines; the
integration test (tests/integration/test_desktop.py) proves the same map on a real
display for a monitor, a region and a downscale. The last tests need no display at all:
they check the errors a user sees without one, and without the desktop extra.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools.desktop.screens import capture_geometry, fit_within, input_scale, monitor_rect, region_rect
from tools.errors import ExecutorError

ROOT = Path(__file__).resolve().parents[2]


def mon(left: int, top: int, width: int, height: int, **extra: object) -> dict:
    return {"left": left, "top": top, "width": width, "height": height, **extra}


# mss lists: index 0 is every monitor combined, then one entry per monitor.
SIDE_BY_SIDE = [mon(0, 0, 3840, 1080), mon(0, 0, 1920, 1080), mon(1920, 0, 1920, 1080)]
# Windows puts the primary at (0, 0); a monitor to its left and above has negative coordinates.
NEGATIVE = [
    mon(-1920, -200, 3840, 1280), mon(0, 0, 1920, 1080, is_primary=True), mon(-1920, -200, 1920, 1080),
]
# A 2x panel whose mss pixels are physical while pyautogui counts logical points.
HIDPI = [mon(0, 0, 5120, 2880), mon(0, 0, 5120, 2880)]


def device(monitors, logical, x, y, *, monitor=1, region=None, image=None, max_size=None):
    """Where pyautogui is sent for screenshot pixel (x, y)."""
    rect = region_rect(monitors, region) if region else monitor_rect(monitors, monitor)
    geometry = capture_geometry(rect, image or rect[2:], input_scale(monitors, logical), max_size)
    return geometry.to_device(x, y)


def test_each_monitor_of_a_side_by_side_pair_has_its_own_rectangle():
    assert monitor_rect(SIDE_BY_SIDE, 0) == (0, 0, 3840, 1080)
    assert monitor_rect(SIDE_BY_SIDE, 1) == (0, 0, 1920, 1080)
    assert monitor_rect(SIDE_BY_SIDE, 2) == (1920, 0, 1920, 1080)


def test_a_point_on_the_second_monitor_is_offset_by_the_first():
    assert device(SIDE_BY_SIDE, (3840, 1080), 100, 50, monitor=2) == (2020, 50)
    assert device(SIDE_BY_SIDE, (3840, 1080), 100, 50, monitor=1) == (100, 50)
    assert device(SIDE_BY_SIDE, (3840, 1080), 2020, 50, monitor=0) == (2020, 50)


def test_a_monitor_at_a_negative_offset_maps_to_negative_coordinates():
    # pyautogui.size() is the primary display on Windows: that is no scaling, too.
    assert input_scale(NEGATIVE, (1920, 1080)) == (1.0, 1.0)
    assert device(NEGATIVE, (1920, 1080), 0, 0, monitor=2) == (-1920, -200)
    assert device(NEGATIVE, (1920, 1080), 1919, 1079, monitor=2) == (-1, 879)


def test_hidpi_scale_two_halves_every_coordinate():
    assert input_scale(HIDPI, (2560, 1440)) == (0.5, 0.5)
    assert device(HIDPI, (2560, 1440), 1000, 500) == (500, 250)
    geometry = capture_geometry(monitor_rect(HIDPI, 1), (5120, 2880), (0.5, 0.5), None)
    assert geometry.screenshot_size == (5120, 2880) and geometry.device_size == (2560, 1440)


def test_hidpi_with_an_offset_monitor_scales_the_offset_too():
    monitors = [mon(0, 0, 7040, 2880), mon(0, 0, 5120, 2880, is_primary=True), mon(5120, 0, 1920, 1080)]
    assert input_scale(monitors, (2560, 1440)) == (0.5, 0.5)
    assert device(monitors, (2560, 1440), 0, 0, monitor=2) == (2560, 0)


def test_logical_monitors_with_a_double_size_image_map_by_the_image():
    # macOS: mss reports monitors in points but grabs a Retina image twice as large.
    monitors = [mon(0, 0, 2560, 1440), mon(0, 0, 2560, 1440)]
    assert input_scale(monitors, (2560, 1440)) == (1.0, 1.0)
    assert device(monitors, (2560, 1440), 1000, 500, image=(5120, 2880)) == (500, 250)


def test_a_region_inside_monitor_two_maps_through_its_own_corner():
    region = (2120, 100, 800, 600)
    assert region_rect(SIDE_BY_SIDE, region) == region
    assert device(SIDE_BY_SIDE, (3840, 1080), 10, 20, region=region) == (2130, 120)
    assert device(NEGATIVE, (1920, 1080), 5, 5, region=(-1900, -100, 100, 100)) == (-1895, -95)


@pytest.mark.parametrize(
    "region",
    [(3500, 0, 800, 600), (0, 0, 0, 10), (10, 10, 10, -1), (-1, 0, 10, 10), (0, 1000, 10, 81)],
)
def test_a_region_off_the_screen_or_empty_is_refused(region):
    with pytest.raises(ExecutorError, match=r"inside the screen \(3840x1080 at \(0, 0\)\)"):
        region_rect(SIDE_BY_SIDE, region)


@pytest.mark.parametrize("index", [3, -1, 99])
def test_a_monitor_that_does_not_exist_is_refused_with_the_list(index):
    with pytest.raises(ExecutorError) as info:
        monitor_rect(SIDE_BY_SIDE, index)
    message = str(info.value)
    assert f"monitor {index} does not exist" in message
    assert "0 = all monitors 3840x1080 at (0, 0)" in message
    assert "1 = 1920x1080 at (0, 0); 2 = 1920x1080 at (1920, 0)" in message


def test_fit_within_keeps_the_aspect_ratio_and_never_enlarges():
    assert fit_within((1920, 1080), (960, 540)) == (960, 540)
    assert fit_within((1920, 1080), (1000, 1000)) == (1000, 562)
    assert fit_within((800, 600), (1920, 1080)) == (800, 600)
    assert fit_within((1920, 1080), None) == (1920, 1080)


def test_a_downscaled_observation_still_lands_on_the_full_resolution_pixel():
    assert device(SIDE_BY_SIDE, (3840, 1080), 480, 270, max_size=(960, 540)) == (960, 540)
    assert device(SIDE_BY_SIDE, (3840, 1080), 480, 270, monitor=2, max_size=(960, 540)) == (2880, 540)
    # All three at once: offset, HiDPI and downscale, in one formula.
    monitors = [mon(0, 0, 7040, 2880), mon(0, 0, 5120, 2880, is_primary=True), mon(5120, 0, 1920, 1080)]
    assert device(monitors, (2560, 1440), 480, 270, monitor=2, max_size=(960, 540)) == (2560 + 480, 270)


@pytest.mark.parametrize("monitors", [SIDE_BY_SIDE, NEGATIVE])
def test_device_and_screenshot_coordinates_are_inverse(monitors):
    for index in range(1, len(monitors)):
        geometry = capture_geometry(
            monitor_rect(monitors, index), (1920, 1080), input_scale(monitors, (1920, 1080)), (1280, 720)
        )
        for point in [(0, 0), (639, 359), (1279, 719)]:
            back = geometry.to_screenshot(*geometry.to_device(*point))
            assert back == pytest.approx(point)


# -- without a display, or without the extra ---------------------------------------------


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60
    )


OBSERVE = (
    "from tools.desktop import DesktopExecutor\n"
    "from tools.errors import ExecutorError\n"
    "try:\n    DesktopExecutor().observe()\nexcept ExecutorError as exc:\n    print('ExecutorError:', exc)\n"
)


def unused_display() -> str:
    for n in [98, *range(900, 1000)]:
        if not any(os.path.exists(p) for p in (f"/tmp/.X11-unix/X{n}", f"/tmp/.X{n}-lock")):
            return f":{n}"
    pytest.skip("no unused X display number")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11 only")
@pytest.mark.parametrize("display", ["unset", "nothing listening"])
def test_without_an_x_display_the_error_says_how_to_get_one(display):
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    if display != "unset":
        env["DISPLAY"] = unused_display()
    out = run_python(OBSERVE, env)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert out.stdout.startswith("ExecutorError: no X display"), out.stdout
    assert "start Xvfb" in out.stdout


@pytest.mark.parametrize("package", ["mss", "pyautogui"])
def test_a_missing_package_names_the_extra_to_install(package):
    block = f"import sys\nsys.modules[{package!r}] = None  # as if not installed\n"
    out = run_python(block + OBSERVE, {**os.environ, "DISPLAY": ":0"})
    hint = "pip install 'internvl-agent[desktop]'"
    assert out.stdout.strip() == f"ExecutorError: {package} not installed: {hint}", out.stderr


def test_importing_the_desktop_modules_loads_no_backend():
    code = (
        "import sys, tools.desktop, tools.desktop.x11, tools.desktop.xvfb\n"
        "print(','.join(m for m in ('mss', 'pyautogui', 'Xlib', 'PIL') if m in sys.modules))"
    )
    out = run_python(code, dict(os.environ))
    assert out.stdout.strip() == "", out.stdout + out.stderr


def test_xvfb_missing_says_how_to_install_it():
    code = (
        "from tools.desktop.xvfb import XvfbDisplay\n"
        "from tools.errors import ExecutorError\n"
        "try:\n    XvfbDisplay().start()\nexcept ExecutorError as exc:\n    print(exc)\n"
    )
    out = run_python(code, {**os.environ, "PATH": "/nonexistent"})
    assert out.stdout.startswith("Xvfb is not installed: install it with `apt-get install xvfb`"), out.stderr
