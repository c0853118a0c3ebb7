"""Connection-level abuse, over raw sockets to the server on 127.0.0.1: slow-loris headers and
bodies, idle connections, too many connections, oversized headers. Each connection must be
closed, or answered with a JSON error, within its limit; the upper bounds below are
generous, since the point of each test is that the connection does not stay open."""

from __future__ import annotations

import itertools
import json
import socket
import time
from collections.abc import Iterator

import pytest

from model.scripted import ScriptedModel
from model.server import ServerLimits
from tests.security.serving import Served, call, running

LIMITS = ServerLimits(header_timeout_s=0.5, body_timeout_s=0.5, keep_alive_s=0.5, max_header_bytes=8192)
BOUND_S = 10  # a connection the server should have closed after 0.5 s must be closed by then


@pytest.fixture
def server() -> Iterator[Served]:
    with running(ScriptedModel(["ok"] * 10), LIMITS) as served:
        yield served


def _closed_after(sock: socket.socket, drip: bytes = b"") -> bytes:
    """Everything the server sends until it closes `sock`, dripping one byte of `drip` every 0.1 s."""
    received = b""
    deadline = time.monotonic() + BOUND_S
    sock.settimeout(0.1)
    for byte in itertools.chain((drip[i : i + 1] for i in range(len(drip))), itertools.repeat(b"")):
        assert time.monotonic() < deadline, "the server kept the connection open"
        try:
            if byte:
                sock.sendall(byte)
            chunk = sock.recv(4096)
        except TimeoutError:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return received
        if not chunk:
            return received
        received += chunk
    raise AssertionError("unreachable")


def test_a_slow_loris_header_drip_is_cut_off_with_a_408(server):
    with socket.create_connection((server.host, server.port)) as sock:
        drip = b"GET /v1/models HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 200
        received = _closed_after(sock, drip)
    assert received.startswith(b"HTTP/1.1 408")
    error = json.loads(received.split(b"\r\n\r\n", 1)[1])["error"]
    assert "did not arrive within 0.5 s" in error["message"]


def test_a_connection_that_sends_nothing_is_closed(server):
    with socket.create_connection((server.host, server.port)) as sock:
        assert _closed_after(sock).startswith(b"HTTP/1.1 408")


def test_a_body_that_trickles_in_is_cut_off(server):
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
    with socket.create_connection((server.host, server.port)) as sock:
        sock.sendall(head)
        _closed_after(sock, b"{" + b" " * 500)


def test_an_idle_kept_alive_connection_is_closed(server):
    with socket.create_connection((server.host, server.port)) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
        received = _closed_after(sock)
    assert received.startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize(("pieces", "status"), [(1, b"431"), (2, b"400")], ids=["whole", "split"])
def test_headers_over_the_limit_get_a_json_error(server, pieces, status):
    """431 when the headers come in one piece; 400 when h11 stops buffering them part way."""
    head = b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n"
    with socket.create_connection((server.host, server.port)) as sock:
        sock.sendall(head if pieces == 1 else head[:12_000])  # the first piece is already too long
        received = _closed_after(sock)
    assert received.startswith(b"HTTP/1.1 " + status)
    assert "headers are over 8192 bytes" in json.loads(received.split(b"\r\n\r\n", 1)[1])["error"]["message"]


def test_a_request_past_the_connection_cap_gets_503_then_the_server_recovers():
    limits = ServerLimits(max_connections=2, header_timeout_s=30)
    with running(ScriptedModel([]), limits) as server:
        held = [socket.create_connection((server.host, server.port)) for _ in range(2)]
        try:
            time.sleep(0.2)  # the server has accepted both
            refused = call(server, path="/v1/models")
            assert refused.status == 503 and int(refused.headers["retry-after"]) >= 1
            assert "connections open" in refused.error["message"]
        finally:
            for sock in held:
                sock.close()
        deadline = time.monotonic() + BOUND_S
        while (answer := call(server, path="/v1/models")).status != 200:
            assert time.monotonic() < deadline, answer.raw
            time.sleep(0.05)
