"""Bad requests, each sent for real to the server on 127.0.0.1: every one is refused early, with
the right status and an OpenAI-shaped error that says what to do, and none reaches the model.
Then the line (503 + Retry-After), the time limit (504) and a client that hangs up, each of
which must stop the model's work."""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from model.base import Completion, GenerationConfig
from model.server import ServerLimits
from tests.security.payloads import jpeg, png, with_image
from tests.security.serving import Answer, Served, call, chat, running


class HeldModel:
    """Each call runs until `release` is set, asking should_stop every 5 ms (unless stubborn)."""

    name = "held"

    def __init__(self, *, obeys_stop: bool = True, released: bool = False) -> None:
        self.obeys_stop = obeys_stop
        self.entered = threading.Event()
        self.release = threading.Event()
        self.saw_stop = threading.Event()  # the model was told to stop, and did
        self.calls = 0
        if released:
            self.release.set()

    def generate(self, messages, config: GenerationConfig | None = None) -> Completion:
        self.calls += 1
        self.entered.set()
        while not self.release.wait(0.005):
            if self._told_to_stop(config):
                return Completion("stopped early")
        return Completion("done", output_tokens=1)

    def stream(self, messages, config: GenerationConfig | None = None) -> Iterator[str]:
        self.calls += 1
        self.entered.set()
        try:
            yield "first"
            while not self.release.wait(0.005):
                if self._told_to_stop(config):
                    return
                yield "more"
        except GeneratorExit:  # the server closed the stream: that stops decoding too
            self.saw_stop.set()
            raise

    def _told_to_stop(self, config: GenerationConfig | None) -> bool:
        if self.obeys_stop and config is not None and config.should_stop is not None and config.should_stop():
            self.saw_stop.set()
            return True
        return False


@pytest.fixture
def model() -> HeldModel:
    return HeldModel(released=True)


@pytest.fixture
def server(model: HeldModel) -> Iterator[Served]:
    limits = ServerLimits(max_body_bytes=2**20, max_image_pixels=4096 * 4096)
    with running(model, limits) as served:
        yield served


def _refused(answer: Answer, status: int, pattern: str) -> str:
    assert answer.status == status, answer.raw[:300]
    message = answer.error["message"]
    assert re.search(pattern, message), message
    return message


def test_a_body_over_the_cap_gets_413_and_never_reaches_the_model(server, model):
    body = json.dumps(chat("x" * 3 * 2**20)).encode()
    message = _refused(call(server, body), 413, r"is \d+ bytes, more than this server's limit of 1048576")
    assert "send smaller" in message
    assert model.calls == 0


def test_a_chunked_body_with_no_length_is_held_to_the_cap_too(server, model):
    connection = http.client.HTTPConnection(server.host, server.port, timeout=30)
    pieces = (b"x" * 2**16 for _ in range(40))  # 2.5 MiB, chunked
    connection.request("POST", "/v1/chat/completions", body=pieces, encode_chunked=True)
    response = connection.getresponse()
    answer = Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    connection.close()
    _refused(answer, 413, r"more than this server's limit of 1048576 bytes")
    assert model.calls == 0


def test_megabytes_in_a_field_the_server_ignores_get_400(server, model):
    _refused(call(server, chat(user="u" * 900_000)), 400, r"ignores \(user\) hold \d+ bytes.*drop them")
    assert model.calls == 0


def test_a_huge_prompt_gets_400_naming_its_size_before_any_tokenizing():
    with running(HeldModel(released=True), ServerLimits(max_prompt_tokens=1000)) as server:
        message = _refused(call(server, chat("a" * 10**6)), 400, r"has 1000000 characters")
        assert "at most 1000 tokens" in message


@pytest.mark.parametrize("kind", ["png", "jpeg"])
def test_an_8000x8000_image_gets_400_before_it_is_decoded(server, model, kind):
    image = png(8000, 8000) if kind == "png" else jpeg(8000, 8000)
    message = _refused(call(server, with_image(image, kind)), 400, r"8000x8000 = 64000000 pixels")
    assert "downscale it" in message
    assert model.calls == 0


def test_a_decompression_bomb_gets_400(server, model):
    bomb = png(6000, 6000, channels=1)  # 35 kB on the wire, 36 MB decoded
    assert len(bomb) < 50_000
    _refused(call(server, with_image(bomb)), 400, r"6000x6000 = 36000000 pixels")
    # A header that claims ten billion pixels: Pillow's own guard trips as the header is read.
    _refused(call(server, with_image(png(100_000, 100_000, channels=1, pixels=False))), 400, r"downscale")
    assert model.calls == 0


def test_the_pixels_of_all_the_images_in_a_request_are_capped():
    limits = ServerLimits(max_image_pixels=1_000_000, max_request_pixels=1_500_000)
    with running(HeldModel(released=True), limits) as server:
        one = with_image(png(1000, 1000))
        two = {"messages": [one["messages"][0], one["messages"][0]]}
        assert call(server, one).status == 200
        _refused(call(server, two), 400, r"2000000 pixels in all.*send fewer images")


def test_unknown_paths_get_an_openai_shaped_404(server):
    _refused(call(server, path="/v1/nothing"), 404, r"GET /v1/nothing.*POST /v1/chat/completions")


def test_a_full_queue_answers_503_with_retry_after():
    model = HeldModel()
    with running(model, ServerLimits(max_queue=1)) as server:
        answers: list[Answer] = []
        first = threading.Thread(target=lambda: answers.append(call(server, chat())))
        first.start()
        assert model.entered.wait(10)
        second = threading.Thread(target=lambda: answers.append(call(server, chat())))
        second.start()
        deadline = time.monotonic() + 10
        while server.app.state.runner.admitted < 2:  # the second waits in line
            assert time.monotonic() < deadline
            time.sleep(0.01)
        refused = call(server, chat())
        _refused(refused, 503, r"the server is busy.*send it again in \d+ s")
        assert refused.error["type"] == "server_error"
        assert int(refused.headers["retry-after"]) >= 1
        model.release.set()
        first.join(10)
        second.join(10)
        assert [a.status for a in answers] == [200, 200]


@pytest.mark.parametrize("obeys_stop", [True, False], ids=["model-stops", "model-ignores-the-stop"])
def test_the_time_limit_answers_504_and_stops_the_model(obeys_stop):
    model = HeldModel(obeys_stop=obeys_stop)
    with running(model, ServerLimits(request_timeout_s=0.5)) as server:
        answer = call(server, chat(), timeout=30)
        message = _refused(answer, 504, r"did not finish within this server's limit of 0.5 s")
        assert "max_tokens" in message
        if obeys_stop:
            assert model.saw_stop.wait(10)
        model.release.set()
        model.entered.clear()
        assert call(server, chat(), timeout=30).status == 200  # the line is free again


def test_the_time_limit_ends_a_stream_with_an_error_event():
    model = HeldModel()
    with running(model, ServerLimits(request_timeout_s=0.5)) as server:
        answer = call(server, chat(stream=True), timeout=30)
        assert answer.status == 200
        events = [e.removeprefix("data: ") for e in answer.raw.decode().split("\n\n") if e]
        assert events[-1] == "[DONE]"
        assert "did not finish within" in json.loads(events[-2])["error"]["message"]
        assert model.saw_stop.wait(10)


def _hang_up_after(server: Served, body: dict, wait_for: threading.Event, read_first: bool) -> None:
    """Send `body`, wait until the model works on it (and for the first bytes back), then hang up."""
    raw = json.dumps(body).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {server.host}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(raw)}\r\n\r\n"
    ).encode()
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(head + raw)
        assert wait_for.wait(10)
        if read_first:
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_a_client_that_hangs_up_stops_the_generation(stream):
    model = HeldModel()
    with running(model) as server:
        _hang_up_after(server, chat(stream=stream), model.entered, read_first=stream)
        assert model.saw_stop.wait(10), "the model was never told to stop"
        deadline = time.monotonic() + 10
        while server.app.state.runner.admitted:  # its place in line is given back
            assert time.monotonic() < deadline
            time.sleep(0.01)
        model.release.set()
        assert call(server, chat()).status == 200
