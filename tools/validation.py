"""pydantic validation errors -> one short line a model (or a script's author) can act on.

`format_validation_error` serves the parser (feedback to the model), the registry (a tool
called with bad arguments) and scripts (a bad step): "clicks must be at most 3" rather
than pydantic's multi-line report with its URLs and input echoes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError

__all__ = ["format_validation_error"]

_BOUNDS = {
    "less_than_equal": ("at most", "le"),
    "greater_than_equal": ("at least", "ge"),
    "less_than": ("less than", "lt"),
    "greater_than": ("greater than", "gt"),
}


def format_validation_error(
    exc: ValidationError, *, action: str | None = None, model: type[BaseModel] | None = None, limit: int = 3
) -> str:
    """A short, model-readable summary of a pydantic error ("clicks must be at most 3")."""
    errors = exc.errors(include_url=False, include_input=False)
    # An error whose location a deeper error extends is its echo ("keys: too short" after
    # "keys[0]: unknown key"); the deeper one says what to fix.
    locations = [tuple(error["loc"]) for error in errors]
    errors = [error for error, location in zip(errors, locations, strict=True) if not any(
        len(other) > len(location) and other[: len(location)] == location for other in locations
    )]
    parts: list[str] = []
    for error in errors[:limit]:
        location = list(error["loc"])
        if action is not None and location[:1] == [action]:
            location = location[1:]
        field, kind, context = _field_path(location) or "arguments", error["type"], error.get("ctx") or {}
        if kind == "missing":
            text = f"{field} is required"
        elif kind == "extra_forbidden":
            fields = model.model_fields if model else {}
            known = ", ".join(info.alias or name for name, info in fields.items() if name != "action")
            text = f"unknown field {str(location[-1] if location else field)[:40]!r}"
            text += f" (fields: {known})" if known else ""
        elif kind in _BOUNDS:
            words, key = _BOUNDS[kind]
            text = f"{field} must be {words} {context.get(key)}"
        elif kind == "value_error":
            message = error["msg"].removeprefix("Value error, ")
            text = message if field == "arguments" else f"{field}: {message}"
        else:
            text = f"{field}: {error['msg']}"
        parts.append(text[:200])
    if len(errors) > limit:
        parts.append(f"and {len(errors) - limit} more")
    return "; ".join(parts)


def _field_path(parts: Iterable[Any]) -> str:
    """A pydantic location as the model would write it: `start[1]`, `keys[0]`, `filter.name`."""
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif isinstance(part, str) and re.fullmatch(r"\w+", part):
            path += f".{part}" if path else part
        # other parts are pydantic's union-member labels ("constrained-str"): noise to a model
    return path
