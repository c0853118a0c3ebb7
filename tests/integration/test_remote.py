"""The OpenAI-compatible server and client, end to end: a real uvicorn on 127.0.0.1 serving
the tiny model, reached through OpenAICompatibleModel and through raw HTTP."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from model import tiny
from model.base import Completion, GenerationConfig, Message, VisionLanguageModel
from model.internvl import InternVLModel
from model.prompting import keep_latest_images
from model.remote import OpenAICompatibleModel
from model.scripted import ScriptedModel
from model.server import create_app
from tools.errors import AgentError, ModelUnavailable

pytestmark = pytest.mark.model
for _extra in ("openai", "fastapi", "uvicorn"):  # pip install 'internvl-agent[remote,serve]'
    pytest.importorskip(_extra)

NAME = "tiny-served"
SAMPLED = GenerationConfig(max_new_tokens=12, temperature=1.0, seed=7)  # varied text, yet repeatable
GREEDY = GenerationConfig(max_new_tokens=8)
CHAT = [Message.system("You operate a computer."), Message.user("Click the Submit button.")]


@pytest.fixture(scope="module")
def vlm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InternVLModel]:
    """The tiny model, built in a private cache so the user's real cache is left alone."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INTERNVL_AGENT_CACHE", str(tmp_path_factory.mktemp("cache")))
        tiny.tiny_checkpoint()
        yield InternVLModel.from_pretrained("tiny")


@pytest.fixture(scope="module")
def requests_seen() -> list[str]:
    return []


@contextlib.contextmanager
def _serving(model: VisionLanguageModel, seen: list[str], name: str = NAME) -> Iterator[str]:
    """A real uvicorn on a free port in a thread, counting requests; yields the base URL."""
    import uvicorn

    app = create_app(model, served_name=name)

    @app.middleware("http")
    async def count(request, call_next):  # so a test can tell a retry loop from one request
        seen.append(request.url.path)
        return await call_next(request)

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def base_url(vlm: InternVLModel, requests_seen: list[str]) -> Iterator[str]:
    with _serving(vlm, requests_seen) as url:
        yield url


@pytest.fixture(scope="module")
def remote(base_url: str) -> OpenAICompatibleModel:
    return OpenAICompatibleModel(base_url, NAME, timeout_s=30, max_retries=2)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _http(url: str, body: bytes | dict | None = None) -> tuple[int, str, bytes]:
    """(status, content type, body) of a GET, or of a POST when there is a body: raw HTTP."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers["Content-Type"], error.read()


def _events(body: bytes) -> list[str]:
    """The data of each server-sent event, checking the framing on the way."""
    text = body.decode()
    assert text.endswith("\n\n"), "every event ends with a blank line"
    events = [block for block in text.split("\n\n") if block]
    assert all(e.startswith("data: ") and "\n" not in e for e in events), events[:3]
    return [e.removeprefix("data: ") for e in events]


def test_a_remote_reply_equals_the_local_reply(vlm, remote):
    for config in (GREEDY, SAMPLED):
        local, served = vlm.generate(CHAT, config), remote.generate(CHAT, config)
        assert served.text == local.text
        assert (served.prompt_tokens, served.output_tokens) == (local.prompt_tokens, local.output_tokens)
        assert served.extra["finish_reason"] == local.extra["finish_reason"]
    assert local.text.strip(), "the sampled reply has text to compare"


def test_openai_style_dicts_are_accepted_as_messages(vlm, remote):
    chat = [{"role": "user", "content": [{"type": "text", "text": "Click the Submit button."}]}]
    assert (
        remote.generate(chat, SAMPLED).text
        == vlm.generate([Message.user("Click the Submit button.")], SAMPLED).text
    )


def test_streamed_chunks_join_to_the_reply(vlm, remote):
    chunks = list(remote.stream(CHAT, SAMPLED))
    assert chunks and all(isinstance(c, str) and c for c in chunks)
    assert "".join(chunks) == vlm.generate(CHAT, SAMPLED).text


def test_an_image_reaches_the_model(vlm, remote):
    screenshot = Image.new("RGB", (448, 448), (30, 120, 200))
    with_image = [Message.user(screenshot, "What is on the screen?")]
    without = [Message.user("What is on the screen?")]
    local = vlm.generate(with_image, SAMPLED)
    served = remote.generate(with_image, SAMPLED)
    assert local.image_tokens == 256 + 2  # one tile, with <img> and </img>
    assert served.prompt_tokens == local.prompt_tokens
    # The "\n" after </img> is the one token beyond the image's own.
    assert served.prompt_tokens - remote.generate(without, GREEDY).prompt_tokens == local.image_tokens + 1
    assert served.text == local.text


def test_an_image_budget_keeps_dropped_screenshots_off_the_wire(vlm, remote):
    with_image = [Message.user(Image.new("RGB", (448, 448)), "What is on the screen?")]
    budget = dataclasses.replace(GREEDY, keep_images=0)
    served = remote.generate(with_image, budget)
    assert served.prompt_tokens == vlm.generate(keep_latest_images(with_image, 0), GREEDY).prompt_tokens
    assert served.prompt_tokens < 256


def test_models_lists_the_served_model(base_url):
    status, _, raw = _http(f"{base_url}/models")
    listing = json.loads(raw)
    assert status == 200
    assert listing["object"] == "list"
    assert [m["id"] for m in listing["data"]] == [NAME]


def test_a_bad_request_is_an_agent_error_with_the_servers_message_and_no_retry(remote, requests_seen):
    before = len(requests_seen)
    with pytest.raises(AgentError, match=r"HTTP 400.*max_tokens.*less than or equal to 8192") as info:
        remote.generate(CHAT, GenerationConfig(max_new_tokens=10**6))
    assert not isinstance(info.value, ModelUnavailable)
    assert len(requests_seen) == before + 1


def test_messages_the_client_can_tell_are_bad_are_refused_before_sending(remote, requests_seen):
    before = len(requests_seen)
    with pytest.raises(AgentError, match="role 'robot'"):
        remote.generate([{"role": "robot", "content": "hi"}])
    with pytest.raises(AgentError, match="not fetched"):
        remote.stream(
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/a.png"}}]}]
        )
    assert len(requests_seen) == before


def test_a_model_name_the_server_does_not_serve_says_so(base_url):
    with pytest.raises(ModelUnavailable, match=rf"404.*not served here.*{NAME}.*GET /v1/models"):
        OpenAICompatibleModel(base_url, "other-model").generate(CHAT, GREEDY)


def test_a_server_that_is_down_is_unavailable_naming_the_url():
    url = f"http://127.0.0.1:{_free_port()}/v1"
    model = OpenAICompatibleModel(url, NAME, api_key="sk-secret-key", timeout_s=2, max_retries=1)
    with pytest.raises(ModelUnavailable, match="start the server or check --base-url") as info:
        model.generate(CHAT, GREEDY)
    assert url in str(info.value) and "secret" not in str(info.value) + repr(model)
    with pytest.raises(ModelUnavailable, match=url):
        list(model.stream(CHAT, GREEDY))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"messages": [{"role": "robot", "content": "hi"}]}, "role 'robot'"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "http://x/a.png"}}],
                    }
                ]
            },
            "not fetched",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
                        ],
                    }
                ]
            },
            "could not be decoded",
        ),
        ({"messages": []}, "messages"),
        ({"temperature": "hot"}, "temperature"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**64}, "seed"),
        ({"max_tokens": 10**6}, "max_tokens"),
        ({"max_completion_tokens": 10**6}, "max_completion_tokens"),
        ({"stream": True, "n": 2}, "n > 1"),
    ],
)
def test_bad_requests_get_openai_style_400s(base_url, change, expected):
    body = {"model": NAME, "messages": [{"role": "user", "content": "hi"}], **change}
    status, _, raw = _http(f"{base_url}/chat/completions", body)
    assert status == 400
    error = json.loads(raw)["error"]
    assert error["type"] == "invalid_request_error" and expected in error["message"]


def test_a_body_that_is_not_json_gets_a_400(base_url):
    status, _, raw = _http(f"{base_url}/chat/completions", b"{not json")
    assert status == 400 and json.loads(raw)["error"]["type"] == "invalid_request_error"


def test_the_response_has_openais_shape_and_n_choices(base_url):
    body = {"model": NAME, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "n": 2}
    status, _, raw = _http(f"{base_url}/chat/completions", body)
    reply = json.loads(raw)
    assert status == 200
    assert reply["object"] == "chat.completion" and reply["model"] == NAME and reply["id"]
    assert [c["index"] for c in reply["choices"]] == [0, 1]
    assert all(c["message"]["role"] == "assistant" and c["finish_reason"] for c in reply["choices"])
    usage = reply["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


def test_the_stream_is_framed_as_server_sent_events(vlm, base_url):
    body = {"model": NAME, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    body |= {"max_tokens": 12, "temperature": 1.0, "seed": 7}  # as SAMPLED
    status, content_type, raw = _http(f"{base_url}/chat/completions", body)
    assert status == 200 and content_type.startswith("text/event-stream")
    events = _events(raw)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == vlm.generate([Message.user("hi")], SAMPLED).text


class PiecesModel:
    """A model that streams its reply in pieces, as a token streamer would."""

    name = "pieces"

    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces
        self.sent: list[int] = []  # pieces each stream yielded before it ended or was closed

    def generate(self, messages, config=None) -> Completion:
        return Completion("".join(self.pieces))

    def stream(self, messages, config=None) -> Iterator[str]:
        self.sent.append(0)
        for piece in self.pieces:
            time.sleep(0.005)
            yield piece
            self.sent[-1] += 1


def test_a_streaming_model_streams_piece_by_piece():
    model = PiecesModel(["click", "(x=", "12", ", y=", "34", ")"])
    with _serving(model, [], "pieces") as url:
        assert list(OpenAICompatibleModel(url, "pieces").stream(CHAT)) == model.pieces


def test_a_client_that_hangs_up_stops_the_stream_and_frees_the_model():
    model = PiecesModel(["click"] * 1000)  # five seconds of pieces
    with _serving(model, [], "pieces") as url:
        remote = OpenAICompatibleModel(url, "pieces")
        stream = remote.stream(CHAT)
        assert next(stream) == "click"
        stream.close()  # the client hangs up after one piece
        assert remote.generate(CHAT).text == "click" * 1000  # the lock was released
        assert len(model.sent) == 1 and model.sent[0] < 1000  # the stream was closed, not drained


def test_server_errors_are_retried_then_unavailable():
    seen: list[str] = []
    with _serving(ScriptedModel([]), seen) as url:  # no replies: every call fails
        remote = OpenAICompatibleModel(url, NAME, timeout_s=5, max_retries=1)
        unavailable = r"failed after 2 tries \(HTTP 500\).*internal error"
        with pytest.raises(ModelUnavailable, match=unavailable) as info:
            remote.generate(CHAT)
        assert "IndexError" not in str(info.value)  # the details stay in the server's log
        assert len(seen) == 2
        # Mid-stream the status is already 200: the failure comes as an error event.
        with pytest.raises(AgentError, match="internal error") as info:
            list(remote.stream(CHAT))
        assert "IndexError" not in str(info.value)


def test_the_server_answers_while_the_model_is_busy():
    entered, release = threading.Event(), threading.Event()

    def slow_reply(messages) -> str:
        entered.set()
        release.wait(10)
        return "done"

    with _serving(ScriptedModel([slow_reply]), []) as url:
        remote = OpenAICompatibleModel(url, NAME)
        worker = threading.Thread(target=lambda: remote.generate(CHAT), daemon=True)
        worker.start()
        assert entered.wait(10)
        assert _http(f"{url}/models")[0] == 200  # the event loop is free
        release.set()
        worker.join(10)


def test_serve_runs_uvicorn_until_stopped():
    port = _free_port()
    code = (
        "from model.scripted import ScriptedModel\nfrom model.server import serve\n"
        f"serve(ScriptedModel([]), host='127.0.0.1', port={port}, log_level='critical')"
    )
    process = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2])
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                status, _, raw = _http(f"http://127.0.0.1:{port}/v1/models")
                break
            except OSError:  # not listening yet
                assert process.poll() is None and time.monotonic() < deadline, "serve() did not start"
                time.sleep(0.05)
        assert status == 200 and json.loads(raw)["data"][0]["id"] == "scripted"
    finally:
        process.terminate()
        process.wait(10)


def test_logprobs_of_a_one_token_reply_are_the_local_models_and_a_remote_critic_reads_them(vlm, remote,
                                                                                          base_url):
    body = {"model": NAME, "messages": [{"role": "user", "content": "Click the Submit button."}],
            "max_tokens": 1, "logprobs": True, "top_logprobs": 5}
    status, _, raw = _http(f"{base_url}/chat/completions", body)
    assert status == 200
    choice = json.loads(raw)["choices"][0]
    local = vlm.top_logprobs([Message.user("Click the Submit button.")], 20)
    listed = choice["logprobs"]["content"][0]["top_logprobs"]
    assert [entry["token"] for entry in listed] == [text for text, _ in local[:5]]
    assert [entry["logprob"] for entry in listed] == pytest.approx([lp for _, lp in local[:5]], abs=1e-5)
    assert choice["message"]["content"] == local[0][0]
    # Two of the likeliest tokens, each the only one of its spelling, as a critic's answers.
    spelled = [text.strip() for text, _ in local]
    answers = [text for text, _ in local if text.strip() and spelled.count(text.strip()) == 1][:2]
    got = remote.answer_logprobs([Message.user("Click the Submit button.")], answers)
    expected = dict(local)
    assert got == pytest.approx({answer: expected[answer] for answer in answers}, abs=1e-5)


def test_logprobs_are_refused_for_a_longer_reply_and_by_a_model_without_them(base_url):
    body = {"model": NAME, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "logprobs": True}
    status, _, raw = _http(f"{base_url}/chat/completions", body)
    assert status == 400 and "max_tokens=1" in json.loads(raw)["error"]["message"]
    with _serving(ScriptedModel(["Yes"]), []) as url:
        with pytest.raises(AgentError, match="cannot return logprobs"):
            OpenAICompatibleModel(url, NAME).answer_logprobs(CHAT, ["Yes", "No"])
