"""A crashed tab or a killed Chromium is recovered once, at the same URL; twice is an error.

The browser process is killed for real (SIGKILL to its PID, found through /proc), in
the middle of a run of steps, and a tab is crashed for real (chrome://crash). Each test
starts its own executor: the recovery budget belongs to one executor.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Error

from tools.actions import Click, Type
from tools.browser import BrowserExecutor
from tools.errors import ExecutorError

KillBrowser = Callable[[BrowserExecutor], int]  # the fixture in conftest.py

pytestmark = pytest.mark.browser

BUTTON = (120, 50)
TEXT = (170, 135)


@pytest.fixture
def executor(page_server: str) -> Iterator[BrowserExecutor]:
    with BrowserExecutor(start_url=f"{page_server}/playground.html") as executor:
        yield executor


def run_steps(executor: BrowserExecutor) -> None:
    for action in (Click(x=BUTTON[0], y=BUTTON[1]), Click(x=TEXT[0], y=TEXT[1]), Type(text="hi")):
        executor.observe()
        result = executor.execute(action)
        assert result.ok, result.error


def crash_tab(executor: BrowserExecutor) -> None:
    # Chromium's own crash URL kills the renderer; goto fails as the page dies, and the
    # crash event (what the executor goes by) may come a moment later: wait for it.
    page = executor.page
    with page.expect_event("crash", timeout=10_000), contextlib.suppress(Error):
        page.goto("chrome://crash", timeout=5_000)


def test_the_browser_pid_is_the_chromium_browser_process(executor: BrowserExecutor) -> None:
    pid = executor.browser_pid

    assert pid is not None
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = f.read().split(b"\0")
    assert b"--remote-debugging-pipe" in argv and not any(a.startswith(b"--type=") for a in argv)


def test_a_killed_browser_is_relaunched_at_the_same_url(
    executor: BrowserExecutor, kill_browser: KillBrowser
) -> None:
    run_steps(executor)
    url = executor.observe().url
    killed = kill_browser(executor)

    observation = executor.observe()

    assert observation.url == url and observation.title == "Playground"
    assert executor.browser_pid not in (None, killed)
    run_steps(executor)  # the relaunched browser is fully usable
    assert executor.page.evaluate("window.state.clicks") == 1


def test_an_action_on_a_killed_browser_fails_saying_it_restarted_then_the_run_goes_on(
    executor: BrowserExecutor, kill_browser: KillBrowser
) -> None:
    url = executor.observe().url
    kill_browser(executor)

    # No call into Playwright since the kill, so it has not heard of the exit yet: the click
    # itself meets the dead browser, and comes back failed, saying Chromium was restarted.
    result = executor.execute(Click(x=BUTTON[0], y=BUTTON[1]))

    assert not result.ok and result.error is not None
    assert "click was interrupted: the browser process exited" in result.error
    assert f"Chromium was restarted at {url}" in result.error
    assert executor.observe().url == url
    run_steps(executor)


def test_a_second_kill_raises_executor_error_with_a_clear_message(
    executor: BrowserExecutor, kill_browser: KillBrowser
) -> None:
    run_steps(executor)
    kill_browser(executor)
    executor.observe()
    kill_browser(executor)

    with pytest.raises(ExecutorError, match=r"failed again .* restarted once.* create a new BrowserExecutor"):
        executor.observe()
    with pytest.raises(ExecutorError, match="failed again"):  # and it stays failed
        executor.execute(Click(x=BUTTON[0], y=BUTTON[1]))


def test_a_crashed_tab_is_reopened_at_the_same_url(executor: BrowserExecutor) -> None:
    run_steps(executor)
    url = executor.observe().url
    pid = executor.browser_pid
    crash_tab(executor)

    observation = executor.observe()

    assert observation.url == url and observation.title == "Playground"
    assert executor.browser_pid == pid  # the browser lived; only the tab was replaced
    assert len(executor.tabs()) == 1
    run_steps(executor)


def test_a_crash_after_a_recovery_raises(executor: BrowserExecutor) -> None:
    crash_tab(executor)
    executor.observe()
    crash_tab(executor)

    with pytest.raises(ExecutorError, match=r"failed again \(the tab crashed"):
        executor.execute(Click(x=BUTTON[0], y=BUTTON[1]))


def test_a_persistent_profile_is_relaunched_on_the_same_profile(
    page_server: str, tmp_path: Path, kill_browser: KillBrowser
) -> None:
    url, profile = f"{page_server}/second.html", tmp_path / "profile"
    with BrowserExecutor(start_url=url, user_data_dir=profile) as executor:
        kill_browser(executor)

        observation = executor.observe()

        assert observation.url == url
        # The killed browser left its profile lock behind; the new one took the profile over.
        pid = executor.browser_pid
        assert pid is not None
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            assert f"--user-data-dir={profile}".encode() in f.read().split(b"\0")
