"""An OpenAI-compatible HTTP server for any VisionLanguageModel.

    POST /v1/chat/completions   OpenAI's request and response shapes; `stream: true` sends
                                server-sent events (`data: {chunk}` ... `data: [DONE]`)
    GET  /v1/models             the one model served

So `internvl-agent serve --model M` on a GPU machine, and `OpenAICompatibleModel(
"http://HOST:8000/v1", M)` (model/remote.py) or any OpenAI client anywhere else.

Images come as base64 data URLs; remote image URLs are refused, never fetched (the server
must not become a proxy into its own network). Model calls run one at a time behind a lock,
since there is one GPU, and in worker threads, so the event loop keeps answering. There is
no authentication: keep the default host 127.0.0.1 unless the network is trusted.

Unset sampling fields default to ours, not OpenAI's: greedy (temperature 0), because
agents want repeatable actions. Fields we do not honour (stop, logprobs, tools, ...) are
ignored. fastapi and uvicorn are imported lazily: `pip install 'internvl-agent[serve]'`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from model.base import Completion, GenerationConfig, Message, VisionLanguageModel
from model.messages import as_messages
from tools.errors import AgentError, ModelUnavailable

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["ChatCompletionRequest", "create_app", "serve"]

log = logging.getLogger(__name__)

_INSTALL_HINT = "pip install 'internvl-agent[serve]'"
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
Choice = tuple[str, str]  # (text, finish_reason)
MAX_TOKENS = 8192  # the most new tokens one request may ask for
# What a client hears of an unexpected failure; the details go to the log only.
_INTERNAL = "the model failed with an internal error: the server log has the details"


class ChatCompletionRequest(BaseModel):
    """The part of OpenAI's chat-completions request that this server honours."""

    model_config = ConfigDict(extra="ignore")  # clients send fields we have no use for (user, ...)

    model: str | None = None
    # Checked by model.messages.as_messages, whose errors name the message and the fix.
    messages: list[dict[str, Any]] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)  # newer clients' name for it
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    n: int = Field(default=1, ge=1, le=8)
    seed: int | None = Field(default=None, ge=0, lt=2**64)
    stream: bool = False

    def generation_config(self) -> GenerationConfig:
        tokens = self.max_completion_tokens or self.max_tokens or GenerationConfig().max_new_tokens
        return GenerationConfig(
            max_new_tokens=tokens, temperature=self.temperature, top_p=self.top_p, seed=self.seed
        )


def create_app(model: VisionLanguageModel, *, served_name: str | None = None) -> FastAPI:
    """The FastAPI app serving `model` under `served_name` (default: `model.name`)."""
    _require("fastapi")
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.concurrency import run_in_threadpool

    name = served_name or model.name
    started = int(time.time())
    lock = threading.Lock()  # one model call at a time: one GPU, and models are not thread-safe
    app = FastAPI(title=f"internvl-agent serving {name}")

    def error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
        return JSONResponse(
            {"error": {"message": message, "type": kind, "param": None, "code": None}}, status
        )

    @app.exception_handler(RequestValidationError)
    async def bad_schema(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error(400, _describe(exc.errors()))

    @app.exception_handler(AgentError)
    async def bad_input(request: Request, exc: AgentError) -> JSONResponse:
        if isinstance(exc, ModelUnavailable):  # the model failed (out of memory, ...), not the request
            return error(503, exc.message, "server_error")
        return error(400, exc.message)

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> JSONResponse:
        log.error("chat completion failed", exc_info=exc)
        return error(500, _INTERNAL, "server_error")

    @app.get("/v1/models", response_model=None)
    async def list_models() -> JSONResponse:
        entry = {"id": name, "object": "model", "created": started, "owned_by": "internvl-agent"}
        return JSONResponse({"object": "list", "data": [entry]})

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(body: ChatCompletionRequest) -> JSONResponse | StreamingResponse:
        if body.model not in (None, name):
            return error(404, f"model {body.model!r} is not served here: this server serves {name!r}")
        if body.stream and body.n > 1:
            return error(400, "stream with n > 1 is not supported: ask for n=1, or drop stream")
        # Decoding images takes CPU time: keep it off the event loop too.
        messages = await run_in_threadpool(_decode, body.messages)
        config = body.generation_config()
        if body.stream:
            events = _sse(model, lock, messages, config, name)
            return StreamingResponse(events, media_type="text/event-stream")
        choices, usage = await run_in_threadpool(_complete, model, lock, messages, config, body.n)
        return JSONResponse(
            {
                "id": _new_id(),
                "object": "chat.completion",
                "created": int(time.time()),
                "model": name,
                "choices": [
                    {
                        "index": i,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": finish,
                        "logprobs": None,
                    }
                    for i, (text, finish) in enumerate(choices)
                ],
                "usage": usage,
            }
        )

    return app


def serve(
    model: VisionLanguageModel,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    served_name: str | None = None,
    log_level: str = "info",
) -> None:
    """Serve `model` until interrupted (Ctrl-C)."""
    uvicorn = _require("uvicorn")
    if host not in _LOOPBACK:
        log.warning(
            "serving on %s with no authentication: anyone who can reach port %d can use it", host, port
        )
    uvicorn.run(create_app(model, served_name=served_name), host=host, port=port, log_level=log_level)


def _complete(
    model: VisionLanguageModel,
    lock: threading.Lock,
    messages: list[Message],
    config: GenerationConfig,
    n: int,
) -> tuple[list[Choice], dict[str, int]]:
    """n replies: one call's candidates, topped up by more calls for a model that ignores `n`."""
    with lock:
        first = model.generate(messages, dataclasses.replace(config, n=n))
        # Candidates carry no finish reason of their own; the first reply's stands for them all.
        choices = [(text, _finish(first)) for text in first.candidates[:n]]
        output_tokens = first.output_tokens
        while len(choices) < n:
            more = model.generate(messages, config)
            choices.append((more.text, _finish(more)))
            output_tokens += more.output_tokens
    usage = {
        "prompt_tokens": first.prompt_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": first.prompt_tokens + output_tokens,
    }
    return choices, usage


async def _sse(
    model: VisionLanguageModel,
    lock: threading.Lock,
    messages: list[Message],
    config: GenerationConfig,
    name: str,
) -> AsyncIterator[str]:
    """OpenAI's chunk events: the role, the text pieces, the finish reason, then [DONE]."""
    chunk_id, created = _new_id(), int(time.time())

    def event(delta: dict[str, str], finish: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        chunk = {"id": chunk_id, "object": "chat.completion.chunk", "created": created, "model": name}
        return f"data: {json.dumps({**chunk, 'choices': [choice]})}\n\n"

    yield event({"role": "assistant", "content": ""})
    try:
        async for piece, finish in _pieces(model, lock, messages, config):
            yield event({"content": piece}) if finish is None else event({}, finish)
    except Exception as exc:
        # The status line is long gone: report the failure as an error event, as vLLM does.
        log.error("streamed chat completion failed", exc_info=exc)
        message = exc.message if isinstance(exc, AgentError) else _INTERNAL
        yield f"data: {json.dumps({'error': {'message': message, 'type': 'server_error'}})}\n\n"
    yield "data: [DONE]\n\n"


async def _pieces(
    model: VisionLanguageModel, lock: threading.Lock, messages: list[Message], config: GenerationConfig
) -> AsyncIterator[tuple[str, str | None]]:
    """(piece, None) for each piece of text, then ("", finish_reason); the model runs in a thread.

    A model without `stream` sends its whole reply as one piece. If the client hangs up, the
    model's stream is closed, which stops its decoding, before the lock is released.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, str | None] | BaseException] = asyncio.Queue()
    gone = threading.Event()

    def put(item: tuple[str, str | None] | BaseException) -> None:
        if not gone.is_set():
            with contextlib.suppress(RuntimeError):  # the loop closed: the server is shutting down
                loop.call_soon_threadsafe(queue.put_nowait, item)

    def work() -> None:
        try:
            with lock:
                stream = getattr(model, "stream", None)
                if not callable(stream):
                    completion = model.generate(messages, config)
                    put((completion.text, None))
                    put(("", _finish(completion)))
                    return
                pieces = stream(messages, config)
                try:
                    for piece in pieces:
                        if gone.is_set():
                            break  # the client hung up: decoding further is wasted GPU time
                        put((piece, None))
                finally:
                    close = getattr(pieces, "close", None)
                    if callable(close):  # a generator's close stops its decoding, inside the lock
                        close()
                put(("", "stop"))  # a stream of text cannot tell a stop from running out of tokens
        except Exception as exc:
            put(exc)

    threading.Thread(target=work, name="vlm-stream", daemon=True).start()
    try:
        while True:
            item = await queue.get()
            if isinstance(item, BaseException):
                raise item
            yield item
            if item[1] is not None:
                return
    finally:
        gone.set()


def _decode(messages: list[dict[str, Any]]) -> list[Message]:
    from PIL import Image

    try:
        return as_messages(messages)
    except Image.DecompressionBombError as exc:
        raise AgentError(f"an image is too large to decode safely: {exc}") from exc


def _finish(completion: Completion) -> str:
    reason = completion.extra.get("finish_reason")
    return reason if reason in ("stop", "length") else "stop"


def _describe(errors: Sequence[Any]) -> str:
    """pydantic's errors as one line: `messages: Field required; n: ...`."""
    parts = []
    for err in errors[:3]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(parts)


def _new_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def _require(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise AgentError(f"the server needs {exc.name}: {_INSTALL_HINT}") from exc
