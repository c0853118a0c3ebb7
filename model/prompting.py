"""InternVL3's prompt, as token ids: ChatML with image spans.

We build the ids ourselves rather than through InternVLProcessor: the processor would
re-tile every image with the slower reference image processor and re-tokenize
thousands of `<IMG_CONTEXT>` strings. The ids are the same as the processor's for the
checkpoint's chat template (tests/integration/test_internvl_model.py checks it):

    <|im_start|>{role}\\n{content}<|im_end|>\\n ... <|im_start|>assistant\\n

where each image in `content` becomes `<img>` + 256*n `<IMG_CONTEXT>` + `</img>` + "\\n"
(n tiles, thumbnail included).

Two rules of InternVL's reference chat are applied here:

- A message with several images labels them in order, as the reference does for
  multi-image questions (`Image-1: <image>\\nImage-2: <image>\\n...`): each image is
  preceded by `Image-{k}: `, k counting from 1 within the message.
- An image budget (`GenerationConfig.keep_images`) drops the oldest images of the
  conversation first; each becomes the text `[earlier screenshot omitted]` on its line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from model.base import Message

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["OMITTED_IMAGE", "Prompt", "PromptBuilder", "image_label", "keep_latest_images"]

OMITTED_IMAGE = "[earlier screenshot omitted]"

# Control tokens: text may never produce them, or a web page could end a turn or fake an image.
# The grounding tags (<ref>, <box>, <quad>) are left alone: prompts and answers use them.
_CONTROL_TOKENS = (
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<img>", "</img>", "<IMG_CONTEXT>", "<video>",
)


@dataclass(frozen=True)
class Prompt:
    """Token ids, the stacked image tiles (or None), and how many of the ids stand for images.

    `prefix_len` counts the ids of the leading system turns (through their closing newline),
    cut before the first image: the part that repeats at every step of a run.
    """

    ids: list[int]
    pixel_values: np.ndarray | None
    image_tokens: int
    prefix_len: int = 0

    @property
    def num_tiles(self) -> int:
        return 0 if self.pixel_values is None else int(self.pixel_values.shape[0])


def image_label(k: int) -> str:
    """The text before the k-th image (from 1) of a message that holds several."""
    return f"Image-{k}: "


def keep_latest_images(messages: Sequence[Message], keep: int | None) -> list[Message]:
    """The messages with all but the `keep` newest images replaced by OMITTED_IMAGE (None: all kept)."""
    total = sum(len(m.images) for m in messages)
    drop = 0 if keep is None else max(0, total - keep)
    out: list[Message] = []
    for message in messages:
        if drop == 0 or not message.images:
            out.append(message)
            continue
        parts: list[str | Image] = []
        for part in message.content:
            if not isinstance(part, str) and drop > 0:
                part = OMITTED_IMAGE + "\n"  # the image's own line, as the template gives it
                drop -= 1
            parts.append(part)
        out.append(Message(message.role, tuple(parts)))
    return out


class PromptBuilder:
    """Turns messages into a Prompt for one tokenizer; `tile` turns an image into its tiles."""

    def __init__(self, tokenizer: Any, *, tokens_per_tile: int, tile: Callable[[Image], np.ndarray]) -> None:
        self._tokenizer = tokenizer
        self.tokens_per_tile = tokens_per_tile
        self._tile = tile

        def token_id(attribute: str, default: str) -> int:
            token = getattr(tokenizer, attribute, None) or default
            return int(tokenizer.convert_tokens_to_ids(token))

        self.start_id = token_id("start_image_token", "<img>")
        self.end_id = token_id("end_image_token", "</img>")
        self.context_id = token_id("context_image_token", "<IMG_CONTEXT>")
        self.stop_id = self.token("<|im_end|>")
        self._turn_id = self.token("<|im_start|>")
        # Whatever the tokenizer puts before any text (a BOS for some), as the processor would.
        self._prefix_ids: list[int] = list(tokenizer("")["input_ids"])
        self._control = re.compile("|".join(re.escape(t) for t in _CONTROL_TOKENS))

    def token(self, token: str) -> int:
        return int(self._tokenizer.convert_tokens_to_ids(token))

    def build(self, messages: Sequence[Message], *, keep_images: int | None = None) -> Prompt:
        """The prompt for `messages`, ending with the assistant's turn opened."""
        ids = list(self._prefix_ids)
        tiles: list[np.ndarray] = []
        image_tokens = 0
        text = ""  # text is tokenized in runs between special tokens, as the tokenizer itself would
        prefix_len: int | None = None
        first_image: int | None = None

        def flush() -> None:
            nonlocal text
            ids.extend(self.encode(text))
            text = ""

        for message in keep_latest_images(messages, keep_images):
            flush()
            if prefix_len is None and message.role != "system":
                prefix_len = len(ids)
            ids.append(self._turn_id)
            text = f"{message.role}\n"
            labelled = len(message.images) > 1
            k = 0
            for part in message.content:
                if isinstance(part, str):
                    text += part
                    continue
                k += 1
                if labelled:
                    text += image_label(k)
                flush()
                first_image = len(ids) if first_image is None else first_image
                image = self._tile(part)
                tiles.append(image)
                span = [self.start_id, *[self.context_id] * (self.tokens_per_tile * len(image)), self.end_id]
                ids.extend(span)
                image_tokens += len(span)
                text = "\n"
            flush()
            ids.append(self.stop_id)
            text = "\n"
        flush()
        if prefix_len is None:
            prefix_len = len(ids)
        if first_image is not None:
            prefix_len = min(prefix_len, first_image)
        ids.append(self._turn_id)
        ids.extend(self.encode("assistant\n"))
        # One image's tiles as they are: a copy would page-fault in another 30 MB a step.
        pixels = (tiles[0] if len(tiles) == 1 else np.concatenate(tiles)) if tiles else None
        return Prompt(ids, pixels, image_tokens, prefix_len)

    def encode(self, text: str) -> list[int]:
        """Ids of plain text; a control token written in the text is spelled out, not obeyed."""
        if not text:
            return []
        out: list[int] = []
        position = 0
        for match in self._control.finditer(text):
            out += self._tokenizer(text[position : match.start()], add_special_tokens=False)["input_ids"]
            out += self._tokenizer(match.group(), add_special_tokens=False, split_special_tokens=True)[
                "input_ids"
            ]
            position = match.end()
        out += self._tokenizer(text[position:], add_special_tokens=False)["input_ids"]
        return out
