"""BrowserExecutor(allowed_domains=...): Chromium itself refuses to take a tab off the allowlist.

A real Chromium and a real HTTP server, no mocks. The server listens on 127.0.0.1 only, and
two host names reach it: 127.0.0.1 (allowed) and localhost (refused). It logs the Host
header of every request, so a test can show that no request for the refused host was ever
sent, and serves tests/pages with {{offsite}} replaced by http://localhost:PORT, plus
/redirect?to=PATH, a 302 to the refused host. tests/pages/offsite.html lists the ways out.
"""

from __future__ import annotations

import http.server
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.helpers.http import serving
from tools.actions import Back, Click, Navigate, Wait
from tools.browser import BrowserExecutor
from tools.browser.domains import DomainAllowlist
from tools.browser.guard import offsite_pattern
from tools.errors import ExecutorError

KillBrowser = Callable[[BrowserExecutor], int]  # the fixture in conftest.py

pytestmark = pytest.mark.browser

PAGES = Path(__file__).resolve().parent.parent / "pages"
ALLOWED = ["127.0.0.1"]
REFUSAL = "localhost is not on the allowed domains (127.0.0.1): stay on those"
TYPES = {".html": "text/html", ".js": "text/javascript", ".svg": "image/svg+xml"}


def row(index: int) -> tuple[int, int]:
    """Centre of offsite.html's element in `index` (see the comment in that page)."""
    return 120, 35 + 40 * index


LINK, POPUP_LINK, REDIRECT_LINK, REDIRECT_POPUP_LINK, SCRIPT, OPEN, TIMER, FORM, ALLOWED_LINK, COUNTER = (
    row(i) for i in range(10)
)


class OffsiteServer:
    """One ThreadingHTTPServer on 127.0.0.1, reached as 127.0.0.1 and as localhost."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []  # (host name, path), in arrival order
        self._lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):  # not files alone: it logs hosts, redirects
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                host = urlsplit(f"//{self.headers.get('Host', '')}").hostname or ""
                with server._lock:
                    server.requests.append((host, self.path))
                parts = urlsplit(self.path)
                if parts.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", server.offsite + parse_qs(parts.query)["to"][0])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                file = PAGES / parts.path.lstrip("/")
                if parts.path.count("/") != 1 or file.suffix not in TYPES or not file.is_file():
                    self.send_error(404)
                    return
                body = file.read_text().replace("{{offsite}}", server.offsite).encode()
                self.send_response(200)
                self.send_header("Content-Type", TYPES[file.suffix])
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.handler = Handler
        self.allowed = self.offsite = ""  # set once it listens

    def listening_on(self, port: int) -> None:
        self.allowed = f"http://127.0.0.1:{port}"
        self.offsite = f"http://localhost:{port}"

    def to(self, host: str) -> list[str]:
        """The paths requested so far through host name `host`."""
        with self._lock:
            return [path for h, path in self.requests if h == host]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()


@pytest.fixture(scope="module")
def server() -> Iterator[OffsiteServer]:
    server = OffsiteServer()
    with serving(server.handler) as httpd:
        server.listening_on(httpd.server_address[1])
        yield server


@pytest.fixture(scope="module")
def guarded(server: OffsiteServer) -> Iterator[BrowserExecutor]:
    with BrowserExecutor(start_url=f"{server.allowed}/offsite.html", allowed_domains=ALLOWED) as executor:
        yield executor


@pytest.fixture
def launcher(guarded: BrowserExecutor, server: OffsiteServer) -> BrowserExecutor:
    """The shared executor with one tab, on offsite.html, and an empty request log."""
    while len(guarded.tabs()) > 1:
        guarded.close_tab(len(guarded.tabs()) - 1)
    assert guarded.execute(Navigate(url=f"{server.allowed}/offsite.html")).ok
    guarded.observe()
    server.clear()
    return guarded


def assert_kept_on_launcher(executor: BrowserExecutor, server: OffsiteServer) -> None:
    """The one tab shows offsite.html, and the executor still works on it."""
    observation = executor.observe()
    assert observation.url == f"{server.allowed}/offsite.html"
    assert observation.title == "Offsite launcher"
    assert [tab.url for tab in executor.tabs()] == [observation.url]
    assert executor.execute(Click(x=COUNTER[0], y=COUNTER[1])).ok
    assert executor.page.evaluate("window.clicks") == 1


def assert_refused(
    result_error: str | None, server: OffsiteServer, *, query: str = "", new_tab: bool = False
) -> None:
    assert result_error is not None
    url = f"{server.offsite}/offsite-landing.html{query}"
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
    launcher: BrowserExecutor, server: OffsiteServer, point: tuple[int, int], query: str
) -> None:
    result = launcher.execute(Click(x=point[0], y=point[1]))

    assert not result.ok
    assert_refused(result.error, server, query=query)
    assert result.error is not None and result.error.startswith("click failed: ")
    assert f"The tab stays at {server.allowed}/offsite.html." in result.error
    assert server.to("localhost") == []
    assert_kept_on_launcher(launcher, server)


def test_a_meta_refresh_to_a_refused_host_is_never_sent(
    launcher: BrowserExecutor, server: OffsiteServer
) -> None:
    url = f"{server.allowed}/offsite-refresh.html"
    result = launcher.execute(Navigate(url=url))

    assert not result.ok
    assert_refused(result.error, server)
    observation = launcher.observe()
    assert (observation.url, observation.title) == (url, "Offsite refresh")
    assert server.to("127.0.0.1") == ["/offsite-refresh.html"]
    assert server.to("localhost") == []


@pytest.mark.parametrize(
    "point", [pytest.param(POPUP_LINK, id="target-blank"), pytest.param(OPEN, id="window-open")]
)
def test_a_popup_to_a_refused_host_is_never_sent_and_its_tab_is_closed(
    launcher: BrowserExecutor, server: OffsiteServer, point: tuple[int, int]
) -> None:
    result = launcher.execute(Click(x=point[0], y=point[1]))

    assert not result.ok
    assert_refused(result.error, server, new_tab=True)
    assert "That tab was closed." in (result.error or "")
    assert server.to("localhost") == []
    assert_kept_on_launcher(launcher, server)


def test_a_redirect_to_a_refused_host_is_sent_back_and_the_action_fails(
    launcher: BrowserExecutor, server: OffsiteServer
) -> None:
    # Playwright's driver continues a redirect's later hops without asking any route, so the
    # request to the refused host does leave; the guard sends the tab back once it commits.
    result = launcher.execute(Click(x=REDIRECT_LINK[0], y=REDIRECT_LINK[1]))

    assert not result.ok and result.error is not None
    assert f"the tab went to {server.offsite}/offsite-landing.html: {REFUSAL}" in result.error
    assert f"It was sent back to {server.allowed}/offsite.html." in result.error
    assert server.to("localhost") == ["/offsite-landing.html"]
    assert_kept_on_launcher(launcher, server)
    # Forward leads to the refused page again: now a plain navigation, which the route stops.
    server.clear()
    forward = launcher.forward()
    assert not forward.ok
    assert_refused(forward.error, server)
    assert server.to("localhost") == []
    assert launcher.observe().url == f"{server.allowed}/offsite.html"


def test_a_redirect_in_a_new_tab_to_a_refused_host_closes_that_tab(
    launcher: BrowserExecutor, server: OffsiteServer
) -> None:
    result = launcher.execute(Click(x=REDIRECT_POPUP_LINK[0], y=REDIRECT_POPUP_LINK[1]))

    assert not result.ok and result.error is not None
    landing = f"{server.offsite}/offsite-landing.html"
    assert f"the tab went to {landing}: {REFUSAL}. That tab was closed." in result.error
    assert_kept_on_launcher(launcher, server)


def test_navigate_to_a_refused_address_fails_without_any_request(
    launcher: BrowserExecutor, server: OffsiteServer
) -> None:
    for url, why in [
        (f"{server.offsite}/offsite-landing.html", REFUSAL),
        (f"file://{PAGES}/second.html", "is not an http(s) address on an allowed domain (127.0.0.1)"),
    ]:
        result = launcher.execute(Navigate(url=url))

        assert not result.ok and result.error is not None
        assert result.error.startswith("navigate failed: ") and why in result.error
    assert server.requests == []
    assert_kept_on_launcher(launcher, server)


def test_a_refusal_between_actions_is_kept_off_the_screen_and_noted_by_the_next_action(
    launcher: BrowserExecutor, server: OffsiteServer
) -> None:
    assert launcher.execute(Click(x=TIMER[0], y=TIMER[1])).ok  # the page leaves 300 ms later
    time.sleep(0.6)

    assert launcher.observe().url == f"{server.allowed}/offsite.html"
    result = launcher.execute(Wait(seconds=0.1))

    assert result.ok and result.output is not None
    landing = f"{server.offsite}/offsite-landing.html"
    assert f"before this action, the browser refused to open {landing}: {REFUSAL}" in result.output
    assert server.to("localhost") == []


def test_allowed_navigation_still_works(launcher: BrowserExecutor, server: OffsiteServer) -> None:
    clicked = launcher.execute(Click(x=ALLOWED_LINK[0], y=ALLOWED_LINK[1]))
    assert clicked.ok, clicked.error
    assert launcher.observe().title == "Second page"

    back = launcher.execute(Back())
    assert back.ok, back.error
    assert launcher.observe().title == "Offsite launcher"
    navigated = launcher.execute(Navigate(url=f"{server.allowed}/second.html"))
    assert navigated.ok, navigated.error
    assert launcher.observe().url == f"{server.allowed}/second.html"
    assert server.to("127.0.0.1") == ["/second.html", "/offsite.html", "/second.html"]


def test_subresources_and_iframes_from_a_refused_host_still_load(
    launcher: BrowserExecutor, server: OffsiteServer
) -> None:
    # allowed_domains holds the tabs' addresses, not what an allowed page loads or embeds.
    result = launcher.execute(Navigate(url=f"{server.allowed}/offsite-embeds.html"))

    assert result.ok, result.error
    page = launcher.page
    assert page.evaluate("window.offsiteScript") == "loaded"
    assert page.evaluate("document.getElementById('pixel').naturalWidth") == 20
    assert f"{server.offsite}/offsite-landing.html" in [frame.url for frame in page.frames]
    embeds = ["/offsite-landing.html", "/offsite-pixel.svg", "/offsite-script.js"]
    assert sorted(server.to("localhost")) == embeds
    assert launcher.observe().url == f"{server.allowed}/offsite-embeds.html"


def test_a_refused_start_url_is_an_executor_error_before_any_request(server: OffsiteServer) -> None:
    server.clear()
    with pytest.raises(ExecutorError, match=f"start_url .* is off the allowed domains: {re.escape(REFUSAL)}"):
        BrowserExecutor(start_url=f"{server.offsite}/offsite-landing.html", allowed_domains=ALLOWED)
    # file: has no domain, so a file: page cannot start a run held to allowed domains.
    with pytest.raises(ExecutorError, match=r"is not an http\(s\) address on an allowed domain"):
        BrowserExecutor(start_url=(PAGES / "offsite.html").as_uri(), allowed_domains=ALLOWED)
    assert server.requests == []


def test_a_start_url_that_redirects_off_the_allowlist_is_an_executor_error(server: OffsiteServer) -> None:
    executor = BrowserExecutor(
        start_url=f"{server.allowed}/redirect?to=/offsite-landing.html", allowed_domains=ALLOWED
    )
    off = f"led off the allowed domains: the tab went to .*{re.escape(REFUSAL)}"
    with pytest.raises(ExecutorError, match=off):
        executor.observe()
    with pytest.raises(ExecutorError, match="closed"):  # it gave up and closed
        executor.observe()


def test_a_start_page_that_tries_to_leave_still_starts_and_the_first_action_says_so(
    server: OffsiteServer,
) -> None:
    url = f"{server.allowed}/offsite-refresh.html"  # its meta refresh is refused
    with BrowserExecutor(start_url=url, allowed_domains=ALLOWED) as executor:
        assert executor.observe().url == url
        result = executor.execute(Wait(seconds=0.1))

    assert result.ok and result.output is not None
    assert (
        f"before this action, the browser refused to open {server.offsite}/offsite-landing.html"
        in result.output
    )


def test_a_relaunched_browser_keeps_the_guard(server: OffsiteServer, kill_browser: KillBrowser) -> None:
    with BrowserExecutor(start_url=f"{server.allowed}/offsite.html", allowed_domains=ALLOWED) as executor:
        executor.observe()
        kill_browser(executor)

        assert executor.observe().url == f"{server.allowed}/offsite.html"  # relaunched there
        server.clear()
        for point, new_tab in [(LINK, False), (POPUP_LINK, True)]:
            result = executor.execute(Click(x=point[0], y=point[1]))
            assert not result.ok
            assert_refused(result.error, server, new_tab=new_tab)
        redirected = executor.execute(Click(x=REDIRECT_LINK[0], y=REDIRECT_LINK[1]))
        assert not redirected.ok and "It was sent back to" in (redirected.error or "")
        assert server.to("localhost") == ["/offsite-landing.html"]  # the redirect's hop only
        assert_kept_on_launcher(executor, server)


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
def test_the_route_pattern_lets_only_allowed_urls_skip_python(url: str) -> None:
    allowlist = DomainAllowlist(["127.0.0.1", "example.org", "::1"])

    skips_python = offsite_pattern(allowlist.domains).search(url) is None

    assert not skips_python or allowlist.allows(url)
