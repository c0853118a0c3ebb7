"""A point on the screen, said in words that a grounder finds again.

In a browser: the element under the point, as its role and accessible name ('the "Sign in"
button'), with an ordinal when that name repeats ('the second "Delete" button'). The words are
checked by the DOM grounder itself before they are kept: the first ordinal whose answer holds
the point wins. On a desktop (or with no page to ask): the OCR text on the point, else the
nearest text beside it (a field's label, to its left or above).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agent.grounding import Box
from agent.grounding.text_match import TextLine
from tools.actions import BaseAction, Click, Move, Scroll
from tools.errors import AgentError
from tools.executor import Executor, Observation

if TYPE_CHECKING:
    from tools.browser import BrowserExecutor

__all__ = ["ROLE_NOUNS", "describe_element", "describe_text", "note_target"]

log = logging.getLogger(__name__)

# ARIA role -> the word a description uses for it (describe.py reads these back as the role).
ROLE_NOUNS = {"button": "button", "link": "link", "textbox": "field", "searchbox": "search box",
              "checkbox": "checkbox", "radio": "radio button", "combobox": "dropdown",
              "menuitem": "menu item",
              "tab": "tab", "heading": "heading", "img": "image", "option": "option", "switch": "switch",
              "slider": "slider", "listitem": "list item", "cell": "cell", "row": "row"}
_ORDINALS = ("", "second ", "third ", "fourth ", "fifth ", "sixth ", "seventh ", "eighth ", "ninth ",
             "tenth ")
MAX_WORDS = 80  # characters: a longer name is a paragraph, not a control's
NEAR_PX = 160  # device pixels: how far beside a point its label may be
ON_PX = 10  # device pixels: how far around its text a point is still on it


def _quoted(name: str) -> str:
    return f"'{name}'" if '"' in name else f'"{name}"'


def describe_element(browser: BrowserExecutor, observation: Observation, x: int,
                     y: int) -> dict[str, Any] | None:
    """{description, role, name, box} of the element under (x, y), its words checked by the DOM
    grounder on this page; None when the element has no name, or no words find it again."""
    from agent.grounding.dom import DOMGrounder
    from tools.errors import GroundingError

    info = browser.element_at(x, y)
    if info is None or not info.name or len(info.name) > MAX_WORDS:
        return None
    noun = ROLE_NOUNS.get(info.role or "")
    base = _quoted(info.name) + (f" {noun}" if noun else "")
    grounder = DOMGrounder(browser, scroll=False)
    for ordinal in _ORDINALS:
        description = f"the {ordinal}{base}"
        try:
            found = grounder.locate(observation, description)
        except GroundingError:
            break  # no such element, or fewer of them than this ordinal
        if found.box.contains(x, y):
            return {"description": description, "role": info.role, "name": info.name, "box": list(info.box)}
    return None


def describe_text(lines: Sequence[TextLine], x: int, y: int, scale: float = 1.0) -> str | None:
    """The words of the OCR line on (x, y), else of the nearest line to its left or above
    (within NEAR_PX device pixels): 'the "Save" text', or 'the "Name" field' for a label."""
    margin = ON_PX * scale  # a button's text is a little smaller than the button
    on = sorted((abs(line.box.center[0] - x) + abs(line.box.center[1] - y), line.text.strip())
                for line in lines if line.text.strip()
                and line.box.left - margin <= x <= line.box.right + margin
                and line.box.top - margin <= y <= line.box.bottom + margin)
    if on:
        return f"the {_quoted(on[0][1])} text"
    reach = NEAR_PX * scale

    def gap(box: Box) -> float | None:
        if box.right <= x and box.top - reach / 4 <= y <= box.bottom + reach / 4:  # a label to the left
            return x - box.right
        if box.bottom <= y and box.left - reach / 4 <= x <= box.right + reach:  # a label above
            return y - box.bottom
        return None

    near = sorted((g, line.text.strip()) for line in lines if (g := gap(line.box)) is not None
                  and g <= reach and line.text.strip())
    return f"the {_quoted(near[0][1])} field" if near else None


def note_target(executor: Executor | None, action: BaseAction | None,
                observation: Observation | None) -> dict[str, Any] | None:
    """What a compiled script needs of an agent's step that acted on a pixel: the element under
    it, in words, read from the live page before the action changes it ({"element": {...}}).
    None on a desktop, for an action with a target in words, or when the page cannot say."""
    if executor is None or observation is None or not isinstance(action, Click | Move | Scroll):
        return None
    if action.target is not None or action.x is None or action.y is None:
        return None
    element_at = getattr(executor, "element_at", None)
    if element_at is None:
        return None
    try:
        element = describe_element(executor, observation, round(action.x), round(action.y))  # type: ignore[arg-type]
    except AgentError as exc:  # the page went away: the compiler falls back on OCR
        log.debug("no element noted at (%s, %s): %s", action.x, action.y, exc)
        return None
    return {"element": element} if element is not None else None
