"""The domain allowlist: what it lets through, and the tricks it must not fall for."""

from __future__ import annotations

import pytest

from tools.browser.domains import DomainAllowlist
from tools.errors import AgentError

ALLOWLIST = DomainAllowlist(["example.org", "bücher.de", "127.0.0.1", "::1"])


@pytest.mark.parametrize("url", [
    "https://example.org/",
    "http://example.org:8080/path?q=1#frag",
    "https://shop.example.org/cart",
    "https://EXAMPLE.ORG./",  # case and the trailing dot of a fully qualified name
    "https://bücher.de/",
    "https://xn--bcher-kva.de/",  # the same host as Chromium reports it
    "http://127.0.0.1:5000/page.html",
    "http://[::1]:8000/",
    "about:blank",
])
def test_allowed_addresses(url):
    assert ALLOWLIST.allows(url), ALLOWLIST.refusal(url)


@pytest.mark.parametrize("url", [
    "https://evil.net/",
    "https://example.org.evil.net/",  # an allowed name as a prefix
    "https://evilexample.org/",  # ... or as a suffix without the dot
    "https://example.org@evil.net/",  # userinfo: the host is evil.net
    "https://example.org:443@evil.net/",
    "https://evil.net\\@example.org/",  # browsers read the backslash as a slash: host evil.net
    "https://evil.net/?next=https://example.org/",
    "https://evil.net#@example.org",
    "http://ex\tample.org/",  # browsers drop tabs and newlines: refuse rather than guess
    " https://evil.net/",
    "https://examp1e.org/",
    "https://\u0435xample.org/",  # a Cyrillic e: a different host in punycode
    "http://claß.example.org.evil.net/",
    "http://127.0.0.2/",
    "http://1.127.0.0.1/",  # not a subdomain of an IP address
    "file:///etc/passwd",
    "javascript:alert(1)",
    "data:text/html,<script>location='https://evil.net'</script>",
    "chrome://settings",
    "https:///example.org",
    "https://example.org:notaport/",
    "",
])
def test_refused_addresses(url):
    assert not ALLOWLIST.allows(url)
    assert "example.org" in ALLOWLIST.refusal(url) or "address" in ALLOWLIST.refusal(url)


def test_the_refusal_names_the_host_and_the_allowed_domains():
    assert ALLOWLIST.refusal("https://evil.net/x") == (
        "evil.net is not on the allowed domains (example.org, xn--bcher-kva.de, 127.0.0.1, ::1): "
        "stay on those"
    )


@pytest.mark.parametrize("entry", ["https://example.org", "example.org/path", "example.org:8080", "", ".org",
                                   "user@example.org", "exa mple.org", "*.example.org", "a..b"])
def test_entries_that_are_not_host_names_are_refused_with_what_to_give(entry):
    with pytest.raises(AgentError, match=r"such as example\.org"):
        DomainAllowlist([entry])


def test_an_empty_allowlist_allows_only_the_blank_page():
    nothing = DomainAllowlist([])
    assert nothing.allows("about:blank") and not nothing.allows("https://example.org/")


def test_names_that_the_two_idna_standards_encode_apart_are_refused():
    # Python's idna codec (IDNA 2003) reads claß.com as class.com; Chromium (UTS 46) asks
    # xn--cla-7ka.com. Refusing them keeps the allowlist and the browser in agreement.
    allowlist = DomainAllowlist(["class.com", "example.org"])
    for host in ("claß.com", "\u03c2.example.org", "ex\u200dample.org", "a\u200c.example.org"):
        assert not allowlist.allows(f"https://{host}/"), host
    with pytest.raises(AgentError):
        DomainAllowlist(["straße.de"])
