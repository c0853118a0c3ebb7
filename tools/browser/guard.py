"""Refuse navigations off the allowlist, in the browser itself.

SafetyPolicy checks an action before it runs, but a click, a script setting `location`, a
meta refresh or a popup decides where a tab goes only once the action runs. With
`BrowserExecutor(allowed_domains=...)`, a NavigationGuard on the browser context (every
tab, popups included) keeps the tabs on the addresses that DomainAllowlist allows:

- A route aborts each top-level document request to a refused address before Chromium
  sends it. The tab stays on the page it was on: an "aborted" navigation commits nothing.
  A popup's first request comes before Playwright knows its frame; it is failed as
  "blocked by client" instead, so that Chromium commits an error page in it, Playwright
  reports the tab, and the guard closes it.
- Playwright's driver continues the later hops of a redirect itself, without asking any
  route: a 302 from an allowed host to a refused one is requested, and committed. So after
  each action, and at each observation (before the screenshot it returns), a tab that
  shows a refused address is sent back in its history, or closed (emptied to about:blank
  if it is the only tab).

Subresources (images, scripts, styles, fetch/XHR) and iframes are not restricted: allowed
sites load from CDNs and embed others, and the allowlist is about the pages the tabs are
on, which are what the model reads and acts on. Only requests off the allowlist come to
Python: the route's pattern leaves URLs on allowed hosts to Playwright's driver, so a
page's own traffic never waits for this thread (which is busy, or idle between steps).
Any route turns Chromium's HTTP cache off; Playwright does so for request interception.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from tools.browser.domains import DomainAllowlist
from tools.browser.tabs import open_pages

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page, Request, Route

__all__ = ["NavigationGuard", "offsite_pattern"]

# How long enforce() waits for the tab of a refused popup: Playwright reports it once its
# error page has committed, about 0.1 s after the request.
POPUP_WAIT_MS = 2_000
# Documents no request went to: Chromium's error page, and about:blank (its opener's).
_NOT_ADDRESSES = ("about:", "chrome-error:")


def offsite_pattern(domains: Iterable[str]) -> re.Pattern[str]:
    """Matches every URL the allowlist may refuse: all but http(s)://HOST[:PORT] followed by
    /, ?, # or the end, with HOST on an allowed domain. Routes see URLs as Chromium writes
    them (lower case, punycode), and the allowlist holds its domains the same way."""
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
        return re.compile("")
    return re.compile(r"^(?!https?://(?:" + "|".join(hosts) + r")(?::\d+)?(?:[/?#]|$))")


class NavigationGuard:
    """Keeps one context's tabs on the allowlist. `take_refusals()` says what it refused."""

    def __init__(self, allowlist: DomainAllowlist) -> None:
        self.allowlist = allowlist
        self._pattern = offsite_pattern(allowlist.domains)
        self._refusals: dict[str, None] = {}  # messages for the model, in order, each once
        self._unseen_popups = 0  # popups refused whose tab Playwright has not reported yet
        self._doomed: list[Page] = []  # their tabs, to close

    def install(self, context: BrowserContext) -> None:
        """Guard `context` and every tab it opens; a relaunched browser's context needs it too."""
        self._unseen_popups = 0
        self._doomed.clear()
        context.route(self._pattern, self._route)

    def _route(self, route: Route, request: Request) -> None:
        from playwright.sync_api import Error

        error = None
        if request.is_navigation_request() and (why := self.allowlist.refusal(request.url)):
            try:
                frame = request.frame
            except Error:  # Playwright has no frame for a popup's first request yet
                frame = None
            if frame is None:
                self._unseen_popups += 1
                self._note(
                    f"the browser refused to open {request.url} in a new tab: {why}. That tab was closed."
                )
                error = "blockedbyclient"
            elif frame.parent_frame is None:
                self._note(f"the browser refused to open {request.url}: {why}. The tab stays at {frame.url}.")
                error = "aborted"
        with contextlib.suppress(Error):  # the tab closed meanwhile
            if error is None:
                route.fallback()
            else:
                route.abort(error)

    def admits(self, page: Page) -> bool:
        """Whether a tab just opened is one to drive: not the error page of a refused popup."""
        if self._unseen_popups and page.url.startswith("chrome-error:"):
            self._unseen_popups -= 1
            self._doomed.append(page)
            return False
        return True

    def enforce(self, context: BrowserContext) -> bool:
        """Close the tabs of refused popups, and send back each tab that shows a refused
        address (a redirect took it there). True if a tab changed."""
        from playwright.sync_api import Error

        deadline = time.monotonic() + POPUP_WAIT_MS / 1000
        while self._unseen_popups and (left := deadline - time.monotonic()) > 0:
            try:  # the tab's arrival calls admits()
                context.wait_for_event("page", timeout=left * 1000)
            except Error:  # a timeout, or a browser that died (the runtime notices that)
                break
        self._unseen_popups = 0  # never mistake a later tab for one of these
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

    def take_refusals(self) -> list[str]:
        """What was refused since the last call, in words the model can act on."""
        refusals, self._refusals = list(self._refusals), {}
        return refusals

    def _note(self, message: str) -> None:
        self._refusals[message] = None
