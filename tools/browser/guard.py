"""Refuse what leaves the allowlist, in the browser itself.

SafetyPolicy checks an action before it runs, but a click, a script setting `location`, a
meta refresh, a redirect or a popup decides where a tab goes only once the action runs.
With `BrowserExecutor(allowed_domains=...)`, a NavigationGuard on the browser context (every
tab, popups included) sees every request, and nothing is sent to a host that DomainAllowlist
refuses:

- A top-level document request to a refused address is aborted before Chromium sends it.
  The tab stays on the page it was on: an "aborted" navigation commits nothing. A popup's
  first request comes before Playwright knows its frame; it is failed as "blocked by
  client" instead, so that Chromium commits an error page in it, Playwright reports the
  tab, and the guard closes it.
- Each redirect hop of a tab's page is checked before it is requested: Chromium loads the
  page, and a DevTools session per tab holds each 3xx until its Location is read
  (tools/browser/redirects.py). A refused hop is answered with a block page that names the
  host. A tab's first page (a popup) loads before that session exists: the route fetches
  it one hop at a time instead (tools/browser/hops.py), and closes a new tab that got a
  block page.
- Chromium preconnects to a link's host as a navigation starts, before any route: the
  executor launches it with network prediction off (tools/browser/session.py).

`strict=True` holds every request of the page to the allowlist, not only the tabs'
addresses: images, scripts, styles, fetch/XHR, beacons, workers' requests and iframes are
refused, and each redirect hop of theirs is checked (hops.py); page websockets are refused
(`route_web_socket`), and a connect-src policy on documents and worker scripts refuses
workers' websockets; service workers, whose requests bypass routes, are blocked at launch.
Without it, subresources and iframes are not restricted: allowed sites load from CDNs and
embed others, and the allowlist is about the pages the tabs are on, which are what the
model reads and acts on.

Routes are served by the thread that drives the browser, during its calls into Playwright:
while that thread is elsewhere (the model thinking), a page's requests wait, and go on at
the next call. Any route turns Chromium's HTTP cache off. As a backstop, after each action
and at each observation a tab that shows a refused address (a service worker's redirect
could take it there) is sent back in its history, or closed.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import re
import time
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from tools.browser.domains import DomainAllowlist
from tools.browser.hops import (
    MAX_HOPS,
    Hop,
    abort_code,
    block_page,
    connect_policy,
    fetch_hop,
    follow,
    next_page,
    with_policy,
)
from tools.browser.redirects import RedirectWatch
from tools.browser.session import ACTION_TIMEOUT_MS
from tools.browser.tabs import open_pages

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Frame, Page, Request, Response, Route, WebSocketRoute

__all__ = ["NavigationGuard", "offsite_pattern"]

log = logging.getLogger(__name__)

# How long enforce() waits for the tab of a refused popup: Playwright reports it once its
# error page has committed, about 0.1 s after the request.
POPUP_WAIT_MS = 2_000
# How often open() looks whether the guard stopped the page it is waiting for.
OPEN_POLL_MS = 100
# A refused redirect shows a page that says so, at once; a document whose script left for a
# refused address never loads. How long to tell the two apart.
STOPPED_LOAD_MS = 1_000
# Documents no request went to: Chromium's error page, and about:blank (its opener's).
_NOT_ADDRESSES = ("about:", "chrome-error:")
_EVERYTHING = re.compile("")


def offsite_pattern(domains: Iterable[str], schemes: str = "https?") -> re.Pattern[str]:
    """Matches every URL the allowlist may refuse: all but SCHEME://HOST[:PORT] followed by
    /, ?, # or the end, with HOST on an allowed domain (`schemes` a regex: "wss?" for
    websockets). Routes see URLs as Chromium writes them (lower case, punycode), and the
    allowlist holds its domains the same way."""
    hosts = []
    for domain in domains:
        try:
            ip = ipaddress.ip_address(domain)
        except ValueError:
            hosts.append(r"(?:[a-z0-9-]+\.)*" + domain.replace(".", r"\."))
            continue
        if ip.version == 4:
            hosts.append(domain.replace(".", r"\."))
        # An IPv6 host is written in brackets: its URLs all come to Python, which decides.
    if not hosts:
        return _EVERYTHING
    return re.compile(rf"^(?!(?:{schemes})://(?:" + "|".join(hosts) + r")(?::\d+)?(?:[/?#]|$))")


class NavigationGuard:
    """Keeps one context's requests on the allowlist. `take_refusals()` says what it refused;
    `blocked` counts the requests that strict mode refused, by host."""

    def __init__(self, allowlist: DomainAllowlist, *, strict: bool = False) -> None:
        self.allowlist = allowlist
        self.strict = strict
        self.blocked: Counter[str] = Counter()
        self._refusals: dict[str, None] = {}  # messages for the model, in order, each once
        self._unseen_popups = 0  # popups refused whose tab Playwright has not reported yet
        self._blocked_popups: list[str] = []  # addresses of new tabs that got a block page
        self._doomed: list[Page] = []  # their tabs, to close
        self._chains: dict[Frame, int] = {}  # redirect hops so far, for frames mid-chain
        self._stopped: dict[Page, str] = {}  # pages whose own navigation the guard refused
        # Strict mode's connect-src policy, for documents and worker scripts (see hops.py).
        self._policy = connect_policy(allowlist) if strict else None
        self._redirects = RedirectWatch(allowlist, self._refused_redirect, policy=self._policy)

    def install(self, context: BrowserContext) -> None:
        """Guard `context` and every tab it opens; a relaunched browser's context needs it too."""
        self._unseen_popups = 0
        self._blocked_popups.clear()
        self._doomed.clear()
        self._chains.clear()
        self._stopped.clear()
        self._redirects.clear()
        context.route(_EVERYTHING, self._route)
        context.on("page", self._redirects.attach)
        for page in open_pages(context):
            self._redirects.attach(page)
        if self.strict:
            context.route_web_socket(offsite_pattern(self.allowlist.domains, "wss?"), self._refuse_socket)

    # -- routing ------------------------------------------------------------------------

    def _route(self, route: Route, request: Request) -> None:
        from playwright.sync_api import Error

        try:
            self._decide(route, request)
        except Exception:  # a bug, or a tab that closed meanwhile: fail closed, never hang
            log.debug("guard: %s failed", request.url, exc_info=True)
            with contextlib.suppress(Error):
                route.abort("failed")

    def _decide(self, route: Route, request: Request) -> None:
        from playwright.sync_api import Error

        url = request.url
        why = self.allowlist.refusal(url)
        frame: Frame | None = None
        navigation = request.is_navigation_request()
        if navigation:
            try:
                frame = request.frame
            except Error:  # Playwright has no frame for a popup's first request yet
                frame = None
        top = navigation and (frame is None or frame.parent_frame is None)
        if why is not None:
            if top and frame is None:
                self._unseen_popups += 1
                self._note(f"the browser refused to open {url} in a new tab: {why}. That tab was closed.")
                route.abort("blockedbyclient")
            elif top:
                assert frame is not None
                self._note(f"the browser refused to open {url}: {why}. The tab stays at {frame.url}.", frame)
                route.abort("aborted")
            elif self.strict:
                self._block(url)
                route.abort("blockedbyclient")
            else:
                route.fallback()
        elif top and frame is not None and self._redirects.covers(frame.page):
            route.fallback()  # Chromium loads it; RedirectWatch checks each of its redirects
        elif top or (navigation and self.strict):
            self._document(route, request, frame, top)
        elif self.strict:
            self._subresource(route)
        else:
            route.fallback()

    def _document(self, route: Route, request: Request, frame: Frame | None, top: bool) -> None:
        from playwright.sync_api import Error

        done = self._chains.pop(frame, 0) if frame is not None else 0
        try:
            hop = fetch_hop(route, self.allowlist)
        except Error as exc:
            route.abort(abort_code(exc))
            return
        if hop.target is not None and hop.why is None and done >= MAX_HOPS:
            hop = Hop(hop.response, hop.target, f"more than {MAX_HOPS} redirects")
        if hop.target is None:
            self._fulfill(route, hop)
        elif hop.why is None:  # an allowed hop: the next address comes back here
            if frame is not None:
                self._chains[frame] = done + 1
            route.fulfill(
                status=200,
                headers={"content-type": "text/html; charset=utf-8", "cache-control": "no-store"},
                body=next_page(hop.target),
            )
        else:
            where = "" if top else " in a frame"
            if top and frame is None:
                self._blocked_popups.append(request.url)
                where, then = " in a new tab", "That tab was closed."
            else:
                then = "The tab shows a page that says so." if top else "The frame shows a page that says so."
            hop_from = f"a redirect from {request.url} to {hop.target}{where}"
            self._note(f"the browser refused to follow {hop_from}: {hop.why}. {then}", frame if top else None)
            if not top:
                self._block(hop.target)
            route.fulfill(
                status=403,
                headers={"content-type": "text/html; charset=utf-8", "cache-control": "no-store"},
                body=block_page(request.url, hop.target, hop.why),
            )

    def _subresource(self, route: Route) -> None:
        from playwright.sync_api import Error

        try:
            hop = follow(route, self.allowlist)
        except Error as exc:
            route.abort(abort_code(exc))
            return
        if hop.target is not None:  # a refused hop, or one too many
            self._block(hop.target)
            route.abort("blockedbyclient")
        else:
            self._fulfill(route, hop)

    def _fulfill(self, route: Route, hop: Hop) -> None:
        if self._policy is None:
            route.fulfill(response=hop.response)
        else:
            route.fulfill(response=hop.response, headers=with_policy(hop.response.headers, self._policy))

    def _refuse_socket(self, socket: WebSocketRoute) -> None:
        self._block(socket.url)
        socket.close(code=1008, reason="refused: not on the allowed domains")

    def _block(self, url: str) -> None:
        host = urlsplit(url).hostname or url
        self.blocked[host] += 1
        log.info("strict allowlist: refused a request to %s (%s)", host, url)

    # -- tabs -----------------------------------------------------------------------------

    def open(self, page: Page, url: str, *, send_back: bool = False) -> tuple[Response | None, str | None]:
        """Go to `url` and wait for its document to load, as `page.goto` does, but stop as
        soon as the guard refuses where the page went instead (a redirect hop, a script that
        leaves while the page loads, whose document then never loads): (the response, as
        `goto` gives it; that refusal, or None). `send_back`: a refused tab goes back to the
        page it showed (its stopped document would never load), and the refusal says so."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        self._stopped.pop(page, None)
        self._redirects.attach(page)
        response = page.goto(url, wait_until="commit")
        deadline = time.monotonic() + ACTION_TIMEOUT_MS / 1000
        while (stopped := self._stopped.get(page)) is None:
            left_ms = (deadline - time.monotonic()) * 1000
            try:
                page.wait_for_load_state("domcontentloaded", timeout=max(1, min(OPEN_POLL_MS, left_ms)))
                stopped = self._stopped.get(page)
                break
            except PlaywrightTimeout:
                if left_ms <= OPEN_POLL_MS:
                    raise
        if stopped is not None and send_back and not _loads(page, STOPPED_LOAD_MS):
            stopped = f"{stopped} {self._send_back(page.context, page)}"
        return response, stopped

    def admits(self, page: Page) -> bool:
        """Whether a tab just opened is one to drive: not a refused popup's error or block page."""
        if self._unseen_popups and page.url.startswith("chrome-error:"):
            self._unseen_popups -= 1
        elif page.url in self._blocked_popups:
            self._blocked_popups.remove(page.url)
        else:
            return True
        self._doomed.append(page)
        return False

    def enforce(self, context: BrowserContext) -> bool:
        """Close the tabs of refused popups, and send back each tab that shows a refused
        address. True if a tab changed."""
        from playwright.sync_api import Error

        deadline = time.monotonic() + POPUP_WAIT_MS / 1000
        while (self._unseen_popups or self._blocked_popups) and (left := deadline - time.monotonic()) > 0:
            try:  # the tab's arrival calls admits()
                context.wait_for_event("page", timeout=left * 1000)
            except Error:  # a timeout, or a browser that died (the runtime notices that)
                break
        self._unseen_popups = 0  # never mistake a later tab for one of these
        self._blocked_popups.clear()
        changed = bool(self._doomed)
        for page in self._doomed:
            with contextlib.suppress(Error):
                page.close()
        self._doomed.clear()
        for page in open_pages(context):
            url = page.url
            if url.startswith(_NOT_ADDRESSES) or not (why := self.allowlist.refusal(url)):
                continue
            changed = True
            self._note(f"the tab went to {url}: {why}. {self._send_back(context, page)}")
        return changed

    def _send_back(self, context: BrowserContext, page: Page) -> str:
        from playwright.sync_api import Error

        with contextlib.suppress(Error):
            page.go_back(wait_until="domcontentloaded")
            if self.allowlist.allows(page.url):
                return f"It was sent back to {page.url}."
        try:
            if len(open_pages(context)) > 1:
                page.close()
                return "That tab was closed."
            page.goto("about:blank")
            return "The tab was emptied (about:blank)."
        except Error:
            return "The tab could not be sent back: navigate to an allowed address."

    def _refused_redirect(self, page: Page, source: str, target: str, why: str) -> None:
        message = f"the browser refused to follow a redirect from {source} to {target}: {why}."
        self._note(f"{message} The tab shows a page that says so.")
        self._stopped[page] = message

    def take_refusals(self) -> list[str]:
        """What was refused since the last call, in words the model can act on."""
        refusals, self._refusals = list(self._refusals), {}
        return refusals

    def _note(self, message: str, frame: Frame | None = None) -> None:
        self._refusals[message] = None
        if frame is not None:
            with contextlib.suppress(Exception):  # a detached frame has no page
                self._stopped[frame.page] = message


def _loads(page: Page, timeout_ms: float) -> bool:
    """Whether the tab's document reaches DOMContentLoaded within `timeout_ms`."""
    from playwright.sync_api import Error

    try:
        page.wait_for_load_state("domcontentloaded", timeout=timeout_ms)
    except Error:  # a timeout, or the tab gone
        return False
    return True
