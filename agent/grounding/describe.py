"""One reader of target descriptions, shared by every grounder.

    "the second Delete button"              role button, name "Delete", ordinal 2
    "the Delete button next to Bob"         role button, name "Delete", near "Bob"
    "the OK button in the Save dialog"      role button, name "OK", within "Save"
    "the 'Sign in' link"                    role link, name "Sign in", quoted "Sign in"
    "the last row"                          role row, no name, ordinal -1

`name` is what to look for as text: the quoted words if there are any, else what is left
once the article, the ordinal, the role word and generic nouns ("box", "label") are gone.
Ordinals count from 1; negative ones count from the end (-1 is the last).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Description", "describe"]

# Words that name a kind of element, and the ARIA role each stands for; the longest match wins.
ROLE_WORDS: dict[str, str] = {
    "radio button": "radio", "check box": "checkbox", "checkbox": "checkbox", "tick box": "checkbox",
    "text field": "textbox", "text box": "textbox", "textbox": "textbox", "input field": "textbox",
    "text input": "textbox", "input box": "textbox", "field": "textbox", "input": "textbox",
    "text area": "textbox", "textarea": "textbox", "editor": "textbox", "entry": "textbox",
    "search box": "searchbox", "search field": "searchbox",
    "menu item": "menuitem", "menuitem": "menuitem", "drop-down": "combobox", "dropdown": "combobox",
    "combo box": "combobox", "combobox": "combobox", "select": "combobox",
    "button": "button", "link": "link", "hyperlink": "link", "tab": "tab", "heading": "heading",
    "title": "heading", "image": "img", "picture": "img", "icon": "img", "option": "option",
    "slider": "slider", "switch": "switch", "toggle": "switch", "row": "row", "cell": "cell",
    "column header": "columnheader", "list item": "listitem", "menu": "menu", "dialog": "dialog",
    "window": "dialog", "radio": "radio",
}
# Nouns that name no role ("the Hover me box"): dropped from the end of the name.
GENERIC_WORDS = ("box", "area", "element", "label", "text", "section", "panel", "item", "word", "words",
                 "card", "column", "tile", "chip", "badge", "pane", "region", "widget", "control",
                 "container", "bar")
# Nouns that close a "within" clause: "in the Save dialog", "inside the Billing section".
CONTAINER_WORDS = ("dialog", "window", "panel", "section", "form", "box", "area", "toolbar", "menu",
                   "table", "list", "sidebar", "header", "footer", "card", "frame", "group", "popup",
                   "modal", "pane", "page", "tab", "region", "bar", "block", "column", "sheet")

_ORDINAL_WORDS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
                  "eighth": 8, "ninth": 9, "tenth": 10, "last": -1}
_ORDINAL = re.compile(
    r"\b(?:(?P<from_end>second|third|fourth|fifth)[\s-]+(?:to[\s-]+)?last"
    r"|(?P<word>first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|last)"
    r"|(?P<number>\d{1,3})(?:st|nd|rd|th))\b",
    re.IGNORECASE,
)
_QUOTED = re.compile(
    r"\"([^\"]+)\"|\u201c([^\u201d]+)\u201d|\u2018([^\u2019]+)\u2019|(?<![\w])'([^']+)'(?![\w])")
_ARTICLE = re.compile(r"^(?:the|a|an)\s+", re.IGNORECASE)
_NAMED = re.compile(r"\s+(?:labell?ed|named|called|titled|marked|that says|saying|reading|"
                    r"with (?:the )?(?:text|label|caption|title))\s+(?P<name>.+)$", re.IGNORECASE)
_DIRECTIONS = {"right": "right", "left": "left", "below": "below", "under": "below", "beneath": "below",
               "underneath": "below", "above": "above", "over": "above", "after": "right", "before": "left"}
# Relations, tried in order on the text outside quotes; each captures the anchor's words.
_NEAR = re.compile(
    r"\s+(?:(?:(?:that is|which is)\s+)?(?:(?:to the|on the)\s+(?P<side>right|left)\s+of"
    r"|(?P<side2>right|left)\s+of|(?P<dir>below|under|beneath|underneath|above|over|after|before)"
    r"|next to|beside|besides|near|close to|by the side of|alongside"
    r"|in the (?:same )?(?:row|line) (?:of|with|for)|on the (?:same )?(?:row|line) (?:as|of|with)"
    r"|in the (?:row|line) (?:that )?(?:says|reads|holds|containing|contains)"
    r"|for))\s+(?P<anchor>.+)$",
    re.IGNORECASE,
)
_ROW_OF = re.compile(r"\s+in\s+(?P<anchor>.+?)['\u2019]s?\s+(?:row|line)$", re.IGNORECASE)
_WITHIN = re.compile(
    rf"\s+(?:in|inside|within|on|of|under)\s+(?P<anchor>(?:the|a|an)\s+.+?\s+(?:{'|'.join(CONTAINER_WORDS)})"
    r"|(?:the|a|an)\s+\x00\d+\x00.*)$"
    r"|\s+(?:inside|within)\s+(?P<anchor2>.+)$",
    re.IGNORECASE,
)
# Relation words that also occur in labels ("Search for items", "Game over"): a relation only
# after a role or generic noun ("the Delete button for Bob").
_AMBIGUOUS = ("for", "after", "before", "over", "under", "above", "below", "beneath", "underneath")


@dataclass(frozen=True)
class Description:
    """A target description, read once. `role` is an ARIA role; `name` the text to find."""

    text: str
    role: str | None = None
    name: str = ""
    ordinal: int | None = None  # 1 the first, 2 the second, -1 the last, -2 the one before it
    near: str | None = None  # "next to Bob" -> "Bob": the anchor's text
    direction: str | None = None  # where the target is from `near`: right, left, above, below
    within: str | None = None  # "in the Save dialog" -> "Save": the container's text
    quoted: str | None = None  # the target's own quoted text, exactly as written (not its anchor's)

    @property
    def words(self) -> tuple[str, ...]:
        """The salient words of `name`, punctuation stripped."""
        return tuple(w for w in (part.strip(".,:;!?()[]{}<>\"'") for part in self.name.split()) if w)


def describe(text: str) -> Description:
    """Read `text` ("the second Delete button next to Bob") into a Description."""
    original = text
    text = " ".join(text.strip().split())
    # Quoted spans are text to find, never grammar: hide them while the grammar is read.
    quotes: list[str] = []

    def hide(match: re.Match[str]) -> str:
        quotes.append(next(g for g in match.groups() if g is not None))
        return f"\x00{len(quotes) - 1}\x00"

    masked = _QUOTED.sub(hide, text)
    masked, near, direction, within = _relations(masked)
    masked = masked.rstrip(" ,.")
    named = _NAMED.search(masked)
    explicit_name = None
    if named:
        explicit_name, masked = named.group("name"), masked[: named.start()]
    masked, ordinal = _ordinal(masked)
    masked = _ARTICLE.sub("", masked.strip())
    role, rest = _role(masked)
    own = re.findall(r"\x00(\d+)\x00", explicit_name if explicit_name is not None else rest)
    first_quote = quotes[int(own[0])] if own else None  # quoted in the target's own words
    name = first_quote if first_quote is not None else _reveal(
        explicit_name if explicit_name is not None else rest, quotes)
    return Description(
        text=original, role=role, name=_clean(name), ordinal=ordinal,
        near=_anchor(near, quotes), direction=direction, within=_anchor(within, quotes), quoted=first_quote,
    )


def _relations(masked: str) -> tuple[str, str | None, str | None, str | None]:
    """(the text before any relation, near anchor, direction, within anchor)."""
    near = direction = within = None
    match = _WITHIN.search(masked)
    if match and match.start() > 0:
        within = match.group("anchor") or match.group("anchor2")
        masked = masked[: match.start()]
    match = _NEAR.search(masked)
    if match and match.start() > 0 and _ambiguous(match, masked):
        match = None
    if match and match.start() > 0:
        near = match.group("anchor")
        side = match.group("side") or match.group("side2") or match.group("dir")
        direction = _DIRECTIONS.get(side.lower()) if side else None
        masked = masked[: match.start()]
    else:
        row = _ROW_OF.search(masked)
        if row and row.start() > 0:
            near, masked = row.group("anchor"), masked[: row.start()]
    return masked, near, direction, within


def _ambiguous(match: re.Match[str], masked: str) -> bool:
    """Whether a relation word may be part of a label instead ("the Search for items field")."""
    keyword = masked[match.start():match.start("anchor")].split()[0].lower()
    if keyword not in _AMBIGUOUS:
        return False
    before = masked[: match.start()].lower()
    nouns = (*ROLE_WORDS, *GENERIC_WORDS)
    return not any(before == noun or before.endswith(" " + noun) for noun in nouns)


def _ordinal(masked: str) -> tuple[str, int | None]:
    match = _ORDINAL.search(masked)
    if match is None:
        return masked, None
    following = masked[match.end():].split()[:1]
    capitalized = match.group(0)[0].isupper() and match.start() > 0
    if capitalized or [w.lower() for w in following] == ["name"]:  # "the First name field": a label
        return masked, None
    if match.group("from_end"):
        ordinal = -_ORDINAL_WORDS[match.group("from_end").lower()]
    elif match.group("word"):
        ordinal = _ORDINAL_WORDS[match.group("word").lower()]
    else:
        ordinal = int(match.group("number"))
    if ordinal == 0:
        return masked, None
    return (masked[: match.start()] + masked[match.end():]).replace("  ", " ").strip(), ordinal


def _role(masked: str) -> tuple[str | None, str]:
    """(role, the rest) for a role word at the end ("Delete button") or the start ("button Delete")."""
    lowered = masked.lower()
    for words in sorted(ROLE_WORDS, key=len, reverse=True):
        if lowered == words:
            return ROLE_WORDS[words], ""
        if lowered.endswith(" " + words):
            return ROLE_WORDS[words], _drop_generic(masked[: len(masked) - len(words)].strip())
        if lowered.startswith(words + " ") and "\x00" in masked[len(words):][:3]:  # button "OK"
            return ROLE_WORDS[words], masked[len(words):].strip()
    return None, _drop_generic(masked)


def _drop_generic(name: str) -> str:
    lowered = name.lower()
    for word in GENERIC_WORDS:
        if lowered.endswith(" " + word):
            return name[: len(name) - len(word)].strip()
    return name


def _anchor(anchor: str | None, quotes: list[str]) -> str | None:
    """The anchor's own name: "the Save dialog" -> "Save", "'Bob Smith'" -> "Bob Smith"."""
    if anchor is None:
        return None
    inner = describe(_reveal(anchor, quotes)).name
    for word in CONTAINER_WORDS:  # "the Users table" -> "Users"
        if inner.lower().endswith(" " + word):
            inner = inner[: len(inner) - len(word)].strip()
            break
    if not inner:  # "next to the checkbox": only a role word
        inner = _clean(_ARTICLE.sub("", _reveal(anchor, quotes)))
    return inner or None


def _reveal(masked: str, quotes: list[str]) -> str:
    return re.sub(r"\x00(\d+)\x00", lambda m: quotes[int(m.group(1))], masked)


def _clean(name: str) -> str:
    return " ".join(name.split()).strip(" ,.:;").strip("\"'\u201c\u201d\u2018\u2019").strip()
