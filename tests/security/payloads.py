"""Hostile request bodies for the server's abuse tests: huge images, bombs, oversized prompts."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from typing import Any


def png(width: int, height: int, *, channels: int = 3, pixels: bool = True) -> bytes:
    """A PNG of black pixels, compressed row by row as it is built: tiny on the wire, huge decoded.

    Without `pixels` only the header is real (the image data is empty), as in a bomb that
    claims a size it never had to compress.
    """

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + payload))
        return struct.pack(">I", len(payload)) + kind + payload + crc

    color = {1: 0, 3: 2, 4: 6}[channels]  # grayscale, RGB, RGBA
    header = struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0)
    packer = zlib.compressobj(9)
    row = bytes(1 + width * channels)  # filter byte 0, then the row's samples
    data = b"".join(packer.compress(row) for _ in range(height if pixels else 0)) + packer.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def jpeg(width: int, height: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (width, height)).save(buffer, format="JPEG", quality=10)
    return buffer.getvalue()


def with_image(image: bytes, kind: str = "png", text: str = "What is on the screen?", **fields: Any) -> dict:
    url = f"data:image/{kind};base64," + base64.b64encode(image).decode("ascii")
    content = [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": text}]
    return {"messages": [{"role": "user", "content": content}], **fields}
