"""Which web addresses a run may visit: a domain allowlist that holds whatever the model writes.

`example.org` allows example.org and its subdomains (shop.example.org), over http and https,
on any port; an IP address allows itself. `about:blank` is always allowed. Everything else
is refused: other schemes (file:, data:, javascript:, chrome:), hosts that merely contain an
allowed name (example.org.evil.net, evilexample.org), and addresses that browsers and Python
could read differently (backslashes, whitespace or control characters), so that a URL this
module allows is one a browser also sends to an allowed host.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from tools.errors import AgentError

__all__ = ["DomainAllowlist"]

# Characters a browser drops or reinterprets while parsing a URL (WHATWG): Python's urlsplit
# does not, so the two could disagree about the host.
_AMBIGUOUS = re.compile(r"[\\\s\x00-\x1f\x7f]")
_HOST = re.compile(r"[a-z0-9.\-]+")


# Characters that IDNA 2003 (Python's "idna" codec) maps away but IDNA 2008 / UTS 46, as
# browsers use it, keeps: "claß.com" would pass as class.com and be sent to xn--cla-7ka.com.
_IDNA_DEVIATIONS = re.compile("[\u00df\u03c2\u200c\u200d]")


def _ascii_host(host: str) -> str | None:
    """`host` lower-cased, without a trailing dot, internationalized names as punycode; an IP
    address in its canonical form. None for a host the two IDNA standards would encode apart."""
    host = host.lower().rstrip(".")
    if _IDNA_DEVIATIONS.search(host):
        return None
    try:
        return ipaddress.ip_address(host.strip("[]")).compressed
    except ValueError:
        pass
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    return host if _HOST.fullmatch(host) else None


class DomainAllowlist:
    """The domains a run may visit; `allows(url)` and `refusal(url)` check an address."""

    def __init__(self, domains: Iterable[str]) -> None:
        self.domains: tuple[str, ...] = ()
        for entry in domains:
            entry = entry.strip()
            host = None if re.search(r"[/@\s]", entry) else _ascii_host(entry)
            if not host or host.startswith(".") or ".." in host:
                raise AgentError(
                    f"allowed domain {entry!r} is not a host name: give one such as example.org "
                    "(no scheme, port or path; its subdomains are allowed with it)"
                )
            self.domains += (host,)

    def allows(self, url: str) -> bool:
        return self.refusal(url) is None

    def refusal(self, url: str) -> str | None:
        """None if `url` may be visited, else why not, in words the model can act on."""
        if url == "about:blank":
            return None
        allowed = ", ".join(self.domains) or "none"
        if _AMBIGUOUS.search(url):
            return f"{url!r} holds spaces, backslashes or control characters: write the address plainly"
        try:
            parts = urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018 - raises ValueError on a port that is not a number
        except ValueError:
            return f"{url!r} is not a valid address"
        if parts.scheme not in ("http", "https") or not host:
            return f"{url!r} is not an http(s) address on an allowed domain ({allowed})"
        ascii_host = _ascii_host(host)
        if ascii_host is not None and any(_within(ascii_host, domain) for domain in self.domains):
            return None
        return f"{host} is not on the allowed domains ({allowed}): stay on those"


def _within(host: str, domain: str) -> bool:
    """`host` is `domain` or one of its subdomains (an IP address has none)."""
    if host == domain:
        return True
    try:
        ipaddress.ip_address(domain)
    except ValueError:
        return host.endswith("." + domain)
    return False
