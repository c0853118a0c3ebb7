"""BrowserExecutor(allowed_domains=...): Chromium itself refuses to take a tab off the allowlist.

A real Chromium and real HTTP servers, no mocks (tests/helpers/offsite.py): one reached as
127.0.0.1 (allowed), one as localhost (refused), each logging every request, so a test can
show that no request for the refused host was ever sent. They serve tests/pages with
{{offsite}} replaced by the refused origin, plus /redirect?to=PATH, a 302 to the refused
host. tests/pages/offsite.html lists the ways out; tests/security/test_allowlist_leaks.py
counts connections too, and covers strict mode.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.offsite import (  # noqa: F401 (fixtures)
    ALLOWED,
    REFUSAL,
    OffsiteSite,
    guarded_fixture,
    launcher_fixture,
    row,
    site_fixture,
)
from tools.actions import Back, Click, Navigate, Wait
from tools.browser import BrowserExecutor
from tools.browser.domains import DomainAllowlist
from tools.browser.guard import offsite_pattern
from tools.errors import ExecutorError

KillBrowser = Callable[[BrowserExecutor], int]  # the fixture in conftest.py

pytestmark = pytest.mark.browser

PAGES = Path(__file__).resolve().parent.parent / "pages"

LINK, POPUP_LINK, REDIRECT_LINK, REDIRECT_POPUP_LINK, SCRIPT, OPEN, TIMER, FORM, ALLOWED_LINK, COUNTER = (
    row(i) for i in range(10)
)




def assert_kept_on_launcher(executor: BrowserExecutor, site: OffsiteSite) -> None:
    """The one tab shows offsite.html, and the executor still works on it."""
    observation = executor.observe()
    assert observation.url == f"{site.allowed}/offsite.html"
    assert observation.title == "Offsite launcher"
    assert [tab.url for tab in executor.tabs()] == [observation.url]
    assert executor.execute(Click(x=COUNTER[0], y=COUNTER[1])).ok
    assert executor.page.evaluate("window.clicks") == 1


def assert_refused(
    result_error: str | None, site: OffsiteSite, *, query: str = "", new_tab: bool = False
) -> None:
    assert result_error is not None
    url = f"{site.offsite}/offsite-landing.html{query}"
    where = " in a new tab" if new_tab else ""
    assert f"the browser refused to open {url}{where}: {REFUSAL}" in result_error


@pytest.mark.parametrize(
    ("point", "query"),
    [
        pytest.param(LINK, "", id="link"),
        pytest.param(SCRIPT, "", id="script-sets-location"),
        pytest.param(FORM, "?q=1", id="form-submit"),
    ],
)
def test_a_navigation_to_a_refused_host_is_never_sent_and_the_action_fails(
    launcher: BrowserExecutor, site: OffsiteSite, point: tuple[int, int], query: str
) -> None:
    result = launcher.execute(Click(x=point[0], y=point[1]))

    assert not result.ok
    assert_refused(result.error, site, query=query)
    assert result.error is not None and result.error.startswith("click failed: ")
    assert f"The tab stays at {site.allowed}/offsite.html." in result.error
    assert site.to("localhost") == []
    assert_kept_on_launcher(launcher, site)


def test_a_meta_refresh_to_a_refused_host_is_never_sent(
    launcher: BrowserExecutor, site: OffsiteSite
) -> None:
    url = f"{site.allowed}/offsite-refresh.html"
    result = launcher.execute(Navigate(url=url))

    assert not result.ok
    assert_refused(result.error, site)
    observation = launcher.observe()
    assert (observation.url, observation.title) == (url, "Offsite refresh")
    assert site.to("127.0.0.1") == ["/offsite-refresh.html"]
    assert site.to("localhost") == []


@pytest.mark.parametrize(
    "point", [pytest.param(POPUP_LINK, id="target-blank"), pytest.param(OPEN, id="window-open")]
)
def test_a_popup_to_a_refused_host_is_never_sent_and_its_tab_is_closed(
    launcher: BrowserExecutor, site: OffsiteSite, point: tuple[int, int]
) -> None:
    result = launcher.execute(Click(x=point[0], y=point[1]))

    assert not result.ok
    assert_refused(result.error, site, new_tab=True)
    assert "That tab was closed." in (result.error or "")
    assert site.to("localhost") == []
    assert_kept_on_launcher(launcher, site)


def test_a_redirect_to_a_refused_host_is_never_followed_and_the_tab_shows_a_block_page(
    launcher: BrowserExecutor, site: OffsiteSite
) -> None:
    # Each hop is checked before it is requested: the 302's Location is read, not followed.
    result = launcher.execute(Click(x=REDIRECT_LINK[0], y=REDIRECT_LINK[1]))

    assert not result.ok and result.error is not None
    redirector = f"{site.allowed}/redirect?to=/offsite-landing.html"
    landing = f"{site.offsite}/offsite-landing.html"
    refused = f"the browser refused to follow a redirect from {redirector} to {landing}: {REFUSAL}."
    assert refused in result.error
    assert "The tab shows a page that says so." in result.error
    observation = launcher.observe()
    assert (observation.url, observation.title) == (redirector, "Blocked: localhost")
    assert "localhost is blocked" in launcher.page.inner_text("body")
    assert site.to("localhost") == []
    back = launcher.execute(Back())
    assert back.ok, back.error
    assert_kept_on_launcher(launcher, site)


def test_a_redirect_in_a_new_tab_to_a_refused_host_closes_that_tab(
    launcher: BrowserExecutor, site: OffsiteSite
) -> None:
    result = launcher.execute(Click(x=REDIRECT_POPUP_LINK[0], y=REDIRECT_POPUP_LINK[1]))

    assert not result.ok and result.error is not None
    landing = f"{site.offsite}/offsite-landing.html"
    assert f"to {landing} in a new tab: {REFUSAL}. That tab was closed." in result.error
    assert site.to("localhost") == []
    assert_kept_on_launcher(launcher, site)


def test_navigate_to_a_refused_address_fails_without_any_request(
    launcher: BrowserExecutor, site: OffsiteSite
) -> None:
    for url, why in [
        (f"{site.offsite}/offsite-landing.html", REFUSAL),
        (f"file://{PAGES}/second.html", "is not an http(s) address on an allowed domain (127.0.0.1)"),
    ]:
        result = launcher.execute(Navigate(url=url))

        assert not result.ok and result.error is not None
        assert result.error.startswith("navigate failed: ") and why in result.error
    assert site.requests == []
    assert_kept_on_launcher(launcher, site)


def test_a_refusal_between_actions_is_kept_off_the_screen_and_noted_by_the_next_action(
    launcher: BrowserExecutor, site: OffsiteSite
) -> None:
    # The page leaves 1.5 s later: past the work a settle waits for (settle.ACTION_WORK_MS), so
    # between actions.
    assert launcher.execute(Click(x=TIMER[0], y=TIMER[1])).ok
    time.sleep(1.8)

    assert launcher.observe().url == f"{site.allowed}/offsite.html"
    result = launcher.execute(Wait(seconds=0.1))

    assert result.ok and result.output is not None
    landing = f"{site.offsite}/offsite-landing.html"
    assert f"before this action, the browser refused to open {landing}: {REFUSAL}" in result.output
    assert site.to("localhost") == []


def test_allowed_navigation_still_works(launcher: BrowserExecutor, site: OffsiteSite) -> None:
    clicked = launcher.execute(Click(x=ALLOWED_LINK[0], y=ALLOWED_LINK[1]))
    assert clicked.ok, clicked.error
    assert launcher.observe().title == "Second page"

    back = launcher.execute(Back())
    assert back.ok, back.error
    assert launcher.observe().title == "Offsite launcher"
    navigated = launcher.execute(Navigate(url=f"{site.allowed}/second.html"))
    assert navigated.ok, navigated.error
    assert launcher.observe().url == f"{site.allowed}/second.html"
    assert site.to("127.0.0.1") == ["/second.html", "/offsite.html", "/second.html"]


def test_subresources_and_iframes_from_a_refused_host_still_load(
    launcher: BrowserExecutor, site: OffsiteSite
) -> None:
    # allowed_domains holds the tabs' addresses, not what an allowed page loads or embeds.
    result = launcher.execute(Navigate(url=f"{site.allowed}/offsite-embeds.html"))

    assert result.ok, result.error
    page = launcher.page
    assert page.evaluate("window.offsiteScript") == "loaded"
    assert page.evaluate("document.getElementById('pixel').naturalWidth") == 20
    assert f"{site.offsite}/offsite-landing.html" in [frame.url for frame in page.frames]
    embeds = ["/offsite-landing.html", "/offsite-pixel.svg", "/offsite-script.js"]
    assert sorted(site.to("localhost")) == embeds
    assert launcher.observe().url == f"{site.allowed}/offsite-embeds.html"


def test_a_refused_start_url_is_an_executor_error_before_any_request(site: OffsiteSite) -> None:
    site.clear()
    with pytest.raises(ExecutorError, match=f"start_url .* is off the allowed domains: {re.escape(REFUSAL)}"):
        BrowserExecutor(start_url=f"{site.offsite}/offsite-landing.html", allowed_domains=ALLOWED)
    # file: has no domain, so a file: page cannot start a run held to allowed domains.
    with pytest.raises(ExecutorError, match=r"is not an http\(s\) address on an allowed domain"):
        BrowserExecutor(start_url=(PAGES / "offsite.html").as_uri(), allowed_domains=ALLOWED)
    assert site.requests == []


def test_a_start_url_that_redirects_off_the_allowlist_is_an_executor_error(site: OffsiteSite) -> None:
    site.clear()
    executor = BrowserExecutor(
        start_url=f"{site.allowed}/redirect?to=/offsite-landing.html", allowed_domains=ALLOWED
    )
    off = f"led off the allowed domains: the browser refused to follow a redirect .*{re.escape(REFUSAL)}"
    with pytest.raises(ExecutorError, match=off):
        executor.observe()
    with pytest.raises(ExecutorError, match="closed"):  # it gave up and closed
        executor.observe()
    assert site.to("localhost") == []


def test_a_start_page_that_tries_to_leave_still_starts_and_the_first_action_says_so(
    site: OffsiteSite,
) -> None:
    url = f"{site.allowed}/offsite-refresh.html"  # its meta refresh is refused
    with BrowserExecutor(start_url=url, allowed_domains=ALLOWED) as executor:
        assert executor.observe().url == url
        result = executor.execute(Wait(seconds=0.1))

    assert result.ok and result.output is not None
    assert (
        f"before this action, the browser refused to open {site.offsite}/offsite-landing.html"
        in result.output
    )


def test_a_relaunched_browser_keeps_the_guard(site: OffsiteSite, kill_browser: KillBrowser) -> None:
    with BrowserExecutor(start_url=f"{site.allowed}/offsite.html", allowed_domains=ALLOWED) as executor:
        executor.observe()
        kill_browser(executor)

        assert executor.observe().url == f"{site.allowed}/offsite.html"  # relaunched there
        site.clear()
        for point, new_tab in [(LINK, False), (POPUP_LINK, True)]:
            result = executor.execute(Click(x=point[0], y=point[1]))
            assert not result.ok
            assert_refused(result.error, site, new_tab=new_tab)
        redirected = executor.execute(Click(x=REDIRECT_LINK[0], y=REDIRECT_LINK[1]))
        assert not redirected.ok and "refused to follow a redirect" in (redirected.error or "")
        assert executor.execute(Back()).ok
        assert site.to("localhost") == []
        assert_kept_on_launcher(executor, site)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/a",
        "https://127.0.0.1/",
        "http://127.0.0.1",
        "http://127.0.0.1?q",
        "http://example.org/",
        "http://shop.example.org:81/#x",
        "http://localhost/",
        "http://127.0.0.1.evil.net/",
        "http://example.org.evil.net/",
        "http://evilexample.org/",
        "http://user@127.0.0.1/",
        "http://evil.net/@127.0.0.1/",
        "ftp://example.org/",
        "data:text/html,hi",
        "blob:http://127.0.0.1/0b1c",
        "http://127.0.0.10/",
        "http://[::1]/",
    ],
)
def test_the_offsite_pattern_matches_every_url_the_allowlist_may_refuse(url: str) -> None:
    allowlist = DomainAllowlist(["127.0.0.1", "example.org", "::1"])

    unmatched = offsite_pattern(allowlist.domains).search(url) is None

    assert not unmatched or allowlist.allows(url)


@pytest.mark.parametrize(
    "url",
    ["ws://127.0.0.1:8000/ws", "wss://shop.example.org/", "ws://localhost/", "ws://127.0.0.1.evil.net/",
     "wss://evil.net/?example.org", "ws://user@127.0.0.1/", "http://127.0.0.1/", "ws://[::1]/"],
)
def test_strict_mode_routes_every_websocket_the_allowlist_may_refuse(url: str) -> None:
    allowlist = DomainAllowlist(["127.0.0.1", "example.org", "::1"])

    unrouted = offsite_pattern(allowlist.domains, "wss?").search(url) is None

    assert not unrouted or allowlist.allows(re.sub(r"^ws", "http", url))
