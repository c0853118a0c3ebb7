"""BrowserExecutor's element_at (what is under a point) and how it launches Chromium: a
missing or broken binary, an unusable profile, and the lazy import of Playwright."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tools.browser import BrowserExecutor
from tools.browser import session as browser_session
from tools.browser.dom import MAX_NAME
from tools.errors import ExecutorError

pytestmark = pytest.mark.browser

BUTTON = (120, 50)  # the centre of playground.html's "Click me" button, in CSS pixels


# -- element_at ------------------------------------------------------------------------


@pytest.fixture
def elements(browser: BrowserExecutor, page_server: str) -> BrowserExecutor:
    browser.page.goto(f"{page_server}/elements.html")
    browser.observe()
    return browser


@pytest.mark.parametrize(
    ("point", "tag", "role", "name", "box"),
    [
        ((120, 40), "button", "button", "Save the draft", (20, 20, 220, 60)),
        ((340, 40), "div", "button", "Close dialog", (240, 20, 440, 60)),
        ((510, 70), "img", "img", "A red square", (460, 20, 560, 120)),
        ((170, 115), "input", "textbox", "Email address", (20, 100, 320, 130)),
        ((730, 40), "input", "button", "Send it", (660, 20, 800, 60)),
        ((320, 260), "h2", "heading", "Account settings", (20, 240, 620, 280)),
        ((780, 115), "input", "searchbox", "Search the docs", (660, 100, 900, 130)),
        ((80, 345), "a", "link", "Inner link", (30, 330, 130, 360)),  # inside the iframe
        ((1200, 700), "body", None, "", (0, 0, 1280, 720)),
    ],
)
def test_element_at_names_the_element_under_a_point(
    elements: BrowserExecutor,
    point: tuple[int, int],
    tag: str,
    role: str | None,
    name: str,
    box: tuple[int, int, int, int],
) -> None:
    info = elements.element_at(*point)

    assert info is not None
    assert (info.tag, info.role, info.name, info.box) == (tag, role, name, box)


def test_element_at_truncates_long_text(elements: BrowserExecutor) -> None:
    info = elements.element_at(300, 180)

    assert info is not None and (info.tag, info.role) == ("p", "paragraph")
    assert len(info.name) == MAX_NAME and info.name.startswith("Lorem ipsum") and info.name.endswith("\u2026")


def test_element_at_outside_the_screenshot_is_none(elements: BrowserExecutor) -> None:
    assert elements.element_at(1280, 10) is None
    assert elements.element_at(-1, 10) is None


def test_element_at_scale_2_takes_and_gives_screenshot_pixels(page_server: str) -> None:
    with BrowserExecutor(start_url=f"{page_server}/playground.html", device_scale_factor=2) as executor:
        executor.observe()
        info = executor.element_at(2 * BUTTON[0], 2 * BUTTON[1])

    assert info is not None
    assert (info.tag, info.name, info.box) == ("button", "Click me", (40, 40, 440, 160))
    assert info.center == (240, 100)


def test_a_missing_browser_binary_says_how_to_fix_it() -> None:
    with pytest.raises(ExecutorError, match="executable_path") as info:
        with BrowserExecutor(executable_path="/nonexistent/chromium"):
            pass
    assert "/nonexistent/chromium" in str(info.value)
    assert "chromium" in str(info.value)


def test_the_environment_variable_overrides_the_default_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERNVL_AGENT_CHROMIUM", "/nonexistent/from-env")
    with pytest.raises(ExecutorError, match="/nonexistent/from-env"):
        BrowserExecutor().observe()


def test_a_binary_that_is_not_a_browser_fails_to_launch_with_a_hint() -> None:
    with pytest.raises(ExecutorError, match=r"failed to start.*executable_path"):
        BrowserExecutor(executable_path="/bin/false", launch_timeout_s=10).observe()


def test_an_unusable_profile_directory_is_an_executor_error_and_releases_playwright(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    profile = blocker / "profile"
    seen: dict[str, object] = {}

    def in_a_fresh_thread() -> None:  # this thread's driver is ours alone to check
        try:
            with BrowserExecutor(user_data_dir=profile):
                pass
        except ExecutorError as exc:
            seen["error"] = str(exc)
        seen["driver"] = getattr(browser_session._thread, "driver", None)
        with BrowserExecutor() as executor:  # the thread can still start a browser
            seen["url"] = executor.observe().url

    thread = threading.Thread(target=in_a_fresh_thread)
    thread.start()
    thread.join()

    assert str(profile) in str(seen.get("error")) and "user_data_dir" in str(seen["error"])
    assert seen["driver"] is None  # the failed start stopped the Playwright driver
    assert seen["url"] == "about:blank"


def test_importing_the_module_does_not_import_playwright() -> None:
    code = "import sys, tools.browser; assert 'playwright' not in sys.modules, 'playwright imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
