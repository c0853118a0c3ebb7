"""What the OpenAI-compatible server accepts, and the checks that hold a request to it.

Every limit is a field of `ServerLimits`, with a default that serves an agent's traffic
(screenshots up to 4096x4096, a conversation up to the model's context) and refuses the
rest early, before it costs memory or a model call:

    too large a body                    413  (counted as it arrives; chunked uploads too)
    too many bytes in ignored fields    400
    too long a prompt                   400  naming its size (characters first, then tokens)
    too large an image, or a bomb       400  read from the image's header, before decoding
    the queue is full                   503  with Retry-After
    the time limit ran out              504  (model.server_runner)

Each refusal is a `RequestRefused`, which the server sends in OpenAI's error shape with
a message that says what to send instead. Connection-level guards (header and body
timeouts, the connection cap) live in model.server_http.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from model.base import GenerationConfig, Message
from tools.errors import AgentError

__all__ = [
    "BodyLimit",
    "RequestRefused",
    "ServerLimits",
    "check_ignored_fields",
    "check_prompt",
    "context_length",
    "error_response",
    "header_message",
    "inspect_messages",
    "prompt_counter",
]

# No tokenizer we serve packs more characters than this into one token of ordinary text, so
# a prompt with more characters than cap * this is too long without tokenizing it (which
# takes seconds for megabytes of text).
CHARS_PER_TOKEN = 16
DEFAULT_CONTEXT = 32768  # the prompt cap for a model that does not say its context length
# The image formats that model.messages decodes; Pillow reads only their headers here.
_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")
_DRAIN_FACTOR = 4  # an oversized body up to this many times the cap is read to its end (see BodyLimit)


@dataclass(frozen=True)
class ServerLimits:
    """The server's limits; each refusal's message names the one it hit.

    max_body_bytes      the largest request body (413 above it). 16 MiB holds several
                        PNG screenshots in base64.
    max_ignored_bytes   the most JSON bytes in fields the server ignores (user, tools, ...).
    max_prompt_tokens   the longest prompt, images included; None: the model's context length
                        (DEFAULT_CONTEXT for a model that does not say). The prompt and the
                        new tokens asked for must also fit in the context.
    max_image_pixels    the most pixels in one image, read from its header before decoding;
                        decoded it takes at most 4 bytes a pixel in every format accepted.
    max_request_pixels  the most pixels in all the images of one request.
    max_queue           requests that may wait while one runs; more get 503 with Retry-After.
                        Each waiting request holds its decoded images (max_request_pixels).
    request_timeout_s   each request's time limit, waiting included: past it, 504, and its
                        generation stops at the next token.
    header_timeout_s    time for a request's line and headers to arrive (slow-loris guard).
    body_timeout_s      time for a request's body to arrive once its headers are in.
    keep_alive_s        how long an idle kept-alive connection stays open.
    max_connections     open connections; a request on one beyond them gets 503.
    max_header_bytes    the largest request line and header block.
    shutdown_grace_s    on SIGTERM, how long the request in flight may run before it is
                        stopped; the process exits about a second later at most.
    """

    max_body_bytes: int = 16 * 2**20
    max_ignored_bytes: int = 256 * 2**10
    max_prompt_tokens: int | None = None
    max_image_pixels: int = 4096 * 4096
    max_request_pixels: int = 2 * 4096 * 4096
    max_queue: int = 4
    request_timeout_s: float = 300.0
    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    keep_alive_s: float = 5.0
    max_connections: int = 64
    max_header_bytes: int = 16 * 2**10
    shutdown_grace_s: float = 2.0

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value is None or (name == "max_queue" and value == 0):
                continue
            if not value > 0:  # NaN fails too
                raise ValueError(f"ServerLimits.{name} must be positive, not {value}")


class RequestRefused(AgentError):
    """A request the server will not serve; `status` is its HTTP status."""

    def __init__(
        self,
        message: str,
        status: int = 400,
        *,
        kind: str = "invalid_request_error",
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.retry_after_s = retry_after_s


def error_response(
    status: int,
    message: str,
    kind: str = "invalid_request_error",
    *,
    retry_after_s: int | None = None,
    close: bool = False,
) -> Any:
    """A starlette JSONResponse in OpenAI's error shape."""
    from starlette.responses import JSONResponse

    headers = {"Retry-After": str(retry_after_s)} if retry_after_s is not None else {}
    if close:
        headers["Connection"] = "close"
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return JSONResponse(body, status, headers=headers)


def header_message(limit: int) -> str:
    return (
        f"the request is not valid HTTP/1.1, or its line and headers are over {limit} bytes: send a "
        "well-formed request with shorter headers"
    )


def check_ignored_fields(extra: Mapping[str, Any] | None, limits: ServerLimits) -> None:
    """Refuse a request whose fields that this server ignores carry more than max_ignored_bytes."""
    if not extra:
        return
    size = len(json.dumps(extra, default=str))
    if size > limits.max_ignored_bytes:
        names = ", ".join(sorted(extra)[:5])
        raise RequestRefused(
            f"fields this server ignores ({names}) hold {size} bytes, more than the "
            f"{limits.max_ignored_bytes} it accepts: drop them from the request"
        )


def inspect_messages(messages: Sequence[Any], limits: ServerLimits, prompt_cap: int) -> None:
    """Refuse, before decoding anything, a prompt whose text or images are too large.

    Text: more characters than `prompt_cap` tokens can hold. Images: read from each data
    URL's header (Pillow's open is lazy), so an 8000x8000 PNG or a decompression bomb
    is refused without being decoded. A malformed message is left for model.messages,
    whose errors say how to fix it.
    """
    chars, pixels = 0, 0
    for index, message in enumerate(messages):
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, str):
            chars += len(content)
            continue
        for part in content if isinstance(content, list) else ():
            if not isinstance(part, Mapping):
                continue
            if isinstance(part.get("text"), str):
                chars += len(part["text"])
            value = part.get("image_url", part.get("image"))
            url = value.get("url") if isinstance(value, Mapping) else value
            if isinstance(url, str):
                width, height = _image_size(url, index, limits)
                pixels += width * height
    most = prompt_cap * CHARS_PER_TOKEN
    if chars > most:
        raise RequestRefused(
            f"the prompt has {chars} characters of text, more than a prompt of at most {prompt_cap} "
            f"tokens can hold ({most} characters): shorten the conversation or split the work"
        )
    if pixels > limits.max_request_pixels:
        raise RequestRefused(
            f"the request's images have {pixels} pixels in all, more than the {limits.max_request_pixels} "
            "this server decodes for one request: send fewer images (keep_images) or smaller ones"
        )


def _image_size(url: str, index: int, limits: ServerLimits) -> tuple[int, int]:
    """An image's size from its header, refused when over max_image_pixels; (0, 0) if unreadable."""
    from PIL import Image, UnidentifiedImageError

    if not url.startswith("data:image/") or ";base64," not in url[:64]:
        return 0, 0  # model.messages refuses it, saying why
    refuse = (
        f"message {index}: an image of {{}} is more than the {limits.max_image_pixels} pixels this "
        "server decodes: downscale it (a screenshot of at most "
        f"{_side(limits.max_image_pixels)}x{_side(limits.max_image_pixels)})"
    )
    try:
        raw = base64.b64decode(url.split(",", 1)[1], validate=True)
        with Image.open(io.BytesIO(raw), formats=list(_FORMATS)) as image:  # reads the header only
            width, height = image.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise RequestRefused(refuse.format("this size") + f" ({exc})") from exc
    except (binascii.Error, ValueError, UnidentifiedImageError, OSError):
        return 0, 0
    if width * height > limits.max_image_pixels:
        raise RequestRefused(refuse.format(f"{width}x{height} = {width * height} pixels"))
    return width, height


def _side(pixels: int) -> int:
    return int(pixels**0.5)


Counter = Callable[[Sequence[Message], GenerationConfig], int]


def prompt_counter(model: Any) -> Counter | None:
    """How to count a prompt's tokens for `model`, images included; None if it cannot tell.

    A backend may offer `count_tokens(messages, config)`; the local InternVL backend's
    `build_inputs` gives the ids it would generate from.
    """
    count = getattr(model, "count_tokens", None)
    if callable(count):
        return count  # type: ignore[no-any-return]
    build = getattr(model, "build_inputs", None)
    if callable(build):
        return lambda messages, config: len(build(messages, keep_images=config.keep_images)[0])
    return None


def context_length(model: Any) -> int | None:
    """The model's context in tokens: its `context_length`, else its transformers config's."""
    value = getattr(model, "context_length", None)
    if value is None:
        config = getattr(getattr(model, "hf_model", None), "config", None)
        text = getattr(config, "text_config", config)
        value = getattr(text, "max_position_embeddings", None)
    return int(value) if isinstance(value, int) and value > 0 else None


def check_prompt(
    tokens: int, config: GenerationConfig, *, cap: int, context: int | None, asked: bool
) -> GenerationConfig:
    """The config to generate with, or RequestRefused when the prompt does not fit.

    When the client did not ask for a number of new tokens (`asked` False), the default
    is shortened to what the context has room for instead.
    """
    if tokens > cap:
        raise RequestRefused(
            f"the prompt is {tokens} tokens, more than this server's limit of {cap}: shorten the "
            "conversation, or send fewer or smaller images (keep_images)"
        )
    room = None if context is None else context - tokens
    if room is None or config.max_new_tokens <= room:
        return config
    if not asked and room >= 1:
        from dataclasses import replace

        return replace(config, max_new_tokens=room)
    raise RequestRefused(
        f"the prompt is {tokens} tokens and {config.max_new_tokens} new tokens were asked for, more than "
        f"the model's context of {context}: ask for at most {max(room, 0)} (max_tokens), or shorten "
        "the prompt"
    )


class BodyLimit:
    """ASGI middleware: a request whose headers are over `max_header_bytes` gets a 431, one
    whose body is over `max_bytes` a 413, and the app sees neither.

    The body is counted as it arrives, so a chunked upload with no Content-Length is held
    to the cap too. An oversized body is read on, and thrown away, up to a few times the
    cap before the answer, so that a client still sending can read its 413; beyond that
    the connection is closed. (uvicorn's h11 limit on headers holds only while they are
    incomplete; headers that arrive in one piece are measured here.)
    """

    def __init__(self, app: Any, max_bytes: int, max_header_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        head = len(scope.get("raw_path", b"")) + sum(len(k) + len(v) + 4 for k, v in scope["headers"])
        if head > self.max_header_bytes:
            await error_response(431, header_message(self.max_header_bytes), close=True)(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send, int(declared))
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before its body was in: nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send, None, more=message.get("more_body", False))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: http.disconnect, for is_disconnected()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Any, receive: Any, send: Any, size: int | None, more: bool = True) -> None:
        drained = 0
        limit = self.max_bytes * _DRAIN_FACTOR
        while more and (size is None or size <= limit) and drained <= limit:
            message = await receive()
            if message["type"] != "http.request":
                return
            drained += len(message.get("body", b""))
            more = message.get("more_body", False)
        told = f"is {size} bytes, more than" if size is not None else "is more than"
        message = (
            f"the request body {told} this server's limit of {self.max_bytes} bytes: send smaller or "
            "fewer images (JPEG, or downscaled screenshots) or a shorter conversation"
        )
        await error_response(413, message, close=True)(scope, receive, send)
