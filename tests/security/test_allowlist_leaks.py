"""Issue #16: with allowed_domains, nothing leaves for a host off the list.

A real Chromium against two real HTTP servers (tests/helpers/offsite.py): one reached as
127.0.0.1 (allowed), one as localhost (refused). The refused one counts the TCP connections
it accepts, so a preconnect, which sends no request, still shows. Without strict mode the
allowlist holds the tabs' addresses: no redirect hop, link, popup or script may reach the
refused host, not even with a bare connection. Strict mode holds every request of the page.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from agent.safety import SafetyPolicy
from tests.helpers.offsite import (  # noqa: F401 (fixtures)
    ALLOWED,
    REFUSAL,
    OffsiteSite,
    guarded_fixture,
    launcher_fixture,
    row,
    site_fixture,
)
from tools.actions import Back, Click, Move, Navigate, Wait
from tools.browser import BrowserExecutor
from tools.errors import ExecutorError

pytestmark = pytest.mark.browser

# tests/pages/offsite.html: the ways a page can leave (see the comment in that page).
LINK, POPUP_LINK, REDIRECT_LINK, SCRIPT, OPEN, FORM = (row(i) for i in (0, 1, 2, 4, 5, 7))
# How long a connection may take to show in the refused server's count after an action.
GRACE_S = 0.3
# Each kind of request tests/pages/offsite-strict.html makes, with its result there.
KINDS = ("css", "script", "img", "img-redirect", "own-img", "fetch", "own-fetch", "beacon-queued",
         "websocket", "worker-fetch", "worker-websocket")




def nothing_reached_the_refused_host(site: OffsiteSite) -> bool:
    time.sleep(GRACE_S)
    return site.connections["localhost"] == 0 and site.to("localhost") == []


def test_a_redirect_hop_to_a_refused_host_is_never_requested_and_a_block_page_names_it(
    launcher: BrowserExecutor, site: OffsiteSite
) -> None:
    result = launcher.execute(Click(x=REDIRECT_LINK[0], y=REDIRECT_LINK[1]))

    assert not result.ok and result.error is not None
    assert f"to {site.offsite}/offsite-landing.html: {REFUSAL}" in result.error
    observation = launcher.observe()
    assert observation.url == f"{site.allowed}/redirect?to=/offsite-landing.html"
    assert observation.title == "Blocked: localhost"
    assert "localhost is blocked" in launcher.page.inner_text("h1")
    assert site.to("127.0.0.1") == ["/redirect?to=/offsite-landing.html"]
    assert nothing_reached_the_refused_host(site)


def test_a_redirect_in_a_new_tab_is_never_requested_either(
    launcher: BrowserExecutor, site: OffsiteSite
) -> None:
    result = launcher.execute(Click(x=row(3)[0], y=row(3)[1]))  # #redirect-popup-link

    assert not result.ok and "in a new tab: " + REFUSAL in (result.error or "")
    assert [tab.url for tab in launcher.tabs()] == [f"{site.allowed}/offsite.html"]
    assert nothing_reached_the_refused_host(site)


def test_allowed_redirects_are_followed_and_a_later_refused_hop_is_stopped(
    launcher: BrowserExecutor, site: OffsiteSite
) -> None:
    followed = launcher.execute(Navigate(url=f"{site.allowed}/hop?to=/hop?to=/second.html"))
    assert followed.ok, followed.error
    assert launcher.observe().url == f"{site.allowed}/second.html"
    assert launcher.execute(Back()).ok
    assert launcher.observe().url == f"{site.allowed}/offsite.html"

    stopped = launcher.execute(Navigate(url=f"{site.allowed}/hop?to=/redirect?to=/offsite-landing.html"))

    assert not stopped.ok and REFUSAL in (stopped.error or "")
    observation = launcher.observe()
    assert (observation.url, observation.title) == (
        f"{site.allowed}/redirect?to=/offsite-landing.html", "Blocked: localhost"
    )
    assert nothing_reached_the_refused_host(site)


def test_a_new_tab_follows_allowed_redirects_and_stops_at_a_refused_hop(
    launcher: BrowserExecutor, site: OffsiteSite
) -> None:
    # A new tab's first page loads before the guard can watch the tab: it is fetched hop by hop.
    launcher.page.evaluate("window.open('/hop?to=/hop?to=/second.html')")
    assert launcher.execute(Wait(seconds=0.5)).ok
    assert launcher.observe().url == f"{site.allowed}/second.html"
    launcher.close_tab()

    launcher.page.evaluate("window.open('/hop?to=/redirect?to=/offsite-landing.html')")
    result = launcher.execute(Wait(seconds=0.5))

    assert not result.ok and f"to {site.offsite}/offsite-landing.html: {REFUSAL}" in (result.error or "")
    assert launcher.observe().title == "Blocked: localhost"
    assert nothing_reached_the_refused_host(site)


@pytest.mark.parametrize(
    "point",
    [
        pytest.param(LINK, id="link"),
        pytest.param(POPUP_LINK, id="target-blank"),
        pytest.param(SCRIPT, id="script-sets-location"),
        pytest.param(OPEN, id="window-open"),
        pytest.param(FORM, id="form-submit"),
    ],
)
def test_leaving_for_a_refused_host_opens_no_connection_to_it(
    launcher: BrowserExecutor, site: OffsiteSite, point: tuple[int, int]
) -> None:
    assert launcher.execute(Move(x=point[0], y=point[1])).ok  # hover first, as a person would

    result = launcher.execute(Click(x=point[0], y=point[1]))

    assert not result.ok and REFUSAL in (result.error or "")
    assert nothing_reached_the_refused_host(site)


def test_a_start_page_whose_script_leaves_fails_at_once_naming_the_refused_host(site: OffsiteSite) -> None:
    site.clear()
    executor = BrowserExecutor(start_url=f"{site.allowed}/offsite-start-script.html", allowed_domains=ALLOWED)
    started = time.monotonic()

    off = f"led off the allowed domains: .*localhost.*{re.escape(REFUSAL)}"
    with pytest.raises(ExecutorError, match=off):
        executor.observe()

    # It used to wait out the 30 s load timeout; the bound is loose only for slow machines.
    assert time.monotonic() - started < 10
    assert nothing_reached_the_refused_host(site)


def results_of_offsite_strict(executor: BrowserExecutor, site: OffsiteSite) -> dict[str, str]:
    """Open offsite-strict.html and wait until each kind of request it makes has an answer."""
    site.clear()
    result = executor.execute(Navigate(url=f"{site.allowed}/offsite-strict.html"))
    assert result.ok, result.error
    check = " && ".join(f"'{kind}' in window.results" for kind in KINDS)
    executor.page.wait_for_function(check, timeout=10_000)
    return executor.page.evaluate("window.results")


def test_without_strict_mode_an_allowed_page_still_loads_from_a_refused_host(
    launcher: BrowserExecutor, site: OffsiteSite
) -> None:
    results = results_of_offsite_strict(launcher, site)

    assert {kind: results[kind] for kind in KINDS} == {
        "css": "load", "script": "load", "img": "load", "img-redirect": "load", "own-img": "load",
        "fetch": "offsite data", "own-fetch": "offsite data", "beacon-queued": "true",
        "websocket": "message hello", "worker-fetch": "offsite data", "worker-websocket": "message hello",
    }
    launcher.page.wait_for_function("getComputedStyle(document.getElementById('styled')).width === '37px'")
    deadline = time.monotonic() + 5
    while "/beacon" not in site.to("localhost") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert {"/beacon", "/offsite-landing.html", "/offsite-script.js"} <= set(site.to("localhost"))
    assert site.connections["localhost"] > 0  # the count that the other tests find at 0 does count


@pytest.fixture(scope="module")
def strict(site: OffsiteSite) -> Iterator[BrowserExecutor]:
    with BrowserExecutor(
        start_url=f"{site.allowed}/offsite.html", allowed_domains=ALLOWED, strict=True
    ) as executor:
        yield executor


def test_strict_mode_refuses_every_kind_of_request_to_a_refused_host_and_the_page_still_works(
    strict: BrowserExecutor, site: OffsiteSite
) -> None:
    results = results_of_offsite_strict(strict, site)

    refused = {kind: results[kind] for kind in KINDS if not kind.startswith("own")}
    assert refused == {
        "css": "error", "script": "error", "img": "error", "img-redirect": "error", "fetch": "error",
        "beacon-queued": "true", "websocket": "close", "worker-fetch": "error", "worker-websocket": "error",
    }
    assert (results["own-img"], results["own-fetch"]) == ("load", "offsite data")
    assert strict.page.evaluate("getComputedStyle(document.getElementById('styled')).width") != "37px"
    assert strict.observe().title == "Offsite requests"
    assert nothing_reached_the_refused_host(site)
    assert {"/offsite-strict.html", "/offsite-worker.js", "/offsite-data.txt"} <= set(site.to("127.0.0.1"))


def test_strict_mode_keeps_navigations_as_they_are(strict: BrowserExecutor, site: OffsiteSite) -> None:
    assert strict.execute(Navigate(url=f"{site.allowed}/offsite.html")).ok
    site.clear()

    for point in (LINK, REDIRECT_LINK):
        result = strict.execute(Click(x=point[0], y=point[1]))
        assert not result.ok and REFUSAL in (result.error or "")
    followed = strict.execute(Navigate(url=f"{site.allowed}/hop?to=/second.html"))

    assert followed.ok, followed.error
    assert strict.observe().title == "Second page"
    assert nothing_reached_the_refused_host(site)


def test_strict_is_one_setting_for_the_policy_and_the_browser() -> None:
    assert SafetyPolicy(allowed_domains=ALLOWED, strict=True).strict
    assert not SafetyPolicy(allowed_domains=ALLOWED).strict
    with pytest.raises(ValueError, match="allowed_domains"):
        SafetyPolicy(strict=True)
    with pytest.raises(ValueError, match="allowed_domains"):
        BrowserExecutor(strict=True)


def test_navigating_to_a_page_whose_script_leaves_fails_at_once_naming_the_refused_host(
        site: OffsiteSite) -> None:
    site.clear()
    with BrowserExecutor(start_url=f"{site.allowed}/offsite.html", allowed_domains=ALLOWED) as executor:
        executor.observe()
        started = time.monotonic()
        result = executor.execute(Navigate(url=f"{site.allowed}/offsite-start-script.html"))

        assert not result.ok and REFUSAL in (result.error or ""), result.error
        # It used to wait out the 30 s load timeout; the bound is loose only for slow machines.
        assert time.monotonic() - started < 10
        assert executor.observe().url is not None and "localhost" not in (executor.observe().url or "")
    assert nothing_reached_the_refused_host(site)
