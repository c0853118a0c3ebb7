"""Two real HTTP servers for allowlist tests: an allowed host and a refused one.

Both listen on 127.0.0.1, each on its own port. The allowed one is reached as
http://127.0.0.1:PORT, the refused one as http://localhost:PORT2, so with
allowed_domains=["127.0.0.1"] Chromium may visit the first and must never reach the second.
Each logs every request it gets (host name, method, path) and counts the TCP connections it
accepts: a preconnect opens a connection and sends nothing, so only the second count shows
one. Both serve tests/pages with {{offsite}} replaced by the refused origin and {{allowed}} by
the allowed one, and:

    /redirect?to=PATH   302 to the refused origin + PATH
    /hop?to=URL         302 to URL (relative to the server it is asked of)
    /beacon             POST target: 204
    /ws                 a WebSocket that says "hello" and then waits for the client to close
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tools.actions import Navigate
from tools.browser import BrowserExecutor

__all__ = ["ALLOWED", "REFUSAL", "OffsiteSite", "guarded_fixture", "launcher_fixture", "offsite_site", "row",
           "site_fixture"]

PAGES = Path(__file__).resolve().parent.parent / "pages"
ALLOWED = ["127.0.0.1"]
REFUSAL = "localhost is not on the allowed domains (127.0.0.1): stay on those"
TYPES = {
    ".html": "text/html", ".js": "text/javascript", ".svg": "image/svg+xml", ".css": "text/css",
    ".txt": "text/plain",
}
_WS_MAGIC = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def row(index: int) -> tuple[int, int]:
    """Centre of tests/pages/offsite.html's element in `index` (see the comment in that page)."""
    return 120, 35 + 40 * index


class OffsiteSite:
    """The two servers' shared log. `allowed` and `offsite` are their origins."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []  # (host name, path), in arrival order
        self.methods: list[tuple[str, str, str]] = []  # (host name, method, path)
        self.connections: Counter[str] = Counter()  # accepted TCP connections, by host name
        self.allowed = self.offsite = ""  # set once both listen
        self._lock = threading.Lock()

    def to(self, host: str) -> list[str]:
        """The paths requested so far through host name `host`."""
        with self._lock:
            return [path for h, path in self.requests if h == host]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()
            self.methods.clear()
            self.connections.clear()

    def _log(self, host: str, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((host, path))
            self.methods.append((host, method, path))

    def _accepted(self, host: str) -> None:
        with self._lock:
            self.connections[host] += 1

    def handler(self, host: str) -> type[http.server.BaseHTTPRequestHandler]:
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            # A connection that sends nothing (a preconnect) is closed soon, so that Chromium
            # cannot keep it for later: each test's preconnect then shows as a new connection.
            timeout = 0.5

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                site._log(host, "POST", self.path)
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(204)
                self.send_header("Access-Control-Allow-Origin", "*")
                self.end_headers()

            def do_GET(self) -> None:
                site._log(host, "GET", self.path)
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                if parts.path in ("/redirect", "/hop"):
                    to = query["to"][0]
                    self.send_response(302)
                    self.send_header("Location", site.offsite + to if parts.path == "/redirect" else to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif parts.path == "/ws" and self.headers.get("Upgrade", "").lower() == "websocket":
                    self._websocket()
                else:
                    self._file(parts.path)

            def _file(self, path: str) -> None:
                file = PAGES / path.lstrip("/")
                if path.count("/") != 1 or file.suffix not in TYPES or not file.is_file():
                    self.send_error(404)
                    return
                text = file.read_text().replace("{{offsite}}", site.offsite)
                body = text.replace("{{allowed}}", site.allowed).encode()
                self.send_response(200)
                self.send_header("Content-Type", TYPES[file.suffix])
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Access-Control-Allow-Origin", "*")
                self.end_headers()
                self.wfile.write(body)

            def _websocket(self) -> None:
                key = self.headers["Sec-WebSocket-Key"] + _WS_MAGIC
                accept = base64.b64encode(hashlib.sha1(key.encode()).digest()).decode()
                self.wfile.write(  # WebSockets need HTTP/1.1; BaseHTTPRequestHandler speaks 1.0
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    + f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
                )
                self.wfile.write(b"\x81\x05hello")  # one unmasked text frame
                self.wfile.flush()
                self.connection.settimeout(5)
                try:  # until the client closes, or 5 s
                    while self.connection.recv(1024):
                        pass
                except OSError:
                    pass
                self.close_connection = True

        return Handler


class _CountingServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, site: OffsiteSite, host: str) -> None:
        self.site, self.host_name = site, host
        super().__init__(("127.0.0.1", 0), site.handler(host))

    def get_request(self) -> tuple[socket.socket, object]:
        request = super().get_request()
        self.site._accepted(self.host_name)
        return request


@contextmanager
def offsite_site() -> Iterator[OffsiteSite]:
    """Both servers, each in a daemon thread, shut down on exit."""
    site = OffsiteSite()
    servers = [_CountingServer(site, "127.0.0.1"), _CountingServer(site, "localhost")]
    site.allowed = f"http://127.0.0.1:{servers[0].server_address[1]}"
    site.offsite = f"http://localhost:{servers[1].server_address[1]}"
    threads = [threading.Thread(target=server.serve_forever, daemon=True) for server in servers]
    for thread in threads:
        thread.start()
    try:
        yield site
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


# Fixtures `site`, `guarded` and `launcher`, for the modules that drive a guarded Chromium
# between the two servers: a module imports OFFSITE_FIXTURES' names to use them.
@pytest.fixture(scope="module", name="site")
def site_fixture() -> Iterator[OffsiteSite]:
    with offsite_site() as served:
        yield served


@pytest.fixture(scope="module", name="guarded")
def guarded_fixture(site: OffsiteSite) -> Iterator[BrowserExecutor]:
    with BrowserExecutor(start_url=f"{site.allowed}/offsite.html", allowed_domains=ALLOWED) as executor:
        yield executor


@pytest.fixture(name="launcher")
def launcher_fixture(guarded: BrowserExecutor, site: OffsiteSite) -> BrowserExecutor:
    """The shared executor with one tab, on offsite.html, and empty logs."""
    while len(guarded.tabs()) > 1:
        guarded.close_tab(len(guarded.tabs()) - 1)
    assert guarded.execute(Navigate(url=f"{site.allowed}/offsite.html")).ok
    guarded.observe()
    site.clear()
    return guarded
