"""Where a bracket closes, for many start points, in one linear pass over a model's reply.

The parser asks of a `{` or a `(` where it closes, reading forward from that bracket as if
the text began there: quoted strings, `"..."` or `'...'` with backslash escapes, are
skipped, and only that one kind of bracket counts. Reading from the start point matters:
the apostrophe in "I'll click(5, 5)" must not open a string for `click(`. A reply can hold
dozens of start points, and reading afresh from each one read hostile replies dozens of
times over (657 ms for 21 KB). Here every reading together costs one pass:

- Only brackets and quotes matter ("events"): their positions are listed once, in C.
- A string that opens at a quote closes at the next quote of its kind that is not escaped,
  i.e. not preceded by an odd run of backslashes. That does not depend on where a reading
  began, so those quotes are listed once too, and a reading jumps over a string in one step.
- Two readings outside quotes at the same event read everything after it alike; only their
  depths differ. Readings that differ can only come to agree inside a string, so a reading
  notes its stack (the open brackets it waits to close) at each open bracket and each end
  of a string it reaches. A later reading that reaches a noted event stops reading and takes
  its answers from there: its k-th pending bracket closes where the earlier reading's k-th
  did. It reads on by itself only from where the earlier reading ended.

So each open bracket and each string is read by one reading at most, a close bracket read
again pops a bracket of the later reading, and each answer taken over is one step. `steps`
counts them all: at most the events, plus two per start point asked about.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from itertools import compress, count, pairwise

__all__ = ["BracketScanner"]

_QUOTES = "\"'"
# A reading's stack of pending open brackets is its innermost one, by event, or _EMPTY; each
# pushed bracket's `_noted` entry is the one below it. So a stack is an int: noting it is free,
# and nothing the garbage collector tracks is made per bracket.
_EMPTY, _UNSEEN = -1, -2


def _positions(text: str, chars: str) -> list[int]:
    """The indices of `chars` in `text`, ascending, found in C."""
    if sum(map(text.count, chars)) * 16 < len(text):  # few: let the regex engine jump to them
        return [match.start() for match in re.finditer(f"[{re.escape(chars)}]", text)]
    return list(compress(range(len(text)), map(frozenset(chars).__contains__, text)))


class BracketScanner:
    """Where each `open_` bracket of `text` closes, reading from that bracket, quotes skipped."""

    def __init__(self, text: str, open_: str, close: str) -> None:
        if len(open_) != 1 or len(close) != 1 or open_ == close or {open_, close} & set(_QUOTES + "\\"):
            raise ValueError(f"brackets must be two characters other than quotes, got {open_!r}, {close!r}")
        self.text, self.open, self.close = text, open_, close
        chars = open_ + close + _QUOTES
        self._events = _positions(text, chars)  # where the brackets and quotes are
        self._kinds = re.sub(f"[^{re.escape(chars)}]+", "", text)  # which each one is
        # quote -> events of that quote that end a string, and for each of those the next one
        self._closers: dict[str, tuple[list[int], dict[int, int]]] = {}
        self._escaped: set[int] | None = None  # quotes after an odd run of backslashes
        # Per event: the closing bracket's event of an open one (or _EMPTY: none, or not known);
        # the stack of the reading that stood there (or _UNSEEN).
        self._closes = [_EMPTY] * len(self._events)
        self._noted = [_UNSEEN] * len(self._events)
        self.steps = 0  # events read and answers taken over, in all readings

    def closing(self, start: int) -> int | None:
        """The index just past the bracket that closes text[start], or None if none does."""
        if self.text[start : start + 1] != self.open:
            raise ValueError(f"text[{start}] is not {self.open!r}")
        event = bisect_right(self._events, start) - 1
        if self._noted[event] == _UNSEEN:  # else a finished reading pushed it, and answered it
            self._read(event)
        close = self._closes[event]  # a bracket still open when its reading ended has none
        return None if close == _EMPTY else self._events[close] + 1

    def _read(self, event: int) -> None:
        """Read from the open bracket at `event` until it closes or the text ends.

        Readings meet only where one of them stands outside quotes after a bracket it did
        not just close: at an open bracket, or just past a string. Those events are noted.
        """
        kinds, open_, close = self._kinds, self.open, self.close
        closes, noted, closers_of = self._closes, self._noted, self._closers
        empty, unseen = _EMPTY, _UNSEEN
        top, end, steps = empty, len(kinds), 0
        while event < end:
            steps += 1
            char = kinds[event]
            if char == open_:
                earlier = noted[event]
                if earlier != unseen:  # an earlier reading stood here: it has the answers
                    top, event = self._follow(top, earlier, event)
                    if top == empty:
                        break
                    continue
                noted[event] = top  # also what lies below it, once pushed
                top = event
                event += 1
            elif char == close:
                closes[top] = event  # (a reading ends when its first bracket closes: top is one)
                top = noted[top]
                if top == empty:
                    break
                event += 1
            else:  # a quote: jump past the string it opens
                found = closers_of.get(char)
                if found is None:
                    closers = self._unescaped(char)
                    found = closers_of[char] = (closers, dict(pairwise(closers)))
                closer = found[1].get(event)  # a quote that can close a string opens one to the next
                if closer is None:
                    i = bisect_right(found[0], event)
                    if i == len(found[0]):
                        break  # an unclosed string: nothing after it closes anything
                    closer = found[0][i]
                event = closer + 1
                if event < end and kinds[event] != open_:  # (an open bracket is noted above)
                    earlier = noted[event]
                    if earlier == unseen:
                        noted[event] = top
                    else:
                        top, event = self._follow(top, earlier, event)
                        if top == empty:
                            break
        self.steps += steps

    def _follow(self, top: int, earlier: int, event: int) -> tuple[int, int]:
        """Take the answers of the earlier reading that stood at `event` with stack `earlier`.

        Returns the brackets still pending and the event to read on from, or _EMPTY when
        nothing is left to read (brackets that never close are simply left unanswered).
        """
        closes, noted = self._closes, self._noted
        last = event  # the earlier reading's first bracket: this one, if it started here
        while top != _EMPTY and earlier != _EMPTY:
            self.steps += 1
            if closes[earlier] == _EMPTY:
                return _EMPTY, event
            closes[top] = closes[earlier]
            last, top, earlier = earlier, noted[top], noted[earlier]
        if top == _EMPTY or closes[last] == _EMPTY:
            return _EMPTY, event
        return top, closes[last] + 1  # read on from where the earlier reading ended

    def _unescaped(self, quote: str) -> list[int]:
        """The events of `quote` that can close a string: those after an even run of backslashes.

        A string opens just after a quote character, never inside a run of backslashes, so
        whichever reading walks it pairs a run's backslashes from the run's first one: where
        a string closes does not depend on where a reading began.
        """
        quotes = list(compress(count(), map(quote.__eq__, self._kinds)))
        if self._escaped is None:
            self._escaped = _escaped_quotes(self.text)
        events, escaped = self._events, self._escaped
        return [event for event in quotes if events[event] not in escaped] if escaped else quotes


def _escaped_quotes(text: str) -> set[int]:
    """The indices of the quotes of `text` that follow an odd run of backslashes."""
    if "\\" not in text:
        return set()
    quotes = _positions(text, _QUOTES)
    escaped = set()
    for match in re.finditer(r"\\[\"']", text):
        at = match.end() - 1
        # The run of backslashes lies after the quote before this one: these slices, one per
        # quote at most, do not overlap, so they cost O(n) in all.
        before = bisect_right(quotes, at - 1)
        between = text[quotes[before - 1] + 1 if before else 0 : at]
        if (len(between) - len(between.rstrip("\\"))) % 2:
            escaped.add(at)
    return escaped
