"""Fuzzing parse_action: whatever the model writes, only ParseError escapes, and every
returned action is valid (it re-validates through the same adapter).

Inputs are random text, valid outputs of all four formats, outputs with random field
values, and all of those mutated (characters inserted, deleted and replaced, truncation,
duplication, prose around them). 10,000 examples in all.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.parsing import ParseError, parse_action
from tools.actions import ACTION_ADAPTER
from tools.registry import ToolRegistry

REGISTRY = ToolRegistry()


@REGISTRY.tool
def lookup(city: str, days: int = 1, name: str | None = None) -> str:
    """Look up the weather in a city."""
    return city


SIZES = [(1, 1), (2, 3), (1001, 501), (1920, 1080), (3840, 2160)]
FIELDS = ["x", "y", "target", "button", "clicks", "modifiers", "start", "end", "dx", "dy", "text", "submit",
          "keys", "seconds", "url", "answer", "reason", "city", "days", "name", "action", "arguments"]
NAMES = ["click", "move", "drag", "scroll", "type", "key", "wait", "navigate", "back", "finish", "fail",
         "lookup", "tap", "", "CLICK"]
# Characters that matter to the formats, so mutations hit the parser's decisions.
SYNTAX = [*'{}[]()<>"\',:=/\\ \n`*+-.0123456789eE', "<tool_call>", "</tool_call>", "<box>", "[[", "]]",
          "NaN", "null", "True", "```json"]
SETTINGS = {
    "deadline": None,
    "database": None,  # no .hypothesis/ folder in the repository
    "suppress_health_check": [
        HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example
    ],
}

coordinate = st.integers(0, 1000)
point = st.lists(coordinate, min_size=2, max_size=2)
words = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=30)
ARGUMENTS = {
    "click": st.fixed_dictionaries({"x": coordinate, "y": coordinate},
                                   optional={"button": st.sampled_from(["left", "right", "middle"]),
                                             "clicks": st.integers(1, 3)}),
    "move": st.fixed_dictionaries({"x": coordinate, "y": coordinate}),
    "drag": st.fixed_dictionaries({"start": point | words, "end": point | words}),
    "scroll": st.fixed_dictionaries({"dy": st.integers(1, 50)})
    | st.fixed_dictionaries({"dy": st.integers(1, 50), "x": coordinate, "y": coordinate}),
    "type": st.fixed_dictionaries({"text": words}, optional={"submit": st.booleans()}),
    "key": st.fixed_dictionaries({"keys": st.lists(st.sampled_from(["ctrl", "shift", "a", "enter", "f5"]),
                                                   min_size=1, max_size=3)}),
    "wait": st.fixed_dictionaries({"seconds": st.integers(1, 60)}),
    "navigate": st.fixed_dictionaries({"url": st.just("https://example.com/a?b=1")}),
    "back": st.just({}),
    "finish": st.fixed_dictionaries({}, optional={"answer": words}),
    "fail": st.fixed_dictionaries({"reason": words}),
    "lookup": st.fixed_dictionaries({"city": words}, optional={"days": st.integers(0, 9), "name": words}),
}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
# Any name with any field values: the validation and conversion paths, not just the happy one.
random_arguments = st.tuples(
    st.sampled_from(NAMES),
    st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=5), json_values, max_size=5),
)


def call_source(name: str, args: dict) -> str:
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in args.items())})"


def render(name: str, args: dict, style: str) -> str:
    """One action in one of the accepted formats (some renderings may be invalid on purpose)."""
    if style == "tool_call":
        return f"<tool_call>{json.dumps({'name': name, 'arguments': args})}</tool_call>"
    if style == "json":
        return json.dumps({"name": name, "arguments": args})
    if style == "flat":
        return f"```json\n{json.dumps({**args, 'action': name})}\n```"
    if style == "python":
        return repr({"action": name, **args})
    if style == "call" and all(k.isidentifier() for k in args):
        return call_source(name, args)
    if style == "positional" and name in ("click", "move") and set(args) >= {"x", "y"}:
        return f"{name}({args['x']}, {args['y']})"
    if style == "box" and name == "click":
        x, y = args.get("x", 500), args.get("y", 500)
        return f"<ref>it</ref><box>[[{x}, {y}, {x}, {y}]]</box>"
    return render(name, args, "tool_call")


STYLES = st.sampled_from(["tool_call", "json", "flat", "python", "call", "positional", "box"])


@st.composite
def valid_outputs(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(sorted(ARGUMENTS)))
    return render(name, draw(ARGUMENTS[name]), draw(STYLES))


@st.composite
def odd_outputs(draw: st.DrawFn) -> str:
    name, args = draw(random_arguments)
    try:
        return render(name, args, draw(STYLES))
    except (TypeError, ValueError):  # e.g. non-string keys json.dumps cannot write
        return repr(args)


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[str]) -> str:
    text = draw(base)
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["insert", "delete", "replace", "truncate", "duplicate", "prose"]))
        at = draw(st.integers(0, len(text)))
        if op == "insert":
            text = text[:at] + draw(st.sampled_from(SYNTAX) | st.text(max_size=3)) + text[at:]
        elif op == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 8)) :]
        elif op == "replace":
            text = text[:at] + draw(st.sampled_from(SYNTAX)) + text[at + 1 :]
        elif op == "truncate":
            text = text[:at]
        elif op == "duplicate":
            end = draw(st.integers(at, len(text)))
            text = text[:end] + text[at:end] * draw(st.integers(1, 3)) + text[end:]
        else:
            text = draw(st.text(max_size=40)) + text + draw(st.text(max_size=40))
    return text


def check(text: str, size: tuple[int, int], with_registry: bool) -> None:
    registry = REGISTRY if with_registry else None
    try:
        action = parse_action(text, image_size=size, registry=registry)
    except ParseError as exc:
        assert len(str(exc)) < 600
        return
    adapter = REGISTRY.union_adapter() if with_registry else ACTION_ADAPTER
    assert adapter.validate_python(action.model_dump()) == action
    assert adapter.validate_json(action.model_dump_json()) == action


@settings(max_examples=3_000, **SETTINGS)
@given(st.text(max_size=300) | st.lists(st.sampled_from(SYNTAX), max_size=60).map("".join),
       st.sampled_from(SIZES), st.booleans())
def test_random_text_raises_only_parse_error(text, size, with_registry):
    check(text, size, with_registry)


@settings(max_examples=4_000, **SETTINGS)
@given(mutated(valid_outputs()), st.sampled_from(SIZES), st.booleans())
def test_mutated_valid_outputs_raise_only_parse_error_or_give_valid_actions(text, size, with_registry):
    check(text, size, with_registry)


@settings(max_examples=3_000, **SETTINGS)
@given(mutated(odd_outputs()), st.sampled_from(SIZES), st.booleans())
def test_outputs_with_random_field_values_raise_only_parse_error_or_give_valid_actions(
    text, size, with_registry
):
    check(text, size, with_registry)


@settings(max_examples=200, **SETTINGS)
@given(valid_outputs(), st.sampled_from(SIZES))
def test_unmutated_valid_outputs_parse(text, size):
    parse_action(text, image_size=size, registry=REGISTRY)
