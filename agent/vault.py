"""Secrets the agent types without the model ever seeing them.

The user gives `Agent(secrets={"password": ...})`. The model is told only the names, and
types `<secret>password</secret>`; the value replaces the placeholder just before the
executor types it. The recorded action keeps the placeholder. Every value, in every
spelling (agent/redaction.py), is redacted from whatever leaves the agent: shown to the
model as its placeholder (`redactor()`), written to disk and to the logs as [secret].
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from agent.redaction import Redactor
from tools.actions import BaseAction, Type
from tools.errors import AgentError

__all__ = ["PLACEHOLDER", "Secrets", "UnknownSecret", "literal_secret"]

# Shorter values are refused, and shorter text marked secret is typed but not redacted:
# replacing "n" or "ok" everywhere would garble every record after it, and hides nothing.
MIN_SECRET_LENGTH = MIN_LITERAL_SECRET = 4
_NAME = r"[A-Za-z_][A-Za-z0-9_.-]{0,63}"
PLACEHOLDER = re.compile(rf"<secret>\s*({_NAME})\s*</secret>")


class UnknownSecret(LookupError):
    """The model asked for a secret that it was not given: what to tell it."""


class Secrets:
    """Named secret values, filled into typed text by name."""

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self._values = dict(values or {})
        for name, value in self._values.items():
            if not re.fullmatch(_NAME, name):
                raise AgentError(f"secret name {name!r}: a letter or _ first, then letters, digits, _ . or -")
            if not isinstance(value, str) or not value:
                raise AgentError(f"secret {name!r} has no value: give it a non-empty string")
            if len(value) < MIN_SECRET_LENGTH:
                # Redacting "x" or "ok" everywhere would garble every record (keys included).
                raise AgentError(f"secret {name!r} is shorter than {MIN_SECRET_LENGTH} characters, too short "
                                 "to keep out of the records without garbling them: use a longer value")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._values)

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(self._values.values())

    def redactor(self) -> Redactor:
        """What shows the model each value, in any spelling, as its placeholder instead."""
        return Redactor(self._values, placeholders=True)

    def fill(self, text: str) -> str:
        """`text` with every placeholder replaced by its value; UnknownSecret names the known ones."""

        def value_of(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in self._values:
                known = ", ".join(self._values) or "none"
                raise UnknownSecret(f"there is no secret named {name!r} (the secrets are: {known})")
            return self._values[name]

        return PLACEHOLDER.sub(value_of, text)

    def fill_action(self, action: BaseAction) -> BaseAction:
        """`action` as the executor must run it: a `type` whose text holds placeholders gets
        their values (and secret=True); anything else comes back as it is."""
        if isinstance(action, Type) and PLACEHOLDER.search(action.text):
            return action.model_copy(update={"text": self.fill(action.text), "secret": True})
        return action

    def __repr__(self) -> str:  # never the values: a repr ends up in logs and tracebacks
        return f"Secrets(names={list(self._values)})"


def literal_secret(action: BaseAction) -> str | None:
    """The text of a `type` marked secret that holds no placeholder (one from the goal, or a
    script's): a value to redact from then on."""
    if isinstance(action, Type) and action.secret and not PLACEHOLDER.search(action.text):
        return action.text if len(action.text) >= MIN_LITERAL_SECRET else None
    return None
