"""A model that replies from a script: for testing agents and pipelines without weights.

Each reply is a string, a function of the messages that returns one, or a list of strings:
the candidates of one call (for Best-of-N; the first is the text). The messages of every
call are kept in `calls`, so a test can check what the model was shown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from model.base import Completion, GenerationConfig, Message

__all__ = ["ScriptedModel"]

Reply = str | list[str] | Callable[[Sequence[Message]], str]


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
        texts = reply if isinstance(reply, list) else [reply(messages) if callable(reply) else reply]
        return Completion(text=texts[0], candidates=tuple(texts),
                          output_tokens=sum(len(text.split()) for text in texts))
