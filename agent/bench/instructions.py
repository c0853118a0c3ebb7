"""An instruction in English -> GUI actions whose targets are in words, by a few general rules.

    'Click on the "Ok" button.'                         -> click 'the "Ok" button'
    'Enter "Jerald" into the text field and press Submit.'
                                                        -> type "Jerald" into 'the text field',
                                                           click 'the "Submit" button'
    'Select ab, cd and click Submit.'                   -> click '"ab"', click '"cd"', click '"Submit"'
    'Enter the username "u" and the password "p" into the text fields'
                                                        -> type "u" into 'the username field', ...

This is the `grounded` policy's whole intelligence: no model and no page reading of its own;
the targets go to the grounders (DOM, OCR) exactly as written here. The rules know English
(verbs, "both", "named ...", quoted names, lists), not any one task, so what they cannot
read raises NoRule and the episode counts as a failure.
"""

from __future__ import annotations

import re

from tools.actions import BaseAction, Click, Type, Wait

__all__ = ["NoRule", "instruction_actions"]

_PRESS = r"(?:click|press|hit|tap|push)(?:\s+on)?"
_SELECT = r"(?:select|choose|pick|check|tick)"
_FOCUS = r"(?:focus|go)\s+(?:into|on|in|to)"
_ENTER = r"(?:enter|type|input|write|fill in)"
_WAIT = r"wait\s+(\d+(?:\.\d+)?)\s+seconds?"
_QUOTE = r'"([^"]*)"'
# Words that name a kind of element: "the Submit button", "the link 'X'", "button ONE".
_ROLES = ("button", "link", "tab", "checkbox", "field", "textbox", "input", "option", "item", "box")
_LIST_SPLIT = re.compile(r",\s*(?:and\s+)?|\s+and\s+")
# Where one instruction ends and the next begins: a sentence end, or a verb after "and" / "then".
_CLAUSES = re.compile(
    rf'(?<=[.!?])\s+(?=[A-Z])|,?\s+(?:and\s+)?then\s+|,?\s+and\s+(?=(?:{_PRESS}|{_SELECT}|{_FOCUS}|{_ENTER})\b)'
    r'|,\s+(?=(?:click|press|wait)\b)',
    re.IGNORECASE,
)


class NoRule(Exception):
    """No rule reads this instruction."""


def instruction_actions(utterance: str) -> list[BaseAction]:
    """The actions an instruction asks for, in order; NoRule if some part of it is not understood."""
    actions: list[BaseAction] = []
    for clause in _split(utterance):
        actions += _clause(clause)
    if not actions:
        raise NoRule(f"nothing to do in {utterance!r}")
    return actions


def _split(utterance: str) -> list[str]:
    """Clauses, with quoted text kept whole (a quote may hold "and" or a full stop)."""
    quotes: list[str] = []

    def hide(found: re.Match[str]) -> str:
        quotes.append(found.group(0))
        return f"\x00{len(quotes) - 1}\x00"

    hidden = re.sub(_QUOTE, hide, utterance.strip())
    hidden = re.sub(r"\b(?:find|locate)\s+and\s+", "", hidden, flags=re.IGNORECASE)  # "find and click on X"
    clauses = [part.strip(" .!?;") for part in _CLAUSES.split(hidden)]
    return [re.sub(r"\x00(\d+)\x00", lambda m: quotes[int(m.group(1))], part) for part in clauses if part]


def _clause(clause: str) -> list[BaseAction]:
    text = re.sub(r"^(?:now|please|then)\s+", "", clause, flags=re.IGNORECASE)
    # "Close the dialog by clicking the 'x'", "Find and click on ...": the verb that acts.
    text = re.sub(r"^.*?\bby\s+(click|press|tapp|hitt)ing\b", r"\1", text, flags=re.IGNORECASE)
    if (found := re.fullmatch(_WAIT, text, re.IGNORECASE)) is not None:
        return [Wait(seconds=float(found.group(1)))]
    if (found := re.match(rf"{_ENTER}\s+(.*)$", text, re.IGNORECASE)) is not None:
        return _typing(found.group(1))
    if (found := re.match(rf"{_FOCUS}\s+(.*)$", text, re.IGNORECASE)) is not None:
        return [Click(target=_target(found.group(1)))]
    if (found := re.match(rf"{_PRESS}\s+(.*)$", text, re.IGNORECASE)) is not None:
        pressed = text.lower().startswith(("press", "hit", "push"))
        return [Click(target=_target(found.group(1), pressed=pressed))]
    # "Select X from the list", "Select 3 with the slider", "Select 1/2/2016 as the date"
    if (found := re.match(rf"{_SELECT}\s+(.*?)(?:\s+(?:from|in|on|with|using|as)\s+the\s+.*)?$", text, re.I)):
        return [Click(target=_target(item)) for item in _items(found.group(1))]
    if re.match(r"(?:navigate|look|scroll)\s+(?:through|around|at)\b", text, re.IGNORECASE):
        return []  # a description of the page, not an action
    raise NoRule(f"no rule reads {clause!r}")


def _typing(rest: str) -> list[BaseAction]:
    """'"abc" into the text field', 'the password "p" into both text fields',
    'the username "u" and the password "p" into the text fields'."""
    into = re.search(r"^(.*)\s+(?:into|in|to)\s+(.*)$", rest, re.IGNORECASE)  # the last "into"
    values, place = (into.group(1), into.group(2).strip()) if into else (rest, "")
    pairs = re.findall(rf"\bthe\s+(\w+)\s+{_QUOTE}", values)  # 'the username "u"'
    if len(pairs) > 1:
        return [Type(text=value, target=f"the {noun} field") for noun, value in pairs]
    texts = re.findall(_QUOTE, values)
    if len(texts) != 1:
        raise NoRule(f"no single quoted text to type in {rest!r}")
    if (both := re.match(r"both\s+(?:the\s+)?(.*?)s$", place, re.IGNORECASE)) is not None:
        return [Type(text=texts[0], target=f"the {nth} {both.group(1)}") for nth in ("1st", "2nd")]
    if place:
        return [Type(text=texts[0], target=_target(place))]
    return [Type(text=texts[0], target=f"the {pairs[0][0]} field" if pairs else "the text field")]


def _items(listed: str) -> list[str]:
    """'ab, cd and ef' -> ['ab', 'cd', 'ef']; 'nothing' -> []."""
    if listed.strip().lower() in ("nothing", "none", "no items", "no options"):
        return []
    return [item.strip() for item in _LIST_SPLIT.split(listed) if item.strip()]


def _target(phrase: str, *, pressed: bool = False) -> str:
    """A target in the words grounders read best: 'the "X" button' rather than 'the button "X"'."""
    phrase = phrase.strip(" .")
    role = "|".join(_ROLES)
    # 'the folder or file named "X"', 'the button in the dialog labeled "X"'
    if (named := re.search(rf"(?:named|labell?ed|called|titled|that says)\s+{_QUOTE}", phrase)) is not None:
        head = phrase[: named.start()]
        kind = re.match(rf"(?:the|a|an)\s+({role})\b(?!\s+or\b)", head.strip(), re.IGNORECASE)
        return f'the "{named.group(1)}" {kind.group(1)}' if kind else f'"{named.group(1)}"'
    # 'the link "X"', 'button "X"' -> 'the "X" link'
    if (swapped := re.fullmatch(rf"(?:the\s+|a\s+|an\s+)?({role})\s+{_QUOTE}", phrase, re.IGNORECASE)):
        return f'the "{swapped.group(2)}" {swapped.group(1).lower()}'
    # 'button ONE' -> 'the "ONE" button'; but 'Tab #2' is a name (a number names by position)
    if (bare := re.fullmatch(rf"({role})\s+(\S+)", phrase, re.IGNORECASE)) is not None:
        if re.fullmatch(r"#?\d+", bare.group(2)):
            return f'"{phrase}"'
        return f'the "{bare.group(2)}" {bare.group(1).lower()}'
    # 'Submit' after press -> 'the "Submit" button'; a lone name otherwise stays as it is
    if pressed and re.fullmatch(r"[\w#][\w# -]*", phrase) and not re.match(r"(?:the|a|an)\s", phrase, re.I):
        return f'the "{phrase}" button'
    if re.fullmatch(_QUOTE, phrase):
        return phrase
    return phrase if re.match(r"(?:the|a|an)\s", phrase, re.IGNORECASE) else f'"{phrase}"'
