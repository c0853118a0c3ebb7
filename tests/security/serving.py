"""The real server on 127.0.0.1, with every guard of `serve`, for the abuse tests.

`running(model, limits)` runs model.server_http.build_server in a thread (the server that
`serve` runs, less the signal handling, which only the main thread may do), and `call`
sends one request over a fresh connection and reads the whole answer.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

for _extra in ("fastapi", "uvicorn"):  # pip install 'internvl-agent[serve]'
    pytest.importorskip(_extra)

from model.base import VisionLanguageModel  # noqa: E402
from model.server import ServerLimits, create_app  # noqa: E402
from model.server_http import build_server  # noqa: E402

CHAT_PATH = "/v1/chat/completions"


@dataclass
class Served:
    host: str
    port: int
    app: Any

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    raw: bytes

    @property
    def error(self) -> dict[str, Any]:
        """The OpenAI-shaped error: {"message", "type", "param", "code"}."""
        assert self.headers.get("content-type", "").startswith("application/json"), self.raw[:200]
        body = json.loads(self.raw)
        assert set(body) == {"error"} and {"message", "type"} <= set(body["error"]), body
        return body["error"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running(model: VisionLanguageModel, limits: ServerLimits | None = None) -> Iterator[Served]:
    limits = limits or ServerLimits()
    app = create_app(model, limits=limits)
    port = free_port()
    server = build_server(app, host="127.0.0.1", port=port, limits=limits, log_level="critical")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield Served("127.0.0.1", port, app)
    finally:
        server.should_exit = True
        thread.join(10)


def call(
    server: Served,
    body: dict[str, Any] | bytes | None = None,
    *,
    path: str = CHAT_PATH,
    headers: dict[str, str] | None = None,
    timeout: float = 60,
) -> Answer:
    """One request on a fresh connection: a POST of `body` (JSON when a dict), else a GET."""
    connection = http.client.HTTPConnection(server.host, server.port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        sent = {"Content-Type": "application/json", **(headers or {})}
        connection.request("POST" if data is not None else "GET", path, body=data, headers=sent)
        response = connection.getresponse()
        raw = response.read()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, raw)
    finally:
        connection.close()


def chat(text: str = "hi", **fields: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}], **fields}
