"""The domain allowlist: what it lets through, and the tricks it must not fall for."""

from __future__ import annotations

import pytest

from tools.browser.domains import DomainAllowlist
from tools.browser.hops import abort_code, block_page, connect_policy, next_page, with_policy
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


# -- the allowlist in the browser's words (tools/browser/hops.py) --------------------------


def test_the_block_page_names_the_refused_host_and_escapes_what_it_shows():
    page = block_page("http://127.0.0.1/r", "http://evil.net/<script>", "evil.net is not allowed")

    assert "<title>Blocked: evil.net</title>" in page and "<h1>evil.net is blocked</h1>" in page
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_the_next_hop_page_goes_on_by_script_and_without_one():
    page = next_page('http://127.0.0.1/a?b="c"</script>')

    assert 'location.replace("http://127.0.0.1/a?b=\\"c\\"\\u003c/script>")' in page
    assert page.count("</script>") == 1  # the target cannot close the script early
    shown = "http://127.0.0.1/a?b=&quot;c&quot;&lt;/script&gt;"
    assert f'<meta http-equiv="refresh" content="0; url={shown}">' in page


def test_the_connect_policy_names_each_allowed_host_for_every_scheme():
    policy = connect_policy(ALLOWLIST)

    assert policy.startswith("connect-src 'self' blob: data: ")
    for source in ("http://example.org:*", "wss://*.example.org:*", "https://xn--bcher-kva.de:*",
                   "ws://127.0.0.1:*"):
        assert source in policy.split()
    assert "127.0.0.1.*" not in policy and "::1" not in policy and "*.127" not in policy


def test_a_page_keeps_its_own_policy_beside_the_added_one():
    headers = with_policy({"Content-Security-Policy": "script-src 'self'", "x": "y"}, "connect-src 'self'")

    assert headers == {"x": "y", "content-security-policy": "script-src 'self', connect-src 'self'"}
    assert with_policy({}, "connect-src 'self'") == {"content-security-policy": "connect-src 'self'"}


@pytest.mark.parametrize(("message", "code"), [
    ("connect ECONNREFUSED 127.0.0.1:9", "connectionrefused"),
    ("getaddrinfo ENOTFOUND nowhere.invalid", "namenotresolved"),
    ("Timeout 30000ms exceeded", "timedout"),
    ("something else", "failed"),
])
def test_a_failed_fetch_fails_the_request_with_chromiums_matching_error(message, code):
    assert abort_code(RuntimeError(message)) == code
