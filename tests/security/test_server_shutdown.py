"""SIGTERM to a server process with a request in flight: it ends within 5 s, telling the client why,
whether the model honours GenerationConfig.should_stop (the tiny InternVL) or ignores it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from model import tiny
from tests.security.serving import free_port

ROOT = Path(__file__).resolve().parents[2]
EXIT_BOUND_S = 5.0  # the promise under test: SIGTERM ends the process within 5 s

# A model that sends one piece, then sleeps for a minute whatever it is told.
STUBBORN = """
import time
from model.base import Completion
from model.server import serve

class Stubborn:
    name = "stubborn"

    def generate(self, messages, config=None):
        time.sleep(60)
        return Completion("late")

    def stream(self, messages, config=None):
        yield "first"
        time.sleep(60)

serve(Stubborn(), host="127.0.0.1", port={port}, log_level="warning")
"""


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[Path]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INTERNVL_AGENT_CACHE", str(tmp_path / "cache"))
        yield tmp_path / "cache"


def _start(command: list[str], port: int, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 120  # loading torch and a model takes a while
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError(f"the server did not start:\n{log.read_text()[-3000:]}") from None
            time.sleep(0.1)


def _stream_in_flight(port: int, body: dict) -> socket.socket:
    """A streamed request whose first event has arrived: the model is generating."""
    raw = json.dumps({**body, "stream": True}).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(raw)}\r\n\r\n".encode()
        + raw
    )
    received = b""
    while b"data: " not in received:
        chunk = sock.recv(4096)
        assert chunk, received
        received += chunk
    assert received.startswith(b"HTTP/1.1 200"), received[:200]
    return sock


def _sigterm_and_time_the_exit(process: subprocess.Popen, sock: socket.socket) -> tuple[float, bytes]:
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(EXIT_BOUND_S * 3)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError("SIGTERM did not stop the server") from None
    took = time.monotonic() - started
    rest = b""
    sock.settimeout(5)
    with sock:
        while chunk := sock.recv(65536):
            rest += chunk
    return took, rest


@pytest.mark.model
def test_sigterm_stops_internvl_generation_in_flight_and_exits_within_5_s(cache, tmp_path):
    tiny.tiny_checkpoint()
    port = free_port()
    entry = Path(sys.executable).with_name("internvl-agent")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [str(entry), "serve", "--model", "tiny", "--port", str(port)]
    process = _start(command, port, tmp_path / "log", env)
    message = {"role": "user", "content": "hi"}
    sock = _stream_in_flight(port, {"messages": [message], "max_tokens": 8000})  # a minute of tokens
    took, rest = _sigterm_and_time_the_exit(process, sock)
    assert took < EXIT_BOUND_S, f"exited after {took:.1f} s"
    assert b"shutting down" in rest  # the stream ended with an error event saying why


def test_sigterm_exits_within_5_s_even_when_the_model_ignores_the_stop(tmp_path):
    port = free_port()
    process = _start([sys.executable, "-c", STUBBORN.format(port=port)], port, tmp_path / "log")
    sock = _stream_in_flight(port, {"messages": [{"role": "user", "content": "hi"}]})
    took, _ = _sigterm_and_time_the_exit(process, sock)
    assert took < EXIT_BOUND_S, f"exited after {took:.1f} s"
