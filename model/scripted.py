"""A model that replies from a script: for testing agents and pipelines without weights.

Each reply is a string, or a function of the messages that returns one. The messages of
every call are kept in `calls`, so a test can check what the model was shown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from model.base import Completion, GenerationConfig, Message

__all__ = ["ScriptedModel"]

Reply = str | Callable[[Sequence[Message]], str]


class ScriptedModel:
    name = "scripted"

    def __init__(self, replies: Iterable[Reply]) -> None:
        self._replies = list(replies)
        self.calls: list[list[Message]] = []

    def generate(self, messages: Sequence[Message], config: GenerationConfig | None = None) -> Completion:
        if len(self.calls) >= len(self._replies):
            raise IndexError(f"the script has {len(self._replies)} replies; call {len(self.calls) + 1} came")
        reply = self._replies[len(self.calls)]
        self.calls.append(list(messages))
        text = reply(messages) if callable(reply) else reply
        return Completion(text=text, output_tokens=len(text.split()))
