"""The model contract: messages in, a completion out.

A backend is one method, `generate(messages, config)`. Messages hold text and PIL
images in order; each backend turns them into its own prompt format.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["Completion", "GenerationConfig", "Message", "Role", "VisionLanguageModel"]

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


@dataclass(frozen=True)
class Completion:
    """The model's reply and what it cost."""

    text: str
    prompt_tokens: int = 0
    image_tokens: int = 0
    output_tokens: int = 0
    total_ms: float = 0.0
    extra: dict[str, object] = field(default_factory=dict)


@runtime_checkable
class VisionLanguageModel(Protocol):
    """A backend: local transformers, a remote server, or a scripted test double."""

    name: str

    def generate(
        self, messages: Sequence[Message], config: GenerationConfig | None = None
    ) -> Completion: ...
