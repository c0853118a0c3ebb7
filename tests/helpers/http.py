"""One way for tests to serve HTTP: a real ThreadingHTTPServer on 127.0.0.1, on a free port."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["QuietFiles", "serving", "serving_folder"]


class QuietFiles(http.server.SimpleHTTPRequestHandler):
    """Serves files, without a log line per request."""

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serving(handler: type[http.server.BaseHTTPRequestHandler] | functools.partial) -> Iterator[
        http.server.ThreadingHTTPServer]:
    """A server with `handler`, in a daemon thread, shut down on exit. Its request threads are
    daemons too, so a request that the browser abandoned (a long poll) cannot hold up the end."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def serving_folder(folder: Path, handler: type[QuietFiles] = QuietFiles) -> Iterator[str]:
    """The files of `folder` over HTTP; yields the base URL, such as http://127.0.0.1:41233."""
    with serving(functools.partial(handler, directory=str(folder))) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}"
