"""BrowserExecutor's tabs, history, downloads and persistent profile, in a real Chromium
on tests/pages served from 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.actions import Click, Navigate
from tools.browser import BrowserExecutor, TabInfo
from tools.errors import ExecutorError

pytestmark = pytest.mark.browser

POPUP_LINK = (160, 215)  # playground.html's link with target=_blank
REPORT_LINK = (100, 40)  # download.html's link to report.txt




def open_popup(executor: BrowserExecutor) -> None:
    result = executor.execute(Click(x=POPUP_LINK[0], y=POPUP_LINK[1]))
    assert result.ok, result.error


def test_tabs_lists_each_open_tab_and_marks_the_active_one(playground: BrowserExecutor) -> None:
    open_popup(playground)

    tabs = playground.tabs()
    assert [(t.index, t.title, t.active) for t in tabs] == [
        (0, "Playground", False),
        (1, "Second page", True),
    ]
    assert tabs[0].url.endswith("/playground.html") and tabs[1].url.endswith("/second.html")


def test_switch_tab_moves_observe_and_execute_to_that_tab(playground: BrowserExecutor) -> None:
    open_popup(playground)

    info = playground.switch_tab(0)

    assert info == TabInfo(index=0, url=playground.page.url, title="Playground", active=True)
    assert playground.observe().title == "Playground"
    assert playground.execute(Click(x=120, y=50)).ok
    assert playground.page.evaluate("window.state.clicks") == 1
    assert [t.active for t in playground.tabs()] == [True, False]


def test_closing_the_active_tab_activates_its_neighbour(playground: BrowserExecutor) -> None:
    open_popup(playground)
    playground.switch_tab(0)

    playground.close_tab()

    tabs = playground.tabs()
    assert [(t.index, t.title, t.active) for t in tabs] == [(0, "Second page", True)]
    assert playground.observe().title == "Second page"


def test_closing_another_tab_keeps_the_active_one(playground: BrowserExecutor) -> None:
    open_popup(playground)

    playground.close_tab(0)

    assert [(t.title, t.active) for t in playground.tabs()] == [("Second page", True)]


def test_closing_the_only_tab_leaves_a_blank_one(playground: BrowserExecutor) -> None:
    playground.close_tab()

    assert [(t.url, t.active) for t in playground.tabs()] == [("about:blank", True)]
    assert playground.observe().url == "about:blank"


def test_a_tab_that_does_not_exist_is_an_error_that_lists_the_tabs(playground: BrowserExecutor) -> None:
    with pytest.raises(ExecutorError, match=r"no tab 3: 1 tab\(s\) are open, numbered 0 to 0"):
        playground.switch_tab(3)
    with pytest.raises(ExecutorError, match="no tab -1"):
        playground.close_tab(-1)


def test_back_then_forward_walks_the_history(playground: BrowserExecutor, page_server: str) -> None:
    first = playground.page.url
    assert playground.execute(Navigate(url=f"{page_server}/second.html")).ok

    assert playground.back().ok
    assert playground.observe().url == first
    assert playground.forward().ok
    assert playground.observe().title == "Second page"


def test_forward_with_nothing_ahead_is_a_failed_result(playground: BrowserExecutor) -> None:
    result = playground.forward()

    assert not result.ok and result.error is not None and "no later page" in result.error


def test_a_download_is_saved_under_its_name_and_reported(page_server: str, tmp_path: Path) -> None:
    downloads = tmp_path / "downloads"
    with BrowserExecutor(start_url=f"{page_server}/download.html", downloads_dir=downloads) as executor:
        first = executor.execute(Click(x=REPORT_LINK[0], y=REPORT_LINK[1]))
        second = executor.execute(Click(x=REPORT_LINK[0], y=REPORT_LINK[1]))
        saved = executor.downloads

    report, again = downloads / "report.txt", downloads / "report (1).txt"
    assert first.ok and first.output == f"downloaded {report}"
    assert second.ok and second.output == f"downloaded {again}"  # never overwrites
    assert saved == [report, again]
    assert report.read_text() == "hello report" and again.read_text() == "hello report"


def test_without_downloads_dir_there_are_no_downloads(playground: BrowserExecutor) -> None:
    assert playground.downloads == []


def test_a_user_data_dir_keeps_state_across_executors(page_server: str, tmp_path: Path) -> None:
    profile = tmp_path / "profile"
    url = f"{page_server}/second.html"
    with BrowserExecutor(start_url=url, user_data_dir=profile) as executor:
        assert len(executor.tabs()) == 1  # the profile's own first tab is the one driven
        executor.page.evaluate("localStorage.setItem('remembered', 'yes')")

    with BrowserExecutor(start_url=url, user_data_dir=profile) as executor:
        assert executor.page.evaluate("localStorage.getItem('remembered')") == "yes"
        assert executor.observe().title == "Second page"
