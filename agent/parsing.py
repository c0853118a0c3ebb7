"""Model text -> one validated action. A ParseError's message is written for the model.

Formats, most preferred first (prose and thoughts around the action are ignored):

1. `<tool_call>{"name": "click", "arguments": {"x": 500, "y": 300}}</tool_call>`
2. a JSON object, bare or fenced, `{"name": ..., "arguments": {...}}` or `{"action": "click", ...}`
3. a call such as `click(x=500, y=300)`, read with `ast`; only literal values are accepted
4. InternVL grounding, `<ref>..</ref><box>[[x1, y1, x2, y2]]</box>` or a bare `[[...]]`:
   a left click at the box centre

The first format that appears decides: a malformed `<tool_call>` is reported to the model
rather than silently replaced by some other match further down. Points arrive in
InternVL's 0..1000 space and leave as pixels of the screenshot (`image_size`), converted
by `tools.coordinates`, the one owner of that rule.

Only the start of a reply is read (20,000 characters, of them 6,000 brackets and quotes:
`agent.parse_reply`), in time linear in its length: brackets are matched for every start
point in one pass (`agent.parse_brackets`), and what `json` and `ast` may be handed is
budgeted. When a longer reply yields no action, the feedback says where it was cut and
asks for one short action.
"""

from __future__ import annotations

import ast
import difflib
import functools
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from agent.parse_reply import READ_ERRORS, CodeLimit, ReadLimit, Reply
from tools.actions import ACTION_ADAPTER, GUI_ACTION_CLASSES, BaseAction
from tools.coordinates import BOX_RE, MODEL_SPACE_MAX, in_model_space, short_repr, to_pixels
from tools.errors import ParseError
from tools.registry import ToolRegistry
from tools.validation import format_validation_error

__all__ = ["EXAMPLE", "ParseError", "parse_action"]

_MAX_TRIES = 48  # candidate positions tried per format: each may be decoded, and decoding costs
EXAMPLE = '<tool_call>{"name": "click", "arguments": {"x": 500, "y": 300}}</tool_call>'
_SHORT = "answer with one short action"  # asked of a reply that was cut or too much to read

_GUI_MODELS: dict[str, type[BaseModel]] = {
    cls.model_fields["action"].default: cls for cls in GUI_ACTION_CLASSES
}
_POINT_FIELDS = ("x", "y")
_END_FIELDS = ("start", "end")
# Natural positional forms, e.g. click(512, 300), type("hi"), wait(2).
_POSITIONAL: dict[str, tuple[str, ...]] = {
    "click": ("x", "y"),
    "move": ("x", "y"),
    "drag": ("start", "end"),
    "type": ("text",),
    "navigate": ("url",),
    "finish": ("answer",),
    "fail": ("reason",),
    "wait": ("seconds",),
}

_TOOL_CALL_RE = re.compile(r"<tool_call>", re.IGNORECASE)
_OBJECT_RE = re.compile(r"\{\s*[\"']")
_NAME = r"[A-Za-z_]\w{0,63}"
_CALL_RE = re.compile(rf"(?<![\w-])({_NAME})\(")


@functools.lru_cache(maxsize=64)
def _known_call_re(names: frozenset[str]) -> re.Pattern[str]:
    """`_CALL_RE` for these names only, so that a reply full of other calls is passed over in C."""
    spelled = sorted((name for name in names if re.fullmatch(_NAME, name)), key=len, reverse=True)
    return re.compile(rf"(?<![\w-])({'|'.join(map(re.escape, spelled)) or '(?!)'})\(")


@dataclass(frozen=True)
class _Candidate:
    """One action the model seems to have written: a flat payload, or why it is unreadable."""

    payload: dict[Any, Any] | None = None
    error: str | None = None


@dataclass(frozen=True)
class _Space:
    """What the parse can produce: action names, their models, and the validating adapter."""

    adapter: TypeAdapter[Any]
    models: dict[str, type[BaseModel]]

    @classmethod
    def of(cls, registry: ToolRegistry | None) -> _Space:
        if registry is None or not len(registry):
            return cls(ACTION_ADAPTER, _GUI_MODELS)
        tools = {name: registry.model_for(name) for name in registry.names}
        return cls(registry.union_adapter(), {**_GUI_MODELS, **tools})


def parse_action(
    text: str, *, image_size: tuple[int, int], registry: ToolRegistry | None = None
) -> BaseAction:
    """Read one action from model output; raise ParseError with feedback for the model.

    `image_size` is (width, height) of the screenshot the model saw: GUI points are
    converted to its pixels. Tool actions from `registry` are validated but not converted.
    """
    width, height = image_size
    if not all(isinstance(side, int) and side >= 1 for side in (width, height)):
        raise ValueError(f"image_size must be two positive ints (width, height), got {image_size!r}")
    space = _Space.of(registry)
    reply = Reply(text)
    try:
        candidate = _first_candidate(reply, space)
    except ReadLimit:
        raise _feedback("too much to read: the reply nests or repeats itself", space, note=_SHORT) from None
    if candidate is None or candidate.error is not None or candidate.payload is None:
        problem = (candidate.error if candidate else None) or "no action found"
        cut = f"the reply was cut at {len(reply.text)} characters: {_SHORT}" if reply.cut else None
        raise _feedback(problem, space, note=cut)
    return _validate(candidate.payload, space, (width, height))


# -- messages -------------------------------------------------------------------------------


def _feedback(problem: str, space: _Space, *, note: str | None = None) -> ParseError:
    """`problem` (and `note`, kept whole), the valid action names and an example."""
    names = ", ".join(sorted(space.models))
    if len(names) > 220:
        names = names[:217].rsplit(",", 1)[0] + ", ..."
    note = f"; {note}" if note else ""
    room = 240 - len(note)
    problem = problem if len(problem) <= room else problem[: room - 3] + "..."
    problem = problem.rstrip(".")
    return ParseError(f"{problem}{note}. Valid actions: {names}. Write one action, e.g. {EXAMPLE}")


# -- finding candidates ----------------------------------------------------------------------


def _first_candidate(reply: Reply, space: _Space) -> _Candidate | None:
    """The action in the first format that appears, most preferred format first.

    An unknown call such as `tap(1, 2)` is looked for last, only so that it gets
    "unknown action 'tap'" instead of silence.
    """
    return (
        _find_tool_call(reply)
        or _find_json_object(reply)
        or _find_call(reply, space, known=True)
        or _find_box(reply.text)
        or _find_call(reply, space, known=False)
    )


def _find_tool_call(reply: Reply) -> _Candidate | None:
    """The payload of the first `<tool_call>`, or why it is unreadable; None without one."""
    match = _TOOL_CALL_RE.search(reply.text)
    if match is None:
        return None
    # The closing tag is optional: generation often stops right before it.
    start = reply.text.find("{", match.end(), match.end() + 200)
    value = reply.read_object(start) if start >= 0 else None
    candidate = _payload(value, reply) if value is not None else None
    return candidate or _Candidate(error='<tool_call> must hold {"name": ..., "arguments": {...}}')


def _find_json_object(reply: Reply) -> _Candidate | None:
    """The first JSON object that names an action (or names one badly), or None."""
    for tries, match in enumerate(_OBJECT_RE.finditer(reply.text)):
        if tries >= _MAX_TRIES:
            return None
        value = reply.read_object(match.start())
        candidate = _payload(value, reply) if value is not None else None
        if candidate is not None:
            return candidate
    return None


def _payload(value: Any, reply: Reply) -> _Candidate | None:
    """Flatten `{"name", "arguments"}` or `{"action", ...}` into `{"action": name, **args}`."""
    if not isinstance(value, dict):
        return None
    action, nested = value.get("action"), "arguments" in value or "parameters" in value
    if isinstance(action, str) and not nested:
        return _Candidate(payload=dict(value))
    if isinstance(action, str):  # {"action": "click", "arguments": {...}}
        name: Any = action
    elif "name" in value:
        name = value["name"]
    else:
        return _Candidate(error="'action' must be the action name as a string") if "action" in value else None
    if not isinstance(name, str):
        return _Candidate(error="'name' must be the action name as a string")
    if nested:
        args = value.get("arguments", value.get("parameters"))
    else:  # {"name": "click", "x": 1, "y": 2}
        args = {key: argument for key, argument in value.items() if key != "name"}
    if isinstance(args, str):  # OpenAI sends arguments as a JSON string
        try:
            args = reply.loads(args) if args.strip() else {}
        except READ_ERRORS:
            return _Candidate(error=f"{short_repr(name)}: 'arguments' is not valid JSON")
    if args is None:
        args = {}
    if not isinstance(args, dict):
        return _Candidate(error=f"{short_repr(name)}: 'arguments' must be an object")
    if args.get("action", name) != name:
        return _Candidate(error=f"{short_repr(name)}: 'arguments' must not name another action")
    return _Candidate(payload={**args, "action": name})


def _find_call(reply: Reply, space: _Space, *, known: bool) -> _Candidate | None:
    """The first call `name(...)` of a known (or, with `known=False`, an unknown) action, or None.

    A known call that is unreadable is reported; an unreadable unknown one is skipped.
    """
    if known and not any(f"{name}(" in reply.text for name in space.models):
        return None
    tries = 0
    calls = _known_call_re(frozenset(space.models)) if known else _CALL_RE
    for match in calls.finditer(reply.text):
        name = match.group(1)
        if (name in space.models) != known:
            continue
        tries += 1
        if tries > _MAX_TRIES:
            return None
        end = reply.closing(match.end() - 1)
        if end is None:
            if known:
                return _Candidate(error=f"{name}(...) is missing its closing parenthesis")
            continue
        candidate = _read_call(name, reply.text[match.start() : end], space, reply)
        if known or candidate.payload is not None:
            return candidate
    return None


def _read_call(name: str, source: str, space: _Space, reply: Reply) -> _Candidate:
    """`name(args)` -> payload, reading each argument with ast.literal_eval: nothing is run."""
    try:
        call = reply.parse(source)
    except CodeLimit:
        return _Candidate(error=f"{name}(...) is too long to read; write {name}(field=value, ...), short")
    except READ_ERRORS:
        return _Candidate(error=f"{name}(...) is not a valid call; write {name}(field=value, ...)")
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
        return _Candidate(error=f"{name}(...) is not a valid call; write {name}(field=value, ...)")
    try:
        args = [ast.literal_eval(node) for node in call.args]
        kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
    except READ_ERRORS:  # Starred, **kw, names, calls, operators: code, not values
        return _Candidate(error=f"{name}: argument values must be literals (numbers, strings, lists)")
    if None in kwargs:
        return _Candidate(error=f"{name}: argument values must be literals (numbers, strings, lists)")
    return _positional(name, args, kwargs, space)


def _positional(name: str, args: list[Any], kwargs: dict[Any, Any], space: _Space) -> _Candidate:
    """Give positional arguments their field names, with a few natural special forms."""
    if name not in space.models:  # kept only to report "unknown action" to the model
        return _Candidate(payload={**kwargs, "action": name})
    if name == "key" and args:  # key("ctrl", "s") or key(["ctrl", "s"])
        args = [list(args[0]) if len(args) == 1 and isinstance(args[0], list | tuple) else list(args)]
        fields: tuple[str, ...] = ("keys",)
    elif name in ("click", "move") and len(args) == 1 and isinstance(args[0], str):
        fields = ("target",)  # click("the Submit button")
    elif name == "drag" and len(args) == 4:  # drag(x1, y1, x2, y2)
        args, fields = [list(args[:2]), list(args[2:])], _POSITIONAL["drag"]
    elif name in _POSITIONAL:
        fields = _POSITIONAL[name]
    elif name in _GUI_MODELS:
        fields = ()
    else:  # a registered tool: parameters in declaration order
        model = space.models[name]
        fields = tuple(info.alias or field for field, info in model.model_fields.items() if field != "action")
    if len(args) > len(fields):
        shown = f" ({', '.join(fields)})" if fields else ""
        return _Candidate(error=f"{name} takes {len(fields)} positional argument(s){shown}; name the others")
    payload: dict[Any, Any] = dict(zip(fields, args, strict=False))
    for key, value in kwargs.items():
        if key in payload:
            return _Candidate(error=f"{name}: {key} is given twice")
        payload[key] = value
    payload["action"] = name
    return _Candidate(payload=payload)


def _find_box(text: str) -> _Candidate | None:
    """A left click at the centre of the first InternVL box, still in model space; None without one."""
    match = BOX_RE.search(text)
    if match is None:
        return None
    x1, y1, x2, y2 = corners = tuple(float(corner) for corner in match.groups())
    # Every corner must be in range, not just the centre: a wild corner means a wild box.
    if not all(in_model_space(corner) for corner in corners):
        return _Candidate(error=f"box {match.group(0)[:60]}]: corners must be from 0 to {MODEL_SPACE_MAX}")
    return _Candidate(payload={"action": "click", "x": (x1 + x2) / 2, "y": (y1 + y2) / 2})


# -- validation ------------------------------------------------------------------------------


def _validate(payload: dict[Any, Any], space: _Space, size: tuple[int, int]) -> BaseAction:
    name = payload.get("action")
    if not isinstance(name, str) or name not in space.models:
        close = difflib.get_close_matches(str(name)[:64], list(space.models), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise _feedback(f"unknown action {short_repr(name)}{hint}", space)
    if name in _GUI_MODELS:
        try:
            payload = _to_screenshot(payload, size)
        except ValueError as exc:
            raise _feedback(f"{name}: {exc}", space) from None
    try:
        action = space.adapter.validate_python(payload)
    except ValidationError as exc:
        detail = format_validation_error(exc, action=name, model=space.models[name])
        raise _feedback(f"{name}: {detail}", space) from None
    except READ_ERRORS as exc:  # a validator choking on an exotic literal
        raise _feedback(f"{name}: invalid arguments ({type(exc).__name__})", space) from None
    try:  # every action is written to the trajectory, so it must encode ("\\udc00" in JSON won't)
        action.model_dump_json()
    except (ValueError, TypeError):
        raise _feedback(f"{name}: arguments must be plain UTF-8 text (no lone surrogates)", space) from None
    return action  # type: ignore[no-any-return]


def _split_combo(key: Any) -> list[Any]:
    """"ctrl+s" -> ["ctrl", "s"]; a lone "+" is the plus key. Non-strings pass to validation."""
    if isinstance(key, str) and len(key) > 1 and "+" in key.strip("+"):
        return key.split("+")
    return [key]


def _to_screenshot(payload: dict[Any, Any], size: tuple[int, int]) -> dict[Any, Any]:
    """Convert GUI points from model space to screenshot pixels; normalise key lists."""
    fields = _GUI_MODELS[payload["action"]].model_fields
    out = dict(payload)
    for axis, field in enumerate(_POINT_FIELDS):
        if field in fields and out.get(field) is not None:
            out[field] = to_pixels(out[field], size[axis], field=field)
    for field in _END_FIELDS:
        point = out.get(field)
        if field in fields and isinstance(point, list | tuple) and len(point) == 2:
            out[field] = [
                to_pixels(value, size[axis], field=f"{field}[{axis}]") for axis, value in enumerate(point)
            ]
    for field in ("keys", "modifiers"):  # "ctrl+s" is a common way to write ["ctrl", "s"]
        value = out.get(field)
        if field in fields and isinstance(value, str):
            value = [value]
        if field in fields and isinstance(value, list | tuple):
            out[field] = [part for key in value for part in _split_combo(key)]
    return out
