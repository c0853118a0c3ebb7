"""Finding a description's words among lines of text read off a screenshot (OCR's output).

Engine-agnostic: `TextLine`s in, `Match`es out, so the same matcher serves rapidocr and the
Tesseract baseline of bench/grounding_speed.py. Words are compared after folding case,
accents and the usual OCR confusions (O/0, l/1/I, rn/m), by similarity, so "0rder" finds
"Order". A target that is part of a longer line gets the box of its own words.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Protocol, TypeVar

from agent.grounding import Box
from agent.grounding.describe import Description

__all__ = ["Match", "TextLine", "closest_lines", "find", "normalize", "pick", "reading_order"]

MIN_SIMILARITY = 0.8
_CONFUSIONS = str.maketrans({"0": "o", "1": "l", "i": "l", "|": "l", "!": "l", "\u0131": "l", "5": "s"})
_PAIRS = (("rn", "m"), ("vv", "w"), ("cl", "d"))
_PUNCTUATION = re.compile(r"[^\w\s]|_", re.UNICODE)
_CONTROL_ROLES = {"button", "link", "tab", "menuitem", "option", "checkbox", "radio", "switch"}


class _HasBox(Protocol):
    @property
    def box(self) -> Box: ...


_Boxed = TypeVar("_Boxed", bound=_HasBox)


@dataclass(frozen=True)
class TextLine:
    """One line of text on the screenshot, with its words' boxes where the engine gives them."""

    text: str
    box: Box
    score: float = 1.0  # the engine's confidence, 0..1
    words: tuple[tuple[str, Box], ...] = ()

    def word_boxes(self) -> tuple[tuple[str, Box], ...]:
        """Each word and its box: the engine's, or the line box split by character offsets."""
        if self.words:
            return self.words
        found, box = [], self.box
        per_char = box.width / max(len(self.text), 1)
        for m in re.finditer(r"\S+", self.text):
            left = box.left + round(m.start() * per_char)
            right = box.left + max(round(m.end() * per_char) - 1, round(m.start() * per_char))
            found.append((m.group(), Box(left, box.top, min(right, box.right), box.bottom)))
        return tuple(found)


@dataclass(frozen=True)
class Match:
    """Some words of a line that read as the target."""

    box: Box
    text: str  # the words as read
    similarity: float  # 0..1, after folding
    whole_line: bool  # the words are the entire line (a button's label, not part of a sentence)
    line: TextLine

    @property
    def score(self) -> float:
        return self.similarity * self.line.score


def normalize(text: str) -> str:
    """Case, accents, punctuation and OCR confusions folded: "Ça 0K!" -> "ca ok"."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    text = _PUNCTUATION.sub(" ", text).translate(_CONFUSIONS)
    for pair, single in _PAIRS:
        text = text.replace(pair, single)
    return " ".join(text.split())


def _similarity(a: str, b: str) -> float:
    if a == b:
        return 1.0
    if min(len(a), len(b)) <= 2:  # "OK" must read as OK, not as any two letters
        return 0.0
    return SequenceMatcher(None, a, b, autojunk=False).ratio()


def find(lines: Sequence[TextLine], name: str, *, min_similarity: float = MIN_SIMILARITY) -> list[Match]:
    """Every run of words in `lines` that reads as `name`, best first per line (one per line)."""
    target = normalize(name).replace(" ", "")
    n = len(normalize(name).split())
    if not target:
        return []
    found: list[Match] = []
    for line in lines:
        words = [(normalize(w), box, w) for w, box in line.word_boxes()]
        words = [w for w in words if w[0]]
        best: Match | None = None
        for k in range(max(1, n - 1), n + 2):
            for start in range(0, len(words) - k + 1):
                window = words[start:start + k]
                similarity = _similarity("".join(w[0] for w in window).replace(" ", ""), target)
                if similarity < min_similarity or (best is not None and similarity <= best.similarity):
                    continue
                box = Box(min(w[1].left for w in window), min(w[1].top for w in window),
                          max(w[1].right for w in window), max(w[1].bottom for w in window))
                best = Match(box, " ".join(w[2] for w in window), similarity, k == len(words), line)
        if best is not None:
            found.append(best)
    return found


def reading_order(matches: Sequence[_Boxed]) -> list[_Boxed]:
    """Top to bottom, rows of boxes whose centres are within half a line of each other left to right
    (of matches, or of lines)."""
    ordered = sorted(matches, key=lambda m: m.box.center[1])
    rows: list[list[_Boxed]] = []
    for match in ordered:
        if rows and abs(match.box.center[1] - rows[-1][0].box.center[1]) <= max(match.box.height, 8) / 2:
            rows[-1].append(match)
        else:
            rows.append([match])
    return [m for row in rows for m in sorted(row, key=lambda m: m.box.left)]


def pick(description: Description, targets: list[Match], lines: Sequence[TextLine]) -> Match | None:
    """The one match the description means: by its relation, then its ordinal, else the best
    (the first in reading order among equals). None when a relation's anchor is not there."""
    if description.role in _CONTROL_ROLES and any(m.whole_line for m in targets):
        targets = [m for m in targets if m.whole_line]  # a button's label is a line of its own
    best = max(m.similarity for m in targets)
    if description.ordinal is None and description.near is None and description.within is None:
        return reading_order([m for m in targets if m.similarity >= best - 0.05])[0]
    if description.near is None and description.within is None:
        ordered = reading_order([m for m in targets if m.similarity >= best - 0.1])
        index = description.ordinal - 1 if description.ordinal > 0 else len(ordered) + description.ordinal
        return ordered[index] if 0 <= index < len(ordered) else None
    anchor_text = description.near if description.near is not None else description.within
    anchors = [a for a in find(lines, anchor_text or "") if a.similarity >= MIN_SIMILARITY]
    pairs = [(_distance(description, t.box, a.box), t) for t in targets for a in anchors
             if not _overlaps(t.box, a.box)]
    pairs = [(d, t) for d, t in pairs if d is not None]
    if not pairs:
        return None
    ranked = [t for _, t in sorted(pairs, key=lambda p: p[0])]
    if description.ordinal is not None and description.ordinal > 0:
        unique = list(dict.fromkeys(ranked))
        return unique[description.ordinal - 1] if description.ordinal <= len(unique) else None
    return ranked[0]


def _overlaps(a: Box, b: Box) -> bool:
    return a.left <= b.right and b.left <= a.right and a.top <= b.bottom and b.top <= a.bottom


def _distance(description: Description, target: Box, anchor: Box) -> float | None:
    """How far `target` is from `anchor` for the description's relation; None where it cannot be."""
    tx, ty = target.center
    ax, ay = anchor.center
    h = max(min(target.height, anchor.height), 1)
    same_row = abs(ty - ay) <= max(target.height, anchor.height) / 2
    if description.within is not None and description.near is None:
        if ty < anchor.top - h:  # a dialog's contents are below its title, or beside it
            return None
        return float(((tx - ax) ** 2 + (ty - ay) ** 2) ** 0.5)
    direction = description.direction
    if direction == "right" and (target.left < anchor.right - h or not same_row):
        return None
    if direction == "left" and (target.right > anchor.left + h or not same_row):
        return None
    if direction == "below" and ty <= anchor.bottom:
        return None
    if direction == "above" and ty >= anchor.top:
        return None
    gap_x = max(target.left - anchor.right, anchor.left - target.right, 0)
    gap_y = max(target.top - anchor.bottom, anchor.top - target.bottom, 0)
    if same_row:
        return float(gap_x)
    return float((gap_x ** 2 + gap_y ** 2) ** 0.5) + 10 * h  # another row: after every same-row one


def closest_lines(lines: Sequence[TextLine], name: str, count: int = 5) -> list[str]:
    """The texts read that look most like `name` (by their best run of words), for an error message."""
    scored = sorted(find(lines, name, min_similarity=0.0), key=lambda m: -m.similarity)
    return [m.line.text for m in scored[:count]]
