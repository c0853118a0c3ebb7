"""Fixtures shared by the integration tests that drive a real headless Chromium."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tools.browser import BrowserExecutor


@pytest.fixture(scope="module")
def browser() -> Iterator[BrowserExecutor]:
    """One headless Chromium (1280x720) for the whole test module."""
    with BrowserExecutor() as executor:
        yield executor


@pytest.fixture
def playground(browser: BrowserExecutor, page_server: str) -> BrowserExecutor:
    """The browser on a fresh load of tests/pages/playground.html, in one tab, whatever the
    previous test left open."""
    while len(browser.tabs()) > 1:
        browser.close_tab(len(browser.tabs()) - 1)
    browser.page.goto(f"{page_server}/playground.html")
    return browser


@pytest.fixture
def box_of() -> Callable[[BrowserExecutor, str], str]:
    """What InternVL3 answers to its grounding prompt for a page element: the element's box,
    `<box>[[x1, y1, x2, y2]]</box>` in 0..1000 of the screenshot (weights that would answer
    it cannot be downloaded here, so tests script the answer from the page itself)."""

    def answer(executor: BrowserExecutor, element_id: str) -> str:
        script = f"document.getElementById('{element_id}').getBoundingClientRect().toJSON()"
        r = executor.page.evaluate(script)
        width, height = executor.observe().size
        corners = (r["left"] / (width - 1), r["top"] / (height - 1), r["right"] / (width - 1),
                   r["bottom"] / (height - 1))
        return "<box>[[" + ", ".join(str(round(c * 1000)) for c in corners) + "]]</box>"

    return answer


def _kill_browser(executor: BrowserExecutor) -> int:
    """SIGKILL the executor's Chromium, as a crash would, and wait until it is gone; its PID."""
    pid = executor.browser_pid
    assert pid is not None, "the Chromium PID should be visible in /proc"
    os.kill(pid, signal.SIGKILL)
    # Playwright's driver reaps it; wait (bounded) until the PID is gone, so the kill has landed.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":  # a zombie is dead too
                break
        time.sleep(0.01)
    return pid


@pytest.fixture
def kill_browser() -> Callable[[BrowserExecutor], int]:
    """Kills an executor's Chromium by PID (see _kill_browser)."""
    return _kill_browser


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private cache: "tiny" resolves here, and the user's real cache is left alone."""
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INTERNVL_AGENT_CACHE", str(root))
        yield root


@pytest.fixture(scope="module")
def checkpoint(cache: Path) -> Path:
    """The tiny random-weight checkpoint (model/tiny.py), built offline into `cache`."""
    from model import tiny

    return tiny.tiny_checkpoint()
