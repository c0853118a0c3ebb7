"""One message format for every backend: our `Message`, or OpenAI's chat format.

OpenAI-style messages are dicts whose `content` is a string or a list of parts:
`{"type": "text", "text": ...}` and `{"type": "image_url", "image_url": {"url": ...}}`,
where the URL is a `data:image/...;base64,` URL. A part may also hold a PIL image
directly (`{"type": "image", "image": img}` or `{"type": "image_url", "image_url": img}`),
so users can pass what they have without encoding it first.
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Mapping, Sequence
from typing import Any

from model.base import Message
from tools.errors import AgentError

__all__ = ["MessageLike", "as_messages", "decode_data_url", "encode_data_url", "to_openai"]

MessageLike = Message | Mapping[str, Any]
# The image types a data URL may declare, and the Pillow format each must hold.
_FORMATS = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP", "gif": "GIF", "bmp": "BMP"}
_ALLOWED = tuple(dict.fromkeys(_FORMATS.values()))
_FORMAT_NAMES = ", ".join(f"image/{t}" for t in _FORMATS)
_ROLES = ("system", "user", "assistant")


def as_messages(messages: Sequence[MessageLike]) -> list[Message]:
    """Our messages, whichever of the two formats they came in. Bad input raises AgentError."""
    return [m if isinstance(m, Message) else _from_openai(m, i) for i, m in enumerate(messages)]


def to_openai(messages: Sequence[MessageLike], *, image_format: str = "PNG") -> list[dict[str, Any]]:
    """OpenAI chat messages, images as base64 data URLs (PNG is lossless; JPEG is smaller)."""
    out: list[dict[str, Any]] = []
    for message in as_messages(messages):
        if all(isinstance(p, str) for p in message.content):
            out.append({"role": message.role, "content": message.text})
            continue
        parts: list[dict[str, Any]] = []
        for part in message.content:
            if isinstance(part, str):
                parts.append({"type": "text", "text": part})
            else:
                url = encode_data_url(part, image_format)
                parts.append({"type": "image_url", "image_url": {"url": url}})
        out.append({"role": message.role, "content": parts})
    return out


def encode_data_url(image: Any, image_format: str = "PNG") -> str:
    fmt = image_format.upper()
    if fmt not in ("PNG", "JPEG"):
        raise ValueError(f"image_format must be PNG or JPEG, not {image_format!r}")
    buffer = io.BytesIO()
    # JPEG has no alpha channel; PNG keeps whatever mode the image has.
    (image.convert("RGB") if fmt == "JPEG" else image).save(buffer, format=fmt, quality=90)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_data_url(url: str) -> Any:
    """A PIL image from a `data:image/...;base64,` URL. Remote URLs are refused, not fetched."""
    from PIL import Image, UnidentifiedImageError

    if not url.startswith("data:image/") or ";base64," not in url[:64]:
        raise AgentError(
            f"image URL {url[:40]!r}... is not a base64 data URL: send images as "
            "data:image/png;base64,... (remote image URLs are not fetched)"
        )
    declared = url[len("data:image/") :].split(";", 1)[0].lower()
    expected = _FORMATS.get(declared)
    if expected is None:
        raise AgentError(f"image data URL type image/{declared[:20]} is not supported: use {_FORMAT_NAMES}")
    try:
        raw = base64.b64decode(url.split(",", 1)[1], validate=True)
        # Only the formats named: Pillow would otherwise try every format it knows (EPS runs Ghostscript).
        image = Image.open(io.BytesIO(raw), formats=list(_ALLOWED))
        image.load()
    except (binascii.Error, ValueError, UnidentifiedImageError, OSError) as exc:
        raise AgentError(f"image data URL could not be decoded as an image: {exc}") from exc
    if image.format != expected:
        raise AgentError(f"image data URL says image/{declared} but holds a {image.format} image")
    return image


def _from_openai(message: Mapping[str, Any], index: int) -> Message:
    from PIL.Image import Image

    if not isinstance(message, Mapping):
        raise AgentError(f"message {index} is a {type(message).__name__}: give a Message or a dict")
    role = message.get("role")
    if role not in _ROLES:
        raise AgentError(f"message {index} has role {role!r}: use one of {', '.join(_ROLES)}")
    content = message.get("content")
    if isinstance(content, str):
        return Message(role, (content,))
    if not isinstance(content, Sequence):
        raise AgentError(f"message {index}: content must be a string or a list of parts")
    parts: list[Any] = []
    for part in content:
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append(part["text"])
        elif kind in ("image_url", "image"):
            value = part.get(kind)
            if isinstance(value, Mapping):
                value = value.get("url")
            if isinstance(value, Image):
                parts.append(value)
            elif isinstance(value, str):
                parts.append(decode_data_url(value))
            else:
                raise AgentError(f"message {index}: an {kind} part needs a data URL or a PIL image")
        else:
            raise AgentError(
                f"message {index}: unsupported content part {str(part)[:60]!r}: use "
                '{"type": "text", "text": ...} or {"type": "image_url", "image_url": {"url": ...}}'
            )
    return Message(role, tuple(parts))
