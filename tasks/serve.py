"""A task's `start.serve`: one folder over HTTP on 127.0.0.1, at a free port, and nothing else.

The handler resolves every request to a real path and refuses what lies outside the folder
(`..` in the request, a symlink that points out), and it lists no directories. Requests are
served in daemon threads, so a request that a browser abandoned cannot hold up the end.
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from pathlib import Path
from typing import Any

__all__ = ["FolderHandler", "serve_folder"]


class FolderHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the files under `directory`, and only those (404 for anything that leaves it)."""

    def send_head(self) -> Any:
        root = Path(self.directory).resolve()
        target = Path(self.translate_path(self.path))
        try:
            resolved = target.resolve()
        except (OSError, RuntimeError):  # a symlink loop
            resolved = None
        if resolved is None or (resolved != root and root not in resolved.parents):
            self.send_error(HTTPStatus.NOT_FOUND, "not in the served folder")
            return None
        return super().send_head()

    def list_directory(self, path: Any) -> None:
        self.send_error(HTTPStatus.NOT_FOUND, "no directory listings")
        return None

    def log_message(self, format: str, *args: object) -> None:
        pass  # a line per request is noise on a terminal run


@contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """Serve `folder` until the block ends; yields the base URL, such as http://127.0.0.1:41233."""
    handler = functools.partial(FolderHandler, directory=str(Path(folder).resolve()))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name=f"serve {folder}", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
