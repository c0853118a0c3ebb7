"""The remote backend: any server that speaks OpenAI's chat-completions API.

One class serves LMDeploy, vLLM, SGLang, llama.cpp's server and our own
`internvl-agent serve` (model/server.py). Images travel as base64 data URLs.

LMDeploy serves the original (remote-code) checkpoints, default port 23333:

    lmdeploy serve api_server OpenGVLab/InternVL3-8B --chat-template internvl2_5
    OpenAICompatibleModel("http://HOST:23333/v1", "OpenGVLab/InternVL3-8B")

vLLM serves the -hf checkpoints, default port 8000:

    vllm serve OpenGVLab/InternVL3-8B-hf
    OpenAICompatibleModel("http://HOST:8000/v1", "OpenGVLab/InternVL3-8B-hf")

The model name is the one the server was started with (`GET /v1/models` lists it;
`--served-model-name` changes it on vLLM, `--model-name` on LMDeploy). Pass `api_key`
only if the server was started with one (`--api-key`): the OPENAI_API_KEY of the
environment is never sent, so a real OpenAI key cannot leak to a self-hosted server.

Retries belong to the openai client: connection errors, timeouts, 408, 409, 429 and
5xx are retried `max_retries` times with exponential backoff (0.5 s, 1 s, 2 s, ...
with jitter); other 4xx answers are not, since sending them again cannot help.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from model.base import Completion, GenerationConfig
from model.messages import MessageLike, as_messages, to_openai
from model.prompting import keep_latest_images
from tools.errors import AgentError, ModelUnavailable

__all__ = ["OpenAICompatibleModel"]

_INSTALL_HINT = "pip install 'internvl-agent[remote]'"
_TOP_LOGPROBS = 20  # the most alternatives OpenAI's API lists per token


class OpenAICompatibleModel:
    """A VisionLanguageModel behind an OpenAI-compatible HTTP server."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        timeout_s: float = 60.0,
        max_retries: int = 2,
        image_format: str = "PNG",
    ) -> None:
        if image_format.upper() not in ("PNG", "JPEG"):
            raise ValueError(f"image_format must be PNG or JPEG, not {image_format!r}")
        try:
            import openai
        except ImportError as exc:
            raise ModelUnavailable(f"the remote backend needs the openai package: {_INSTALL_HINT}") from exc
        self.name = model
        self.base_url = base_url.rstrip("/")
        self.image_format = image_format.upper()
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        # Self-hosted servers ignore the key; the client insists on one, so send a placeholder.
        self._client = openai.OpenAI(
            base_url=self.base_url, api_key=api_key or "EMPTY", timeout=timeout_s, max_retries=max_retries
        )

    def __repr__(self) -> str:  # the api key stays out of reprs, and so out of logs and tracebacks
        return f"OpenAICompatibleModel({_display(self.base_url)!r}, {self.name!r})"

    def generate(self, messages: Sequence[MessageLike], config: GenerationConfig | None = None) -> Completion:
        """One request; with `config.n` > 1 every reply is in `candidates`, the first is `text`.

        `ttft_ms` stays 0: the whole reply arrives at once, so when its first token came is unknown.
        """
        config = config or GenerationConfig()
        request = self._request(messages, config)
        started = time.perf_counter()
        with self._translate():
            response = self._client.chat.completions.create(**request)
        total_ms = (time.perf_counter() - started) * 1000
        if not response.choices:
            raise AgentError(f"the model server at {_display(self.base_url)} returned no choices")
        choices = sorted(response.choices, key=lambda c: c.index)
        texts = [c.message.content or "" for c in choices]
        usage = response.usage
        extra: dict[str, object] = {"finish_reason": choices[0].finish_reason, "id": response.id}
        return Completion(
            text=texts[0],
            prompt_tokens=usage.prompt_tokens if usage else 0,
            output_tokens=usage.completion_tokens if usage else 0,
            total_ms=total_ms,
            extra=extra,
            candidates=tuple(texts),
        )

    def answer_logprobs(self, messages: Sequence[MessageLike], answers: Sequence[str]) -> dict[str, float]:
        """Each answer's log-probability as the reply's first token, from the server's `top_logprobs`.

        One greedy request for one token, asking for the top 20 alternatives (vLLM, SGLang and
        LMDeploy return them). A listed token counts for an answer when it is the answer, spaces
        aside; an answer with no listed token is less likely than all 20 and gets -inf.
        AgentError when the server returns no logprobs, or none of the answers is listed.
        """
        request = self._request(messages, GenerationConfig(max_new_tokens=1))
        request.update(logprobs=True, top_logprobs=_TOP_LOGPROBS)
        with self._translate():
            response = self._client.chat.completions.create(**request)
        url = _display(self.base_url)
        first = response.choices[0].logprobs if response.choices else None
        content = first.content if first is not None else None
        if not content:
            raise AgentError(
                f"the model server at {url} returned no logprobs for {self.name!r}: a critic needs a server "
                "that returns top_logprobs (vLLM, SGLang, LMDeploy), or a local model (InternVLModel)"
            )
        listed = [(entry.token.strip(), entry.logprob) for entry in content[0].top_logprobs or ()]
        scores = {a: _logsumexp([lp for token, lp in listed if token == a.strip()]) for a in answers}
        if all(score == float("-inf") for score in scores.values()):
            tokens = ", ".join(repr(token) for token, _ in listed[:8])
            raise AgentError(
                f"none of {list(answers)!r} is among the {len(listed)} likeliest first tokens the model "
                f"server at {url} listed ({tokens}, ...): ask the critic's question so that it answers them"
            )
        return scores

    def stream(
        self, messages: Sequence[MessageLike], config: GenerationConfig | None = None
    ) -> Iterator[str]:
        """The reply in pieces as the server sends them; joined, they are `generate(...).text`.

        Bad messages raise here, at the call; server errors raise while iterating.
        """
        request = self._request(messages, config or GenerationConfig())
        request.pop("n", None)  # one reply is streamed
        return self._pieces(request)

    def _pieces(self, request: dict[str, Any]) -> Iterator[str]:
        with self._translate():
            chunks = self._client.chat.completions.create(**request, stream=True)
            try:
                for chunk in chunks:
                    for choice in chunk.choices:
                        if choice.index == 0 and choice.delta.content:
                            yield choice.delta.content
            finally:
                chunks.close()  # a caller that stops early must not leave the connection open

    def _request(self, messages: Sequence[MessageLike], config: GenerationConfig) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": self.name,
            # The image budget is applied here, so dropped screenshots are never encoded or sent.
            "messages": to_openai(
                keep_latest_images(as_messages(messages), config.keep_images), image_format=self.image_format
            ),
            "max_tokens": config.max_new_tokens,
            "temperature": config.temperature,
            "top_p": config.top_p,
        }
        if config.seed is not None:
            request["seed"] = config.seed
        if config.n > 1:
            request["n"] = config.n
        return request

    @contextmanager
    def _translate(self) -> Iterator[None]:
        """openai's exceptions become ours here, at the border, each saying what to do."""
        import openai

        url = _display(self.base_url)
        tries = f"{self.max_retries + 1} tries"
        try:
            yield
        except openai.APITimeoutError as exc:
            raise ModelUnavailable(
                f"the model server at {url} did not answer within {self.timeout_s:g} s ({tries}): "
                "check that it is up and not overloaded, or raise timeout_s"
            ) from exc
        except openai.APIConnectionError as exc:
            raise ModelUnavailable(
                f"cannot reach the model server at {url} ({tries}): start the server or check --base-url"
            ) from exc
        except openai.APIStatusError as exc:
            status, message = exc.status_code, _server_message(exc)
            if status in (401, 403):
                raise ModelUnavailable(
                    f"the model server at {url} refused the API key (HTTP {status}: {message}): "
                    "pass the key the server was started with"
                ) from exc
            if status == 404:
                raise ModelUnavailable(
                    f"the model server at {url} answered 404 ({message}): check that --base-url ends "
                    f"in /v1 and that the server serves {self.name!r} (GET /v1/models lists its models)"
                ) from exc
            if status == 429 or status >= 500:
                raise ModelUnavailable(
                    f"the model server at {url} failed after {tries} (HTTP {status}): {message}"
                ) from exc
            raise AgentError(
                f"the model server at {url} rejected the request (HTTP {status}): {message}"
            ) from exc
        except openai.APIError as exc:  # an error event in the middle of a stream
            raise AgentError(f"the model server at {url} failed: {_server_message(exc)}") from exc
        except openai.OpenAIError as exc:
            raise AgentError(f"the openai client failed for {url}: {exc}") from exc


def _server_message(exc: Any) -> str:
    """The server's own words: OpenAI-style `{"error": {"message": ...}}`, or FastAPI's `detail`."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        for key in ("message", "detail"):
            if body.get(key):
                return str(body[key])
    elif isinstance(body, str) and body:
        return body[:500]
    return str(getattr(exc, "message", exc))


def _logsumexp(values: Sequence[float]) -> float:
    """log(sum(exp(v))) of a few log-probabilities; -inf for none."""
    if not values:
        return float("-inf")
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def _display(url: str) -> str:
    """The URL without any user:password@ part, fit for messages."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
