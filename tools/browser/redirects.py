"""Each redirect of a tab's page checked in Chromium's own loading, before its next hop is sent.

Chromium follows a redirect by itself, and Playwright's driver continues every later hop of
a redirect without asking any route. So the guard opens a DevTools session on each tab and
pauses its top-level document responses there (`Fetch.enable` at the response stage): a
3xx is held until its `Location` is read. A refused one is answered with a block page that
names the host (Chromium never requests it, and the tab shows the page at the address that
redirected); an allowed one, and every other response, goes on untouched. Chromium keeps
loading the page itself (streaming, its address space, its security checks) and still caps
a chain at 20 redirects.

A tab's first page loads before Playwright reports the tab (a popup), and a tab reported
before this thread has attached to it: the guard routes those requests one hop at a time
through Python instead (tools/browser/hops.py). Cross-site iframes are other DevTools
targets; strict mode routes theirs, too.
"""

from __future__ import annotations

import base64
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

from tools.browser.domains import DomainAllowlist
from tools.browser.hops import CSP, block_page

if TYPE_CHECKING:
    from playwright.sync_api import CDPSession, Page

__all__ = ["RedirectWatch"]

log = logging.getLogger(__name__)

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PATTERNS = [{"urlPattern": "*", "resourceType": "Document", "requestStage": "Response"}]

# Called with the tab, the address that redirected, where to, and why that is refused.
OnRefused = Callable[["Page", str, str, str], None]


class RedirectWatch:
    """The DevTools sessions that hold the tabs' redirects to the allowlist."""

    def __init__(
        self, allowlist: DomainAllowlist, on_refused: OnRefused, *, policy: str | None = None
    ) -> None:
        self.allowlist = allowlist
        self._on_refused = on_refused
        self._policy = policy  # a Content-Security-Policy to add to every document (strict mode)
        self._sessions: dict[Page, CDPSession] = {}

    def covers(self, page: Page) -> bool:
        return page in self._sessions

    def clear(self) -> None:
        self._sessions.clear()

    def attach(self, page: Page) -> None:
        """Hold `page`'s redirects from now on (again for a tab already held: nothing)."""
        from playwright.sync_api import Error

        if page in self._sessions or page.is_closed():
            return
        try:
            session = page.context.new_cdp_session(page)
            main = session.send("Page.getFrameTree")["frameTree"]["frame"]["id"]
            session.on("Fetch.requestPaused", lambda event: self._paused(page, session, main, event))
            session.send("Fetch.enable", {"patterns": _PATTERNS})
        except Error:  # the tab closed meanwhile
            log.debug("could not hold the redirects of %s", page, exc_info=True)
            return
        self._sessions[page] = session
        page.once("close", lambda _: self._sessions.pop(page, None))

    def _paused(self, page: Page, session: CDPSession, main: str, event: dict[str, Any]) -> None:
        from playwright.sync_api import Error

        request_id = event["requestId"]
        try:
            target = self._refused_target(event) if event.get("frameId") == main else None
            if target is None:
                self._go_on(session, event)
                return
            source = event["request"]["url"]
            why = self.allowlist.refusal(target) or ""
            body = block_page(source, target, why).encode()
            session.send("Fetch.fulfillRequest", {
                "requestId": request_id,
                "responseCode": 403,
                "responseHeaders": [
                    {"name": "Content-Type", "value": "text/html; charset=utf-8"},
                    {"name": "Cache-Control", "value": "no-store"},
                ],
                "body": base64.b64encode(body).decode(),
            })
            self._on_refused(page, source, target, why)
        except Exception:  # the tab closed meanwhile, or a bug: never leave the request hanging
            log.debug("redirect check of %s failed", event.get("request", {}).get("url"), exc_info=True)
            with contextlib.suppress(Error):
                session.send("Fetch.failRequest", {"requestId": request_id, "errorReason": "Failed"})

    def _go_on(self, session: CDPSession, event: dict[str, Any]) -> None:
        """Let a paused response through as it is, or with the policy added."""
        if self._policy is None or event.get("responseStatusCode") is None:
            session.send("Fetch.continueRequest", {"requestId": event["requestId"]})
            return
        headers = list(event.get("responseHeaders") or [])
        session.send("Fetch.continueResponse", {
            "requestId": event["requestId"],
            "responseCode": event["responseStatusCode"],
            "responseHeaders": [*headers, {"name": CSP, "value": self._policy}],
        })

    def _refused_target(self, event: dict[str, Any]) -> str | None:
        """The address a paused response redirects to, if the allowlist refuses it."""
        if event.get("responseStatusCode") not in _REDIRECTS:
            return None
        headers = event.get("responseHeaders") or []
        location = next((h["value"] for h in headers if h["name"].lower() == "location"), None)
        if not location:
            return None
        target = urljoin(event["request"]["url"], location.strip())
        return target if self.allowlist.refusal(target) else None
