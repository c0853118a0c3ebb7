"""OpenAI's `logprobs` for a one-token reply: what a critic behind our server reads.

A request with `logprobs: true` and `top_logprobs: k` (at most 20) is answered for a greedy
one-token reply (`max_tokens: 1`, `n: 1`, no stream) by a model with `top_logprobs(messages,
k)` (model.internvl): the reply is the likeliest token, and its `logprobs.content` lists the
k likeliest first tokens. That is the shape vLLM returns, so model.remote reads both alike.
Longer replies with logprobs are refused with a 400 that says what to ask for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from model.base import GenerationConfig, Message, VisionLanguageModel
from model.server_limits import RequestRefused, prompt_counter

__all__ = ["MAX_TOP_LOGPROBS", "check_logprobs_request", "first_token"]

MAX_TOP_LOGPROBS = 20  # OpenAI's own bound


def check_logprobs_request(model: VisionLanguageModel, *, tokens: int | None, n: int, stream: bool,
                           temperature: float) -> None:
    """RequestRefused (400) unless this request for logprobs is one this server answers."""
    if not callable(getattr(model, "top_logprobs", None)):
        raise RequestRefused(f"{model.name} cannot return logprobs here: drop logprobs from the request")
    if tokens != 1 or n != 1 or stream or temperature != 0:
        raise RequestRefused("logprobs are returned for a greedy one-token reply: ask max_tokens=1, n=1, "
                             "temperature=0 and no stream")


def first_token(model: Any, messages: Sequence[Message], config: GenerationConfig, k: int,
                fit: Callable[[Sequence[Message], GenerationConfig], GenerationConfig],
                put: Callable[[Any], None]) -> tuple[dict[str, Any], dict[str, int]]:
    """On the model thread: the likeliest first token as a choice with its top `k` logprobs, and the usage."""
    fit(messages, config)
    count = prompt_counter(model)
    prompt_tokens = count(messages, config) if count is not None else 0
    top = model.top_logprobs(messages, max(k, 1))
    entries = [{"token": text, "logprob": lp, "bytes": list(text.encode("utf-8"))} for text, lp in top]
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": top[0][0]},
        "finish_reason": "length",
        "logprobs": {"content": [{**entries[0], "top_logprobs": entries[:k]}]},
    }
    return choice, {"prompt_tokens": prompt_tokens, "completion_tokens": 1, "total_tokens": prompt_tokens + 1}
