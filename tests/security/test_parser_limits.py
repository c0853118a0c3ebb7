"""The parser against hostile replies (issue #16): whatever their shape and size, only a
ParseError or a valid action comes out; the work of reading grows linearly with what is read,
and what is read is capped; a reply cut short says so to the model.

Nothing here is timed (bench/parse.py does that): work is counted instead.
"""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.parse_brackets import BracketScanner
from agent.parse_reply import CODE_BUDGET, DECODE_BUDGET, MAX_DELIMITERS, MAX_SCAN, Reply
from agent.parsing import ParseError, parse_action
from tools.actions import ACTION_ADAPTER, Click, Type
from tools.registry import ToolRegistry

SIZE = (1001, 501)  # one model unit is one pixel across, half a pixel down
KB = 1024
SHORT = "answer with one short action"
SETTINGS = {
    "deadline": None,  # no test here depends on time
    "database": None,
    "suppress_health_check": [
        HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example
    ],
}

REGISTRY = ToolRegistry()


@REGISTRY.tool
def lookup(city: str, days: int = 1) -> str:
    """Look up the weather in a city."""
    return city


def fill(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def parse_error(text: str) -> str:
    with pytest.raises(ParseError) as info:
        parse_action(text, image_size=SIZE)
    message = str(info.value)
    assert len(message) < 600 and "Valid actions: back, click," in message
    return message


TOOL_CALL = '<tool_call>{"name": "click", "arguments": {"x": 500, "y": 300}}</tool_call>'
# The shapes that made the old parser rescan the reply per candidate, and their cousins.
WORST = {
    "nested objects": '{"a": ',
    "object starts": '{"',
    "single-quoted object starts": "{'",
    "alternating quotes": "{'{\"",
    "escaped quotes": "{'\\'",
    "unclosed tool call": '<tool_call>{"name": "click", "arguments": {"x": [',
    "tool call starts": "<tool_call>{",
    "boxes": "[[",
    "open parentheses": "(",
    "nested calls": "f(",
    "unknown calls": "tap('",
    "known calls": "click(",
    "backslashes": "\\",
    "quotes": "\"'",
}


@pytest.mark.parametrize("size", [20 * KB, 1024 * KB], ids=["20KB", "1MB"])
@pytest.mark.parametrize("unit", WORST.values(), ids=list(WORST))
def test_the_worst_shapes_give_a_parse_error_that_asks_for_one_short_action(unit, size):
    assert SHORT in parse_error(fill(unit, size))


@pytest.mark.parametrize("unit", WORST.values(), ids=list(WORST))
def test_an_action_after_hostile_noise_is_found_or_the_first_tool_call_is_reported(unit):
    text = fill(unit, 2 * KB) + "\n" + TOOL_CALL
    if "<tool_call>" in unit:  # the first tool call decides, and it is broken
        assert parse_error(text).startswith("<tool_call> must hold")
    else:
        assert parse_action(text, image_size=SIZE) == Click(x=500, y=150)


# -- what is read, and what the model is told ---------------------------------------------------


@pytest.mark.parametrize("size", [MAX_SCAN + 1, 1024 * KB])
def test_a_long_reply_with_an_action_early_still_parses(size):
    for action in ('click(500, 300) ', '{"action": "click", "x": 500, "y": 300} ',
                   '<tool_call>{"name": "click", "arguments": {"x": 500, "y": 300}}</tool_call> '):
        text = "Thought: the OK button. " + action + fill("and then some more thoughts. ", size)
        assert parse_action(text, image_size=SIZE) == Click(x=500, y=150)


@pytest.mark.parametrize("size", [MAX_SCAN, 1024 * KB])
def test_an_action_only_after_the_cap_gets_the_cut_feedback(size):
    message = parse_error(fill("Let me think about it. ", size) + "click(500, 300)")
    assert message.startswith(f"no action found; the reply was cut at {MAX_SCAN} characters: {SHORT}.")


def test_an_action_cut_in_the_middle_is_reported_with_the_cut():
    message = parse_error('type(text="' + "a" * MAX_SCAN + '")')
    assert message.startswith("type(...) is missing its closing parenthesis; the reply was cut at")


def test_the_reply_is_read_up_to_its_max_delimiters_th_bracket_or_quote():
    noise = "()" * (MAX_DELIMITERS // 2 - 1)  # with click's own two, just at the cap
    assert parse_action(noise + " click(500, 300)", image_size=SIZE) == Click(x=500, y=150)
    more = noise + "()"  # the cap reached before click
    message = parse_error(more + " click(500, 300)")
    assert message.startswith(f"no action found; the reply was cut at {len(more)} characters: {SHORT}.")
    assert Reply(more + " click(500, 300)").cut and not Reply(noise + " click(500, 300)").cut


def test_a_short_reply_is_not_said_to_be_cut():
    assert "cut" not in parse_error("Nothing to do.")
    assert not Reply("x" * MAX_SCAN).cut and Reply("x" * (MAX_SCAN + 1)).cut
    assert Reply(None).text == ""  # not text: nothing to read


# -- recursion and the decoders' budgets ------------------------------------------------------------

DEEP = 3_000


def test_deep_json_makes_the_standard_library_recurse_too_far():
    with pytest.raises(RecursionError):
        json.loads("[" * DEEP + "]" * DEEP)


@pytest.mark.parametrize(
    "text",
    [
        '{"action": "type", "text": ' + "[" * DEEP + "]" * DEEP + "}",
        '<tool_call>{"name": "type", "arguments": ' + "[" * DEEP + "]" * DEEP + "}</tool_call>",
        '<tool_call>{"name": "type", "arguments": {"text": ' + '{"a": ' * DEEP + "1" + "}" * DEEP + "}}",
        '{"name": "type", "arguments": "' + "[" * DEEP + "]" * DEEP + '"}',  # read again from a string
        "type(text=" + "[" * DEEP + "]" * DEEP + ")",
        "type(text=" + "-" * DEEP + "1)",
        "type(text=" + "-" * 1_500 + "1)",  # within the code budget: ast.literal_eval recurses
        "{'action': 'type', 'text': " + "(" * DEEP + "1" + ")" * DEEP + "}",
        '{"action": "type", "text": ' + "[" * 900 + "]" * 900 + "}",  # json decodes this, nested 900 deep
        "type(text=" + "[" * 150 + "]" * 150 + ")",
    ],
)
def test_deep_nesting_gives_a_parse_error_not_a_recursion_error(text):
    parse_error(text)


def test_candidates_with_more_code_than_is_left_are_passed_over():
    dense = "{'a': [" + "1, " * (CODE_BUDGET // 5) + "]} "  # Python literals: about a third of the budget
    assert parse_action(dense * 4 + "click(500, 300)", image_size=SIZE) == Click(x=500, y=150)
    assert "click(...) is too long to read" in parse_error(dense * 3 + "click(" + "1, " * CODE_BUDGET + ")")


def test_a_reply_that_would_cost_the_decoders_too_much_is_not_read_to_its_end():
    nested = '{"a": ' * 48 + '"' + "x" * (DECODE_BUDGET // 8) + '"' + "}" * 48  # each object decodes
    message = parse_error(nested + " click(500, 300)")
    assert message.startswith(f"too much to read: the reply nests or repeats itself; {SHORT}.")


def test_long_strings_cost_the_code_budget_nothing():
    notes = "{'note': '" + "a" * 5_000 + "'} "  # Python literals: read by ast, not json
    assert parse_action(notes * 3 + "click(500, 300)", image_size=SIZE) == Click(x=500, y=150)
    text = "a" * 9_000
    assert parse_action(f"type(text='{text}')", image_size=SIZE) == Type(text=text)


# -- fuzzing: bracket soups ----------------------------------------------------------------------------

PIECES = ['{', '}', '(', ')', '[', ']', '"', "'", "\\", '{"', "{'", '"a": ', "'a': ", ", ", ": ", "1", "500",
          "x=", "click(", "tap(", "type(", '"action"', '"name"', '"arguments"', '"click"', "<tool_call>",
          "</tool_call>", "[[", "]]", "<box>", " ", "\n", "True", "None", "NaN"]


@st.composite
def soups(draw: st.DrawFn) -> str:
    """Bracket soups: pieces of the formats, a stretch of them repeated up to thousands of times."""
    parts = draw(st.lists(st.sampled_from(PIECES), max_size=30))
    if parts and draw(st.booleans()):
        start = draw(st.integers(0, len(parts) - 1))
        stop = draw(st.integers(start + 1, len(parts)))
        parts[start:stop] = parts[start:stop] * draw(st.integers(1, 3_000))
    return "".join(parts)


@settings(max_examples=300, **SETTINGS)
@given(soups(), st.booleans())
def test_bracket_soups_give_a_parse_error_or_a_valid_action(text, with_registry):
    registry = REGISTRY if with_registry else None
    try:
        action = parse_action(text, image_size=SIZE, registry=registry)
    except ParseError as exc:
        assert len(str(exc)) < 600
        return
    adapter = REGISTRY.union_adapter() if with_registry else ACTION_ADAPTER
    assert adapter.validate_json(action.model_dump_json()) == action


# -- the bracket scanner: right answers, linear work --------------------------------------------------


def fresh_scan(text: str, start: int, open_: str, close: str) -> int | None:
    """Where text[start] closes, read afresh from it character by character: the definition."""
    depth, quote, index = 0, "", start
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\":
                index += 1  # the next character is escaped
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == open_:
            depth += 1
        elif char == close:
            depth -= 1
            if depth == 0:
                return index + 1
        index += 1
    return None


@settings(max_examples=300, **SETTINGS)
@given(st.text(st.sampled_from(list("{}()\"'\\ a")), max_size=200) | soups().map(lambda s: s[:400]),
       st.randoms(use_true_random=False))
def test_the_scanner_answers_as_a_fresh_scan_from_each_start_in_any_order(text, rng):
    for open_, close in (("{", "}"), ("(", ")")):
        scanner = BracketScanner(text, open_, close)
        starts = [i for i, char in enumerate(text) if char == open_]
        rng.shuffle(starts)
        for start in starts:
            assert scanner.closing(start) == fresh_scan(text, start, open_, close), (text, start)
        events = sum(map(text.count, open_ + close + "\"'"))
        assert scanner.steps <= events + 2 * len(starts)


LINEAR = {**WORST, "pairs": "{}", "strings": "{'a'}{\"b\"}", "prose": "It's a \"test\" (1) {2}. "}


@pytest.mark.parametrize("unit", LINEAR.values(), ids=list(LINEAR))
def test_the_scanner_reads_each_bracket_and_quote_about_once_whatever_is_asked(unit):
    text = fill(unit, MAX_SCAN)
    for open_, close in (("{", "}"), ("(", ")")):
        scanner = BracketScanner(text, open_, close)
        starts = [i for i, char in enumerate(text) if char == open_]
        for start in starts:  # every start point, not just the parser's 48 candidates
            scanner.closing(start)
        events = sum(map(text.count, open_ + close + "\"'"))  # what the scanner looks at
        assert scanner.steps <= events + 2 * len(starts), (scanner.steps, events)


@pytest.mark.parametrize("n", [1_000, 4_000, 16_000])
def test_the_scanners_work_grows_linearly_with_the_reply(n):
    rng = random.Random(n)
    text = "".join(rng.choice(PIECES) for _ in range(n))[:n]
    for open_, close in (("{", "}"), ("(", ")")):
        scanner = BracketScanner(text, open_, close)
        for start in [i for i, char in enumerate(text) if char == open_]:
            scanner.closing(start)
        assert scanner.steps <= 4 * n


def test_the_scanner_refuses_what_it_cannot_answer():
    with pytest.raises(ValueError, match="quotes"):
        BracketScanner("x", "'", "'")
    with pytest.raises(ValueError, match="is not"):
        BracketScanner("a{", "{", "}").closing(0)
