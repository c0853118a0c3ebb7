"""An OpenAI-compatible HTTP server for any VisionLanguageModel.

    POST /v1/chat/completions   OpenAI's request and response shapes; `stream: true` sends
                                server-sent events (`data: {chunk}` ... `data: [DONE]`)
    GET  /v1/models             the one model served

So `internvl-agent serve --model M` on a GPU machine, and `OpenAICompatibleModel(
"http://HOST:8000/v1", M)` (model/remote.py) or any OpenAI client anywhere else.

Images come as base64 data URLs; remote image URLs are refused, never fetched (the server
must not become a proxy into its own network). Model calls run one at a time on one model
thread, since there is one GPU, so the event loop keeps answering; a bounded line waits
for it (model.server_runner). There is no authentication: keep the default host 127.0.0.1
unless the network is trusted.

Every request is held to `ServerLimits` (model.server_limits): body size, prompt length,
image size, the line's length and a time limit, each refused early with a status and a
message that says what to send instead; a request whose client leaves or whose time runs
out stops its generation at the next token. `serve` adds the connection guards (header,
body and keep-alive timeouts, a connection cap) and a SIGTERM that ends within seconds
(model.server_http).

Unset sampling fields default to ours, not OpenAI's: greedy (temperature 0), because
agents want repeatable actions. `logprobs` with `top_logprobs` is answered for a greedy
one-token reply, what a critic asks (model.server_logprobs). Fields we do not honour (stop,
tools, ...) are ignored, up to `max_ignored_bytes`. fastapi and uvicorn are imported lazily:
`pip install 'internvl-agent[serve]'`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from model.base import Completion, GenerationConfig, Message, VisionLanguageModel
from model.messages import as_messages
from model.server_limits import (
    DEFAULT_CONTEXT,
    BodyLimit,
    RequestRefused,
    ServerLimits,
    check_ignored_fields,
    check_prompt,
    context_length,
    error_response,
    inspect_messages,
    prompt_counter,
)
from model.server_logprobs import MAX_TOP_LOGPROBS, check_logprobs_request, first_token
from model.server_runner import ModelRunner, Outbox
from tools.errors import AgentError, ModelUnavailable

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["ChatCompletionRequest", "ServerLimits", "create_app", "serve"]

log = logging.getLogger(__name__)

_INSTALL_HINT = "pip install 'internvl-agent[serve]'"
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
Choice = tuple[str, str]  # (text, finish_reason)
Fit = Callable[[Sequence[Message], GenerationConfig], GenerationConfig]
MAX_TOKENS = 8192  # the most new tokens one request may ask for
# What a client hears of an unexpected failure; the details go to the log only.
_INTERNAL = "the model failed with an internal error: the server log has the details"


class ChatCompletionRequest(BaseModel):
    """The part of OpenAI's chat-completions request that this server honours."""

    # Clients send fields we have no use for (user, tools, ...): kept aside, to hold their size down.
    model_config = ConfigDict(extra="allow")

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
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_LOGPROBS)

    @property
    def asked_tokens(self) -> bool:
        """Whether the client named a number of new tokens (else the default may be shortened)."""
        return (self.max_completion_tokens or self.max_tokens) is not None

    def generation_config(self) -> GenerationConfig:
        tokens = self.max_completion_tokens or self.max_tokens or GenerationConfig().max_new_tokens
        return GenerationConfig(
            max_new_tokens=tokens, temperature=self.temperature, top_p=self.top_p, seed=self.seed
        )


def create_app(
    model: VisionLanguageModel, *, served_name: str | None = None, limits: ServerLimits | None = None
) -> FastAPI:
    """The FastAPI app serving `model` under `served_name` (default: `model.name`), held to `limits`.

    `app.state.runner` is its model runner (model.server_runner); `serve` stops it on shutdown.
    """
    _require("fastapi")
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException

    limits = limits or ServerLimits()
    name = served_name or model.name
    started = int(time.time())
    runner = ModelRunner(max_queue=limits.max_queue, timeout_s=limits.request_timeout_s)
    context = context_length(model)
    prompt_cap = limits.max_prompt_tokens or context or DEFAULT_CONTEXT
    counter = prompt_counter(model)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        runner.close()  # the server has stopped: end the model thread once its work is done
        runner.stop_all()

    app = FastAPI(title=f"internvl-agent serving {name}", lifespan=lifespan)
    app.state.runner = runner
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes, max_header_bytes=limits.max_header_bytes)

    class EventStream(StreamingResponse):
        """Server-sent events that stop their request's work however the response ends."""

        def __init__(self, events: AsyncIterator[str], on_close: Callable[[], None]) -> None:
            super().__init__(events, media_type="text/event-stream")
            self._on_close = on_close

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            try:
                await super().__call__(scope, receive, send)
            finally:  # finished, or the client left (starlette cancels the stream): stop decoding
                self._on_close()

    @app.exception_handler(RequestValidationError)
    async def bad_schema(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, _describe(exc.errors()))

    @app.exception_handler(HTTPException)
    async def no_route(request: Request, exc: HTTPException) -> JSONResponse:
        message = (
            f"{request.method} {request.url.path}: {exc.detail}; this server answers "
            "POST /v1/chat/completions and GET /v1/models"
        )
        return error_response(exc.status_code, message)

    @app.exception_handler(AgentError)
    async def bad_input(request: Request, exc: AgentError) -> JSONResponse:
        if isinstance(exc, RequestRefused):
            return error_response(exc.status, exc.message, exc.kind, retry_after_s=exc.retry_after_s)
        if isinstance(exc, ModelUnavailable):  # the model failed (out of memory, ...), not the request
            return error_response(503, exc.message, "server_error")
        return error_response(400, exc.message)

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> JSONResponse:
        log.error("chat completion failed", exc_info=exc)
        return error_response(500, _INTERNAL, "server_error")

    @app.get("/v1/models", response_model=None)
    async def list_models() -> JSONResponse:
        entry = {"id": name, "object": "model", "created": started, "owned_by": "internvl-agent"}
        return JSONResponse({"object": "list", "data": [entry]})

    def fit(messages: Sequence[Message], config: GenerationConfig, *, asked: bool) -> GenerationConfig:
        """On the model thread (tokenizers are not thread-safe): the prompt fits, or RequestRefused."""
        if counter is None:
            return config
        return check_prompt(counter(messages, config), config, cap=prompt_cap, context=context, asked=asked)

    async def chat(body: ChatCompletionRequest, request: Request) -> JSONResponse | StreamingResponse:
        if body.model not in (None, name):
            return error_response(
                404, f"model {body.model!r} is not served here: this server serves {name!r}"
            )
        if body.stream and body.n > 1:
            return error_response(400, "stream with n > 1 is not supported: ask for n=1, or drop stream")
        check_ignored_fields(body.model_extra, limits)
        if body.logprobs:
            check_logprobs_request(model, tokens=body.max_completion_tokens or body.max_tokens, n=body.n,
                                   stream=body.stream, temperature=body.temperature)
        ticket = runner.admit()  # 503 with Retry-After when the line is full
        handed_over = False
        try:
            # Checking and decoding images takes CPU time: keep it off the event loop too.
            messages = await run_in_threadpool(_prepare, body.messages, limits, prompt_cap)
            config = dataclasses.replace(body.generation_config(), should_stop=ticket.should_stop)
            fits = partial(fit, asked=body.asked_tokens)
            if body.stream:
                outbox = runner.submit(ticket, partial(_stream, model, messages, config, fits))
                await outbox.get(request)  # the prompt fits: the status line can say 200
                handed_over = True
                return EventStream(_sse(outbox, name), on_close=lambda: ticket.stop("disconnect"))
            if body.logprobs:
                outbox = runner.submit(ticket, partial(first_token, model, messages, config,
                                                       body.top_logprobs or 0, fits))
                choice, usage = await outbox.get(request)
                return JSONResponse({"id": _new_id(), "object": "chat.completion", "model": name,
                                     "created": int(time.time()), "choices": [choice], "usage": usage})
            outbox = runner.submit(ticket, partial(_complete, model, messages, config, body.n, fits))
            choices, usage = await outbox.get(request)
        finally:
            if not handed_over:  # the work is over, or nobody waits for it any more
                ticket.stop("disconnect")
            if not ticket.submitted:
                runner.release(ticket)
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

    # This module's annotations are strings, which FastAPI resolves in the module's globals,
    # where the lazily imported Request is not: give it the class itself.
    chat.__annotations__["request"] = Request
    app.post("/v1/chat/completions", response_model=None)(chat)
    return app


def serve(
    model: VisionLanguageModel,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    served_name: str | None = None,
    log_level: str = "info",
    limits: ServerLimits | None = None,
) -> None:
    """Serve `model` until interrupted (Ctrl-C or SIGTERM, which end it within seconds)."""
    _require("uvicorn")
    from PIL import Image

    from model.server_http import build_server

    limits = limits or ServerLimits()
    if host not in _LOOPBACK:
        log.warning(
            "serving on %s with no authentication: anyone who can reach port %d can use it", host, port
        )
    # Pillow's own bomb guard, for any decoding that does not pass model.server_limits first.
    Image.MAX_IMAGE_PIXELS = limits.max_image_pixels
    app = create_app(model, served_name=served_name, limits=limits)
    build_server(app, host=host, port=port, limits=limits, log_level=log_level).run()


def _prepare(raw: list[dict[str, Any]], limits: ServerLimits, prompt_cap: int) -> list[Message]:
    """Our messages, once the text and the images' headers are within the limits."""
    from PIL import Image

    inspect_messages(raw, limits, prompt_cap)
    try:
        return as_messages(raw)
    except Image.DecompressionBombError as exc:
        raise AgentError(f"an image is too large to decode safely: {exc}") from exc


def _complete(
    model: VisionLanguageModel,
    messages: list[Message],
    config: GenerationConfig,
    n: int,
    fit: Fit,
    put: Callable[[Any], None],
) -> tuple[list[Choice], dict[str, int]]:
    """n replies: one call's candidates, topped up by more calls for a model that ignores `n`."""
    config = fit(messages, config)
    stop = config.should_stop or (lambda: False)
    first = model.generate(messages, dataclasses.replace(config, n=n))
    # Candidates carry no finish reason of their own; the first reply's stands for them all.
    choices = [(text, _finish(first)) for text in first.candidates[:n]]
    output_tokens = first.output_tokens
    while len(choices) < n and not stop():
        more = model.generate(messages, config)
        choices.append((more.text, _finish(more)))
        output_tokens += more.output_tokens
    usage = {
        "prompt_tokens": first.prompt_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": first.prompt_tokens + output_tokens,
    }
    return choices, usage


def _stream(
    model: VisionLanguageModel,
    messages: list[Message],
    config: GenerationConfig,
    fit: Fit,
    put: Callable[[Any], None],
) -> tuple[str, str]:
    """On the model thread: None once the prompt fits, then (piece, None) for each piece of text;
    returns ("", finish_reason). A model without `stream` sends its whole reply as one piece."""
    config = fit(messages, config)
    put(None)
    stream = getattr(model, "stream", None)
    if not callable(stream):
        completion = model.generate(messages, config)
        put((completion.text, None))
        return "", _finish(completion)
    stop = config.should_stop or (lambda: False)
    pieces = stream(messages, config)
    try:
        for piece in pieces:
            if stop():
                break  # the client hung up or the time ran out: decoding further is wasted GPU time
            put((piece, None))
    finally:
        close = getattr(pieces, "close", None)
        if callable(close):  # a generator's close stops its decoding
            close()
    return "", "stop"  # a stream of text cannot tell a stop from running out of tokens


async def _sse(outbox: Outbox, name: str) -> AsyncIterator[str]:
    """OpenAI's chunk events: the role, the text pieces, the finish reason, then [DONE]."""
    chunk_id, created = _new_id(), int(time.time())

    def event(delta: dict[str, str], finish: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        chunk = {"id": chunk_id, "object": "chat.completion.chunk", "created": created, "model": name}
        return f"data: {json.dumps({**chunk, 'choices': [choice]})}\n\n"

    yield event({"role": "assistant", "content": ""})
    try:
        while True:
            piece, finish = await outbox.get()
            if finish is not None:
                yield event({}, finish)
                break
            yield event({"content": piece})
    except Exception as exc:
        # The status line is long gone: report the failure as an error event, as vLLM does.
        if not isinstance(exc, RequestRefused):
            log.error("streamed chat completion failed", exc_info=exc)
        message = exc.message if isinstance(exc, AgentError) else _INTERNAL
        yield f"data: {json.dumps({'error': {'message': message, 'type': 'server_error'}})}\n\n"
    yield "data: [DONE]\n\n"


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
