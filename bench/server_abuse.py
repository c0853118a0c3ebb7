"""Each kind of bad request, sent to a local server: how it is answered, and how fast.

It starts `internvl-agent serve`'s server (model.server_http.build_server) in this process
on 127.0.0.1, over the tiny model unless --model names another, with a short time limit
and short connection timeouts so that those rows finish quickly. The baseline is the same
good request timed before the bad ones; it is timed again after them, and the two should
match: no bad request may leave the server slower.

    python bench/server_abuse.py
    python bench/server_abuse.py --model internvl3-1b --good-runs 10
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import socket
import statistics
import struct
import sys
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model.server import ServerLimits, create_app
from model.server_http import build_server

HOST = "127.0.0.1"
LIMITS = ServerLimits(request_timeout_s=3, header_timeout_s=2, body_timeout_s=2, max_queue=4)
GOOD = {"messages": [{"role": "user", "content": "Click the Submit button."}], "max_tokens": 8}


def png(width: int, height: int, *, channels: int = 3, pixels: bool = True) -> bytes:
    """A PNG of black pixels, compressed row by row: tiny on the wire, huge decoded."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + payload))
        return struct.pack(">I", len(payload)) + kind + payload + crc

    header = struct.pack(">IIBBBBB", width, height, 8, {1: 0, 3: 2}[channels], 0, 0, 0)
    packer = zlib.compressobj(9)
    row = bytes(1 + width * channels)
    data = b"".join(packer.compress(row) for _ in range(height if pixels else 0)) + packer.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def with_image(image: bytes) -> dict[str, Any]:
    url = "data:image/png;base64," + base64.b64encode(image).decode("ascii")
    part = {"type": "image_url", "image_url": {"url": url}}
    return {"messages": [{"role": "user", "content": [part, {"type": "text", "text": "What is this?"}]}]}


def chat(text: str, **fields: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}], **fields}


Result = tuple[str, float]  # (status, milliseconds)


def post(port: int, body: dict[str, Any] | bytes, timeout: float = 120) -> Result:
    """The status of one POST on a fresh connection, and its time from sending to the whole answer."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    started = time.perf_counter()
    try:
        headers = {"Content-Type": "application/json"}
        connection.request("POST", "/v1/chat/completions", body=data, headers=headers)
        response = connection.getresponse()
        response.read()
        return str(response.status), (time.perf_counter() - started) * 1000
    finally:
        connection.close()


def hang_up(port: int, body: dict[str, Any], after_s: float) -> socket.socket:
    raw = json.dumps(body).encode()
    sock = socket.create_connection((HOST, port))
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(raw)}\r\n\r\n"
    )
    sock.sendall(head.encode() + raw)
    time.sleep(after_s)
    return sock


def slow_loris(port: int) -> Result:
    """Drip a header byte every 0.2 s: what the server sent before it closed, and when it closed."""
    started = time.perf_counter()
    with socket.create_connection((HOST, port)) as sock:
        sock.settimeout(0.2)
        received = b""
        for _ in range(600):
            try:
                sock.sendall(b"a")
                chunk = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            received += chunk
        return received[9:12].decode() or "closed", (time.perf_counter() - started) * 1000


def queue_full(port: int) -> Result:
    """Fill the line with long generations, time one more request, then hang the long ones up."""
    long = chat("Describe everything.", max_tokens=8000)
    held = [hang_up(port, long, 0.0) for _ in range(LIMITS.max_queue + 1)]
    time.sleep(0.5)
    result = post(port, GOOD)
    for sock in held:
        sock.close()
    return result


def disconnect(port: int) -> Result:
    """Hang up on a long generation, and time the good request that follows at once."""
    hang_up(port, chat("Describe everything.", max_tokens=8000), 0.5).close()
    return post(port, GOOD)


def good_ms(port: int, runs: int) -> float:
    times = []
    for _ in range(runs):
        status, ms = post(port, GOOD)
        assert status == "200", status
        times.append(ms)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="tiny", help="a model name for InternVLModel.from_pretrained")
    parser.add_argument("--good-runs", type=int, default=9, help="good requests timed before and after")
    args = parser.parse_args()

    from model.internvl import InternVLModel

    if args.model == "tiny":
        from model import tiny

        tiny.tiny_checkpoint()
    vlm = InternVLModel.from_pretrained(args.model)
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]
    server_app = create_app(vlm, limits=LIMITS)
    server = build_server(server_app, host=HOST, port=port, limits=LIMITS, log_level="critical")
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)

    for _ in range(3):  # warm up
        post(port, GOOD)
    before = good_ms(port, args.good_runs)
    # Every body is built before the clock starts: the times are the server's.
    bodies: list[tuple[str, dict[str, Any] | bytes]] = [
        ("body of 20 MiB", json.dumps(chat("x" * 20 * 2**20)).encode()),
        ("10 MB in an ignored field", json.dumps(chat("hi", user="u" * 10**7)).encode()),
        ("10 MB text prompt", json.dumps(chat("a" * 10**7)).encode()),
        ("prompt past the context", chat("hello world " * 5000)),
        ("8000x8000 PNG", with_image(png(8000, 8000))),
        ("PNG bomb 6000x6000 (35 kB)", with_image(png(6000, 6000, channels=1))),
        ("PNG header 100000x100000", with_image(png(10**5, 10**5, channels=1, pixels=False))),
        ("bad JSON", b"{not json"),
    ]
    kinds: list[tuple[str, Callable[[], Result]]] = [
        *[(kind, lambda body=body: post(port, body)) for kind, body in bodies],
        (f"queue full (max_queue={LIMITS.max_queue})", lambda: queue_full(port)),
        (f"time limit ({LIMITS.request_timeout_s:g} s)", lambda: post(port, chat("Go on.", max_tokens=8000))),
        ("good request right after a hang-up", lambda: disconnect(port)),
        (f"slow-loris ({LIMITS.header_timeout_s:g} s)", lambda: slow_loris(port)),
    ]
    rows = []
    for kind, send in kinds:
        status, ms = send()
        rows.append((kind, status, f"{ms:.0f}"))
        while server_app.state.runner.admitted:  # let abandoned work leave the line before the next row
            time.sleep(0.01)
    after = good_ms(port, args.good_runs)
    server.should_exit = True

    rows.append((f"good request before (median of {args.good_runs})", "200", f"{before:.0f}"))
    rows.append((f"good request after (median of {args.good_runs})", "200", f"{after:.0f}"))
    width = max(len(r[0]) for r in rows)
    print(f"{'request':<{width}}  status  time ms   (model {args.model}, 127.0.0.1)")
    for kind, status, ms in rows:
        print(f"{kind:<{width}}  {status:>6}  {ms:>7}")
    print(f"good after / before: {after / before:.2f}")


if __name__ == "__main__":
    main()
