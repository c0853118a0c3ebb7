"""A model's reply as the parser reads it: cut short, its brackets matched in one pass, and
what it may hand to `json` and `ast` capped, so that no reply costs more than a few
milliseconds, whatever its length.

What is read is the first `MAX_SCAN` characters, and of those no more than `MAX_DELIMITERS`
brackets and quotes: the bracket scanner's work is per delimiter, and no action needs
thousands. A reply longer than that counts as cut (`Reply.cut`), and the model is told so.

Two budgets bound the decoders, whose work grows with what they are given (candidates can
nest: a hostile reply had 48 of them decoded one inside the other):

- at most `DECODE_BUDGET` characters go to `json` and `ast` in all; a reply that needs more
  nests or repeats itself beyond any action, so reading stops (`ReadLimit`) and the model
  is asked for one short action;
- at most `CODE_BUDGET` characters of code (what lies outside string literals) go to `ast`,
  which costs far more per token than `json` or a long string does; a candidate with more
  code than is left is not read, as if it did not parse. An action is a few dozen.
"""

from __future__ import annotations

import ast
import json
import re
import warnings
from typing import Any

from agent.parse_brackets import BracketScanner
from tools.coordinates import MAX_SCAN

__all__ = [
    "CODE_BUDGET", "DECODE_BUDGET", "MAX_DELIMITERS", "MAX_SCAN", "READ_ERRORS",
    "CodeLimit", "ReadLimit", "Reply",
]

MAX_DELIMITERS = 6_000  # brackets and quotes read at most, of the first MAX_SCAN characters
DECODE_BUDGET = 4 * MAX_SCAN  # characters handed to json and ast, in all, for one reply
CODE_BUDGET = 2_000  # characters of code outside string literals handed to ast, in all

# Anything that a malformed literal can make the standard library raise while reading it.
READ_ERRORS = (ValueError, TypeError, SyntaxError, RecursionError, MemoryError, OverflowError)

_PAIRS = {"{": "}", "(": ")"}
_DELIMITERS = "{}()\"'"
# Everything up to and including the MAX_DELIMITERS-th delimiter, in one match.
_UP_TO_LAST = re.compile(f"(?:[^{re.escape(_DELIMITERS)}]*+[{re.escape(_DELIMITERS)}]){{{MAX_DELIMITERS}}}")
_DECODER = json.JSONDecoder()
# A string literal counts as one token of code, whatever its length.
_STRING_LITERAL = re.compile(r"'(?:[^'\\]++|\\.)*+'" + "|" + r'"(?:[^"\\]++|\\.)*+"', re.DOTALL)


class ReadLimit(Exception):
    """Reading on would hand the decoders more than the reply's budget: stop reading it."""


class CodeLimit(ValueError):
    """This candidate holds more code than is left to read: it is unreadable (a READ_ERROR)."""


class Reply:
    """The part of a model's reply that is read, and what reading it may still cost."""

    def __init__(self, text: object) -> None:
        whole = text if isinstance(text, str) else ""
        read = whole[:MAX_SCAN]
        if sum(map(read.count, _DELIMITERS)) > MAX_DELIMITERS:
            read = read[: _UP_TO_LAST.match(read).end()]  # type: ignore[union-attr]  # there are enough
        self.text = read
        self.cut = len(whole) > len(read)  # the rest is not read
        self._scanners: dict[str, BracketScanner] = {}
        self._decode_left, self._code_left = DECODE_BUDGET, CODE_BUDGET

    def closing(self, start: int) -> int | None:
        """The index just past the bracket that closes the `{` or `(` at `start`, or None.

        Quoted strings are skipped, reading from `start` as if the text began there.
        """
        open_ = self.text[start]
        scanner = self._scanners.get(open_)
        if scanner is None:
            scanner = self._scanners[open_] = BracketScanner(self.text, open_, _PAIRS[open_])
        return scanner.closing(start)

    def read_object(self, start: int) -> Any:
        """The JSON (or Python-literal) object whose `{` is at `start`, or None."""
        end = self.closing(start)
        if end is None:
            return None
        # A JSON object that starts at `start` ends at its matching brace: decoding just that
        # span gives what decoding from `start` would, and never reads past it.
        source = self.text[start:end]
        try:
            return self.loads(source, whole=False)
        except READ_ERRORS:
            pass
        try:  # models often write Python literals (True, None, single quotes) inside the braces
            return ast.literal_eval(self.parse(source))
        except READ_ERRORS:
            return None

    def loads(self, source: str, *, whole: bool = True) -> Any:
        """`source` read as JSON: all of it, or (`whole=False`) the value it starts with."""
        self._spend(len(source))
        return json.loads(source) if whole else _DECODER.raw_decode(source)[0]

    def parse(self, source: str) -> ast.expr:
        """ast-parse one expression; nothing is evaluated.

        Warnings ("invalid escape sequence") are silenced so that the result does not depend
        on the process's warning filters, and model output never prints to the console.
        """
        self._spend(len(source))
        code = len(_STRING_LITERAL.sub("''", source)) if ("'" in source or '"' in source) else len(source)
        if code > self._code_left:
            raise CodeLimit(f"{code} characters of code, {self._code_left} left to read")
        self._code_left -= code
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(source, mode="eval").body

    def _spend(self, size: int) -> None:
        if size > self._decode_left:
            raise ReadLimit(f"more than {DECODE_BUDGET} characters to decode")
        self._decode_left -= size
