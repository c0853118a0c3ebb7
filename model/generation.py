"""Decoding helpers for the local backend: batches, timing, streaming and stopping.

The local backend decodes with transformers' own `generate`; these pieces sit around
it. A batch is left-padded (transformers derives each row's position ids from the
attention mask, so a padded row sees the positions it would see alone). The first
generated token is timed through generate's streamer hook, and a stream is generate
running in a worker thread that hands its tokens over a queue. torch and transformers
are imported inside the functions.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from model.prompting import Prompt

__all__ = ["TextPieces", "TokenClock", "cancel_criteria", "left_padded", "run_streaming"]


def left_padded(prompts: Sequence[Prompt], *, pad_id: int, device: Any, dtype: Any) -> dict[str, Any]:
    """generate's inputs for a batch: ids padded on the left, the mask, and every image's tiles in order."""
    import numpy as np
    import torch

    width = max(len(p.ids) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt.ids) :] = torch.tensor(prompt.ids, dtype=torch.long)
        mask[row, width - len(prompt.ids) :] = 1
    inputs: dict[str, Any] = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
    # The model fills the <IMG_CONTEXT> positions row by row, so the tiles go in the same order.
    tiles = [p.pixel_values for p in prompts if p.pixel_values is not None]
    if tiles:
        pixels = tiles[0] if len(tiles) == 1 else np.concatenate(tiles)
        inputs["pixel_values"] = torch.from_numpy(pixels).to(device=device, dtype=dtype)
    return inputs


class TokenClock:
    """A generate streamer that notes when the first new token came, and passes tokens on.

    generate calls `put` once with the prompt (a 2-D batch of ids), then once per step with
    one new token per row, and `end` when it is done.
    """

    def __init__(self, on_tokens: Callable[[list[int]], None] | None = None) -> None:
        self.first_token_at: float | None = None
        self._on_tokens = on_tokens

    def put(self, value: Any) -> None:
        if value.dim() > 1:  # the prompt
            return
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        if self._on_tokens is not None:
            self._on_tokens(value.tolist())

    def end(self) -> None:
        pass


def cancel_criteria(*stops: Callable[[], bool]) -> Any:
    """A stopping criterion that ends every row once any of `stops` returns True.

    Each is asked once per generated token: a reader that left (`event.is_set`), or the
    caller's `GenerationConfig.should_stop`.
    """
    import torch
    from transformers import StoppingCriteria

    class Cancelled(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            flag = any(stop() for stop in stops)
            return torch.full((input_ids.shape[0],), flag, dtype=torch.bool, device=input_ids.device)

    return Cancelled()


class TextPieces:
    """Turns token ids, one at a time, into text pieces whose concatenation is `decode(all ids)`.

    A piece is released only while the decoded text grows by appending, and never ends
    inside a character whose UTF-8 bytes are split over several tokens. Each step decodes
    a short window of the newest tokens, not the whole reply (as vLLM and TGI detokenize):
    the window starts one released piece back, so a token decodes with its left context.
    """

    def __init__(self, decode: Callable[[list[int]], str]) -> None:
        self._decode = decode
        self._ids: list[int] = []
        self._prefix = 0  # the window starts here
        self._read = 0  # tokens before this one are released

    def push(self, token: int) -> str:
        self._ids.append(token)
        return self._advance(final=False)

    def finish(self) -> str:
        """Whatever is left once the last token is in."""
        return self._advance(final=True)

    def _advance(self, *, final: bool) -> str:
        released = self._decode(self._ids[self._prefix : self._read])
        text = self._decode(self._ids[self._prefix :])
        if len(text) <= len(released) or not text.startswith(released):
            return ""
        if text.endswith("\ufffd") and not final:
            return ""
        self._prefix, self._read = self._read, len(self._ids)
        return text[len(released) :]


_DONE = object()


Work = Callable[[Callable[[list[int]], None], threading.Event], object]


def run_streaming(work: Work) -> Iterator[list[int]]:
    """Run `work(on_tokens, cancelled)` in a thread and yield each list of tokens it passes to `on_tokens`.

    An exception in the thread is raised here, in the reader. A reader that stops early
    (break, close, or an error of its own) sets `cancelled` and waits for the thread to end.
    """
    tokens: queue.Queue[object] = queue.Queue()
    cancelled = threading.Event()
    failure: list[BaseException] = []

    def target() -> None:
        try:
            work(tokens.put, cancelled)
        except BaseException as exc:  # handed to the reader, which re-raises it
            failure.append(exc)
        finally:
            tokens.put(_DONE)

    thread = threading.Thread(target=target, name="internvl-stream", daemon=True)
    thread.start()
    try:
        while (item := tokens.get()) is not _DONE:
            yield item  # type: ignore[misc]
        if failure:
            raise failure[0]
    finally:
        cancelled.set()
        thread.join()
