"""Requests fetched one redirect hop at a time, so that no hop leaves for a refused host.

Chromium follows a redirect by itself, and Playwright's driver continues every later hop of
a redirect without asking any route: a route sees only a request's first URL. A tab's pages
are checked where Chromium loads them (tools/browser/redirects.py); what that cannot see
(a popup's first page; in strict mode, iframes and every subresource) the guard fetches
here, through the route, with redirects off (`route.fetch(max_redirects=0)`), and reads each
`Location` before anything is sent to it:

- A hop to a refused host is never requested. A document gets a block page that names the
  host (the tab shows it, at the address that redirected); any other request fails.
- A document's hop to an allowed host becomes a fresh navigation: the response is a tiny
  page that replaces itself with the next address (`location.replace`), and the next request
  comes to the route again. Chromium so keeps the right address, origin and history for
  the page that ends the chain, and every hop is requested once. (Handing Chromium the 3xx
  itself would let it fetch the next hop unchecked; fetching the whole chain here and
  answering with its end would show that page at the first address.) The referrer of each
  later hop is the hop before it, and a 307/308 hop of a form's POST is followed as a GET.
- Any other request follows its allowed hops here and is answered with the last response.

At most MAX_HOPS redirects are followed in a chain, as Chromium does. A document answered
from Python has no IP address, so Chromium counts it as public for its Local Network Access
checks: such a page cannot load from a loopback or private address on another origin.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

from tools.browser.domains import DomainAllowlist

if TYPE_CHECKING:
    from playwright.sync_api import APIResponse, Route

__all__ = [
    "CSP", "MAX_HOPS", "Hop", "abort_code", "block_page", "connect_policy", "fetch_hop", "follow",
    "next_page", "with_policy",
]

MAX_HOPS = 20
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
CSP = "content-security-policy"


@dataclass(frozen=True)
class Hop:
    """What one fetch found: a final `response`, or a redirect to `target` (refused if `why`)."""

    response: APIResponse
    target: str | None = None
    why: str | None = None


def fetch_hop(
    route: Route, allowlist: DomainAllowlist, url: str | None = None, *, method: str | None = None
) -> Hop:
    """Fetch the route's request (or `url`, a later hop of it) without following a redirect.
    Raises Playwright's Error when the server cannot be reached (see `abort_code`)."""
    options: dict[str, object] = {"max_redirects": 0}
    if url is not None:
        options["url"] = url
    if method is not None:
        options["method"] = method
        if method == "GET":
            options["post_data"] = b""
    response = route.fetch(**options)  # type: ignore[arg-type]
    location = response.headers.get("location")
    if response.status not in _REDIRECTS or not location:
        return Hop(response)
    target = urljoin(url or route.request.url, location.strip())
    return Hop(response, target, allowlist.refusal(target))


def follow(route: Route, allowlist: DomainAllowlist) -> Hop:
    """Fetch a subresource through its allowed hops (at most MAX_HOPS): the final response,
    or the first hop that is refused (or one more than MAX_HOPS, with `why` saying so)."""
    hop = fetch_hop(route, allowlist)
    method = route.request.method
    for _ in range(MAX_HOPS):
        if hop.target is None or hop.why is not None:
            return hop
        # As browsers do: 303, and 301/302 after a POST, continue as a GET.
        if hop.response.status == 303 or (hop.response.status in (301, 302) and method == "POST"):
            method = "GET"
        hop = fetch_hop(route, allowlist, hop.target, method=method)
    if hop.target is not None and hop.why is None:
        return Hop(hop.response, hop.target, f"more than {MAX_HOPS} redirects")
    return hop


def next_page(target: str) -> str:
    """A page that goes on to `target` as a new navigation, replacing itself in the history."""
    shown = html.escape(target)
    script = json.dumps(target).replace("<", "\\u003c")  # no "</script>" inside the script
    return (
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Redirecting</title>"
        f"<script>location.replace({script})</script>"
        f"<noscript><meta http-equiv=\"refresh\" content=\"0; url={shown}\"></noscript>"
        f"</head><body><p>Redirecting to <a href=\"{shown}\">{shown}</a></p></body></html>"
    )


def block_page(source: str, target: str, why: str) -> str:
    """The page shown instead of a refused redirect hop: it names the host and says why."""
    host = html.escape(urlsplit(target).hostname or target)
    return (
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
        f"<title>Blocked: {host}</title></head>"
        "<body style=\"font: 16px sans-serif; margin: 40px\">"
        f"<h1>{host} is blocked</h1>"
        f"<p>{html.escape(source)} redirects to {html.escape(target)}, and the browser did not "
        f"follow: {html.escape(why)}.</p><p>Go back, or open an allowed address.</p></body></html>"
    )


def connect_policy(allowlist: DomainAllowlist) -> str:
    """A Content-Security-Policy that lets scripts connect (fetch, WebSocket, EventSource)
    only to the allowlist. Strict mode adds it to documents and worker scripts: a worker's
    WebSocket is the one request that neither routes nor `route_web_socket` see. A second
    policy only narrows the page's own, and an IPv6 host, which CSP cannot name, is 'self' only."""
    sources = ["'self'", "blob:", "data:"]
    for domain in allowlist.domains:
        if ":" in domain:
            continue
        hosts = [domain] if domain.replace(".", "").isdigit() else [domain, f"*.{domain}"]
        sources += [f"{scheme}://{host}:*" for host in hosts for scheme in ("http", "https", "ws", "wss")]
    return "connect-src " + " ".join(sources)


def with_policy(headers: dict[str, str], policy: str) -> dict[str, str]:
    """`headers` with `policy` added to any Content-Security-Policy they hold (comma-separated
    policies are each enforced)."""
    own = [value for name, value in headers.items() if name.lower() == CSP]
    merged = {name: value for name, value in headers.items() if name.lower() != CSP}
    merged[CSP] = ", ".join([*own, policy])
    return merged


def abort_code(error: BaseException) -> str:
    """The Chromium error to fail a request with, from the message of a failed fetch."""
    text = str(error)
    for marker, code in (
        ("ECONNREFUSED", "connectionrefused"),
        ("ENOTFOUND", "namenotresolved"),
        ("EAI_AGAIN", "namenotresolved"),
        ("ECONNRESET", "connectionreset"),
        ("socket hang up", "connectionreset"),
        ("Timeout", "timedout"),
        ("ETIMEDOUT", "timedout"),
        ("EHOSTUNREACH", "addressunreachable"),
        ("ENETUNREACH", "internetdisconnected"),
    ):
        if marker in text:
            return code
    return "failed"
