"""The model contract: messages in, a completion out.

A backend is one method, `generate(messages, config)`. Messages hold text and PIL
images in order; each backend turns them into its own prompt format.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["Completion", "GenerationConfig", "LogprobModel", "Message", "Role", "VisionLanguageModel"]

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    """One chat turn. `content` is text and images, in the order the model sees them."""

    role: Role
    content: tuple[str | Image, ...]

    @classmethod
    def system(cls, text: str) -> Message:
        return cls("system", (text,))

    @classmethod
    def user(cls, *parts: str | Image) -> Message:
        return cls("user", tuple(parts))

    @classmethod
    def assistant(cls, text: str) -> Message:
        return cls("assistant", (text,))

    @property
    def text(self) -> str:
        return "".join(p for p in self.content if isinstance(p, str))

    @property
    def images(self) -> list[Image]:
        return [p for p in self.content if not isinstance(p, str)]


@dataclass(frozen=True)
class GenerationConfig:
    """Decoding settings. Greedy by default: agents want repeatable actions."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    # Candidates to return. Sampled ones differ; greedy ones are copies of one reply.
    n: int = 1
    # The most images the prompt keeps; older ones become a short text placeholder. None keeps all.
    keep_images: int | None = None
    # Asked between generated tokens by a backend that can stop early (model.internvl): once it
    # returns True, decoding ends and the reply so far is returned. The server uses it to stop
    # work whose client left or whose time ran out. A backend that cannot stop may ignore it.
    should_stop: Callable[[], bool] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, not {self.max_new_tokens}")
        if not self.temperature >= 0:  # NaN fails too
            raise ValueError(f"temperature must be 0 (greedy) or more, not {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], not {self.top_p}")
        if self.seed is not None and not 0 <= self.seed < 2**64:
            raise ValueError(f"seed must be None or in [0, 2**64), not {self.seed}")
        if self.n < 1:
            raise ValueError(f"n must be at least 1, not {self.n}")
        if self.keep_images is not None and self.keep_images < 0:
            raise ValueError(f"keep_images must be None (keep all) or at least 0, not {self.keep_images}")


@dataclass(frozen=True)
class Completion:
    """The model's reply and what it cost.

    `candidates` holds every reply when `GenerationConfig.n` > 1; the first is `text`, and a
    completion made without any lists `(text,)`. `output_tokens` counts the tokens of all of
    them. `ttft_ms` is the time from the call to the first generated token.
    """

    text: str
    prompt_tokens: int = 0
    image_tokens: int = 0
    output_tokens: int = 0
    total_ms: float = 0.0
    extra: dict[str, object] = field(default_factory=dict)
    ttft_ms: float = 0.0
    candidates: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.candidates:
            object.__setattr__(self, "candidates", (self.text,))
        elif self.candidates[0] != self.text:
            raise ValueError("a completion's first candidate must be its text")


@runtime_checkable
class VisionLanguageModel(Protocol):
    """A backend: local transformers, a remote server, or a scripted test double."""

    name: str

    def generate(
        self, messages: Sequence[Message], config: GenerationConfig | None = None
    ) -> Completion: ...


@runtime_checkable
class LogprobModel(VisionLanguageModel, Protocol):
    """A backend that can also say how likely each of a few answers is as its reply's start.

    `answer_logprobs(messages, ["Yes", "No"])` gives each answer's next-token log-probability
    after the prompt (the assistant's turn opened): what a critic reads instead of parsing prose.
    The local InternVL backend computes it in one forward pass; the remote one asks a server
    that returns OpenAI's `top_logprobs`.
    """

    def answer_logprobs(self, messages: Sequence[Message], answers: Sequence[str]) -> dict[str, float]: ...
