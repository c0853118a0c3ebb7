"""What a tool returned, as the model reads it: text, and the images that go with it.

A tool may return text or data (shown as text: JSON for data), a PIL image, PNG bytes, or
a list that mixes text and images (a caption and a chart). The images travel beside the
text in a `ToolResult`, the `ActionResult` of a tool call: they reach the model in its next
turn, and the run saves them beside the step. They are never part of the result's JSON.
"""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from tools.errors import AgentError
from tools.executor import ActionResult

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["PNG_SIGNATURE", "ToolResult", "images_of", "split_output"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ToolResult(ActionResult):
    """A tool call's result, with the images it returned (in order; not in the JSON)."""

    images: tuple[Any, ...] = Field(default=(), exclude=True, repr=False)


def images_of(result: ActionResult) -> tuple[Image, ...]:
    """The images a result carries: a tool's, or none."""
    return result.images if isinstance(result, ToolResult) else ()


def split_output(value: Any) -> tuple[str | None, tuple[Image, ...]]:
    """A tool's return value as (the text the model reads, the images it sees). A list with an
    image in it is read part by part: its text parts joined by lines, its images in order."""
    if _is_image(value) or _is_png(value):
        return None, (_image(value),)
    if isinstance(value, list | tuple) and any(_is_image(item) or _is_png(item) for item in value):
        texts: list[str] = []
        images: list[Image] = []
        for item in value:
            if _is_image(item) or _is_png(item):
                images.append(_image(item))
            elif (text := as_text(item)) is not None:
                texts.append(text)
        return "\n".join(texts) or None, tuple(images)
    return as_text(value), ()


def as_text(value: Any) -> str | None:
    """A tool's return value as the text the model reads: JSON for data, str() for the rest."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    if isinstance(value, dict | list | tuple):
        try:
            return json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):  # circular or non-string keys: fall back to str()
            pass
    return str(value)


def _is_image(value: Any) -> bool:
    # PIL is imported only by whoever made the image: a tool that returns one has it loaded.
    image_module = type(value).__module__
    return image_module.startswith("PIL.") and hasattr(value, "save") and hasattr(value, "size")


def _is_png(value: Any) -> bool:
    return isinstance(value, bytes | bytearray | memoryview) and bytes(value[:8]) == PNG_SIGNATURE


def _image(value: Any) -> Image:
    """The image itself, PNG bytes decoded (and loaded, so a broken one fails here, in the call)."""
    if not _is_png(value):
        return value  # type: ignore[no-any-return]
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    try:
        image = PILImage.open(io.BytesIO(bytes(value)))
        image.load()
    except (OSError, UnidentifiedImageError) as exc:
        raise AgentError(f"the tool returned PNG bytes that do not decode ({exc}): return a whole PNG "
                         "or a PIL image") from None
    return image
