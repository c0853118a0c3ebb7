"""Model text -> the list of actions in one reply: several `<tool_call>` blocks, or a JSON
list of calls; any other reply is read as one action, as `agent.parsing` reads it.

It reuses the parser's reading (`agent.parse_reply`: linear in the reply's length, within
budgets) and its validation, so each call is checked exactly as `parse_action` checks one.
With `image_size=None` (an agent with no screen) only the tools, finish and fail can be
called. The registry's `finish` may be a typed one (`agent.outputs`): its answer is
validated against the output type, and a wrong field comes back as a ParseError for the model.
"""

from __future__ import annotations

import re

from pydantic import BaseModel

from agent.parse_reply import ReadLimit, Reply
from agent.parsing import (
    _GUI_MODELS,
    _SHORT,
    _TOOL_CALL_RE,
    _Candidate,
    _feedback,
    _first_candidate,
    _payload,
    _Space,
    _validate,
)
from tools.actions import BaseAction, Fail
from tools.registry import ToolRegistry

__all__ = ["MAX_CALLS_PER_STEP", "parse_actions"]

MAX_CALLS_PER_STEP = 8
_LIST_RE = re.compile(r"\[\s*\{")
_NEXT_RE = re.compile(r"\s*(,)?\s*")
_BAD_TOOL_CALL = '<tool_call> must hold {"name": ..., "arguments": {...}}'
_NO_SCREEN = (1, 1)  # finish and fail hold no points: the size is never used


def parse_actions(text: str, *, image_size: tuple[int, int] | None, registry: ToolRegistry | None = None,
                  limit: int = MAX_CALLS_PER_STEP) -> list[BaseAction]:
    """Every action in the reply, in order (at least one); ParseError with feedback otherwise."""
    space = _space(registry, screen=image_size is not None)
    size = image_size if image_size is not None else _NO_SCREEN
    reply = Reply(text)
    try:
        candidates = _tool_calls(reply) or _json_list(reply)
        if not candidates:
            candidate = _first_candidate(reply, space)
            candidates = [candidate] if candidate is not None else []
    except ReadLimit:
        raise _feedback("too much to read: the reply nests or repeats itself", space, note=_SHORT) from None
    if not candidates:
        cut = f"the reply was cut at {len(reply.text)} characters: {_SHORT}" if reply.cut else None
        raise _feedback("no action found", space, note=cut)
    if len(candidates) > limit:
        raise _feedback(f"{len(candidates)} calls in one reply; at most {limit}", space)
    actions = []
    for candidate in candidates:
        if candidate.error is not None or candidate.payload is None:
            raise _feedback(candidate.error or "no action found", space)
        actions.append(_validate(candidate.payload, space, size))
    return actions


def _space(registry: ToolRegistry | None, *, screen: bool) -> _Space:
    registry = registry if registry is not None else ToolRegistry()
    tools: dict[str, type[BaseModel]] = {name: registry.model_for(name) for name in registry.names}
    if screen:
        models = {**_GUI_MODELS, "finish": registry.finish, **tools}
    else:
        models = {"finish": registry.finish, "fail": Fail, **tools}
    return _Space(registry.union_adapter(gui=screen), models)


def _tool_calls(reply: Reply) -> list[_Candidate]:
    """One candidate per `<tool_call>` block (the closing tag optional), in order."""
    candidates = []
    for match in _TOOL_CALL_RE.finditer(reply.text):
        start = reply.text.find("{", match.end(), match.end() + 200)
        value = reply.read_object(start) if start >= 0 else None
        candidate = _payload(value, reply) if value is not None else None
        candidates.append(candidate or _Candidate(error=_BAD_TOOL_CALL))
    return candidates


def _json_list(reply: Reply) -> list[_Candidate]:
    """The calls of the first JSON list of objects that all name an action, or []."""
    match = _LIST_RE.search(reply.text)
    if match is None or reply.text.find("{") != match.end() - 1:  # a list inside one call's arguments
        return []
    text, position, candidates = reply.text, match.end() - 1, []
    while True:
        if text[position:position + 1] != "{" or (end := reply.closing(position)) is None:
            return []
        candidate = _payload(reply.read_object(position), reply)
        if candidate is None:
            return []
        candidates.append(candidate)
        separator = _NEXT_RE.match(text, end)
        assert separator is not None  # the pattern matches the empty string
        if separator.group(1) is None:
            return candidates if text[separator.end():separator.end() + 1] == "]" else []
        position = separator.end()


