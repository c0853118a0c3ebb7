"""The server over the tiny InternVL checkpoint: the prompt cap counted in the model's own tokens,
a hang-up that stops transformers' generate through GenerationConfig.should_stop, and a good
request answered as before after every kind of bad one."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from model import tiny
from model.base import Completion, GenerationConfig, Message
from model.internvl import InternVLModel
from tests.security.payloads import png, with_image
from tests.security.serving import Served, call, chat, running

pytestmark = pytest.mark.model

CONTEXT = 8192  # the tiny checkpoint's max_position_embeddings
LONG = "hello world " * 5000  # about 20,000 tokens: over the context, under the character guard


@pytest.fixture(scope="module")
def vlm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InternVLModel]:
    """The tiny model, built in a private cache so the user's real cache is left alone."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INTERNVL_AGENT_CACHE", str(tmp_path_factory.mktemp("cache")))
        tiny.tiny_checkpoint()
        yield InternVLModel.from_pretrained("tiny")


class Watched:
    """The tiny model, noting when generation starts, whether it was told to stop, and what it made."""

    def __init__(self, vlm: InternVLModel) -> None:
        self.vlm = vlm
        self.name = vlm.name
        self.entered = threading.Event()
        self.saw_stop = threading.Event()
        self.done = threading.Event()
        self.output_tokens: list[int] = []

    def __getattr__(self, name: str) -> Any:  # build_inputs, hf_model: the server's prompt counter
        return getattr(self.vlm, name)

    def generate(self, messages: Sequence[Message], config: GenerationConfig | None = None) -> Completion:
        self.entered.set()
        try:
            completion = self.vlm.generate(messages, self._watching(config))
            self.output_tokens.append(completion.output_tokens)
            return completion
        finally:
            self.done.set()

    def stream(self, messages: Sequence[Message], config: GenerationConfig | None = None) -> Iterator[str]:
        self.entered.set()
        try:
            yield from self.vlm.stream(messages, self._watching(config))
        finally:
            self.done.set()

    def _watching(self, config: GenerationConfig | None) -> GenerationConfig:
        import dataclasses

        config = config or GenerationConfig()
        asked = config.should_stop
        assert asked is not None, "the server passes should_stop"

        def should_stop() -> bool:
            if asked():
                self.saw_stop.set()
                return True
            return False

        return dataclasses.replace(config, should_stop=should_stop)


@pytest.fixture(scope="module")
def server(vlm: InternVLModel) -> Iterator[Served]:
    with running(vlm) as served:
        yield served


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_a_prompt_over_the_context_gets_400_with_its_token_count(server, vlm, stream):
    answer = call(server, chat(LONG, max_tokens=8, stream=stream))
    assert answer.status == 400  # streamed too: the prompt is counted before the status line goes
    message = answer.error["message"]
    tokens = len(vlm.build_inputs([Message.user(LONG)])[0])
    assert f"the prompt is {tokens} tokens, more than this server's limit of {CONTEXT}" in message
    assert "shorten the conversation" in message


def test_a_prompt_and_new_tokens_past_the_context_get_400_saying_how_many_fit(server, vlm):
    text = "hello world " * 1500  # about 6,000 tokens
    tokens = len(vlm.build_inputs([Message.user(text)])[0])
    answer = call(server, chat(text, max_tokens=CONTEXT - tokens + 1))
    assert answer.status == 400
    assert f"ask for at most {CONTEXT - tokens} (max_tokens)" in answer.error["message"]


def test_unasked_new_tokens_are_shortened_to_fit_the_context(server, vlm):
    text = "hello world " * 2000  # about 8,000 tokens
    tokens = len(vlm.build_inputs([Message.user(text)])[0])
    assert CONTEXT - 256 < tokens < CONTEXT  # the default of 256 new tokens would not fit
    answer = call(server, chat(text))
    assert answer.status == 200
    assert json.loads(answer.raw)["usage"]["completion_tokens"] <= CONTEXT - tokens


def _hang_up(server: Served, body: dict, model: Watched, *, stream: bool) -> None:
    raw = json.dumps(body).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(raw)}\r\n\r\n"
    ).encode()
    with socket.create_connection((server.host, server.port), timeout=30) as sock:
        sock.sendall(head + raw)
        assert model.entered.wait(30)
        if stream:
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_a_client_that_hangs_up_stops_internvl_generation(vlm, stream):
    model = Watched(vlm)
    with running(model) as server:  # type: ignore[arg-type]
        _hang_up(server, chat(max_tokens=8000, stream=stream), model, stream=stream)
        assert model.done.wait(60), "generation did not stop"
        assert model.saw_stop.is_set()
        if not stream:
            assert model.output_tokens[0] < 8000
        assert call(server, chat(max_tokens=4)).status == 200


def test_after_every_bad_request_a_good_one_is_answered_as_before(server, vlm):
    good = chat("Click the Submit button.", max_tokens=8)
    before = call(server, good)
    assert before.status == 200
    slow_loris = [socket.create_connection((server.host, server.port)) for _ in range(3)]
    for sock in slow_loris:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")  # and never the rest
    try:
        bad: list[tuple[Any, int]] = [
            (json.dumps(chat("x" * 20 * 2**20)).encode(), 413),
            (chat(user="u" * 10 * 2**20), 400),
            (chat("a" * 10 * 2**20), 400),
            (chat(LONG), 400),
            (with_image(png(8000, 8000)), 400),
            (with_image(png(6000, 6000, channels=1)), 400),
            (with_image(png(100_000, 100_000, channels=1, pixels=False)), 400),
            (b"{not json", 400),
            (chat(max_tokens=10**6), 400),
            ({"messages": [{"role": "robot", "content": "hi"}]}, 400),
        ]
        for body, status in bad:
            answer = call(server, body)
            assert answer.status == status, answer.raw[:200]
            assert ": " in answer.error["message"]  # what went wrong: what to do
        model = Watched(vlm)
        with running(model) as other:  # type: ignore[arg-type]
            _hang_up(other, chat(max_tokens=8000), model, stream=False)
            assert model.done.wait(60)
        after = call(server, good)
    finally:
        for sock in slow_loris:
            sock.close()
    assert after.status == 200
    assert json.loads(after.raw)["choices"] == json.loads(before.raw)["choices"]
    deadline = time.monotonic() + 10
    while server.app.state.runner.admitted:
        assert time.monotonic() < deadline, "a bad request kept its place in line"
        time.sleep(0.01)
