"""Grounding in a browser page's DOM: by role, label and visible text, with no model.

"the Sign in button" is the first visible element with role button whose accessible name
holds "Sign in"; "the email field" a textbox labelled or placeholdered "email"; "the Hover
me box" an element whose text holds "Hover me". Exact and fast where the markup is good,
and it needs no GPU: `internvl-agent script --grounder dom`. Targets that only a picture
shows (an unlabelled icon) need the model's grounder.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from agent.grounding import Box
from tools.errors import GroundingError
from tools.executor import Observation

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

    from tools.browser import BrowserExecutor

__all__ = ["DOMGrounder", "read_description"]

# Words that name a kind of element, longest first, and the ARIA role each stands for.
_ROLE_WORDS = {
    "radio button": "radio", "check box": "checkbox", "text field": "textbox", "text box": "textbox",
    "search box": "searchbox", "input field": "textbox", "menu item": "menuitem", "drop-down": "combobox",
    "dropdown": "combobox", "checkbox": "checkbox", "textbox": "textbox", "button": "button", "link": "link",
    "field": "textbox", "input": "textbox", "tab": "tab", "heading": "heading", "image": "img",
    "option": "option", "slider": "slider", "switch": "switch",
}
# Nouns that name no role ("the Hover me box"): dropped, and the rest is looked for as text.
_GENERIC_WORDS = ("box", "area", "element", "label", "text", "icon", "section", "panel", "item")
_ARTICLE = re.compile(r"^(the|a|an)\s+", re.IGNORECASE)


def read_description(description: str) -> tuple[str | None, str]:
    """(ARIA role or None, the name to look for) in a description such as "the 'OK' button"."""
    text = _ARTICLE.sub("", description.strip()).strip()
    lowered = text.lower()
    for words, role in _ROLE_WORDS.items():
        if lowered == words or lowered.endswith(" " + words):
            return role, _unquote(text[: len(text) - len(words)])
    for word in _GENERIC_WORDS:
        if lowered.endswith(" " + word):
            return None, _unquote(text[: len(text) - len(word)])
    return None, _unquote(text)


def _unquote(name: str) -> str:
    return name.strip().strip("\"'\u201c\u201d\u2018\u2019").strip()  # straight or curly quotes


class DOMGrounder:
    """Grounds targets on the active tab of `browser`, in the pixels of its observations."""

    def __init__(self, browser: BrowserExecutor) -> None:
        self.browser = browser

    def locate(self, observation: Observation, description: str) -> Box:
        role, name = read_description(description)
        page = self.browser.page
        for locator in self._candidates(page, role, name):
            box = _on_screen_box(locator.filter(visible=True), observation)
            if box is not None:
                return box
        raise GroundingError(
            f"no element on the page matches {description!r}: describe it by its visible text or label, "
            "as in 'the Sign in button' or 'the email field'"
        )

    @staticmethod
    def _candidates(page: Page, role: str | None, name: str) -> list[Locator]:
        """The ways to find it, the most specific first."""
        found: list[Locator] = []
        if role is not None:
            found.append(page.get_by_role(role, name=name) if name else page.get_by_role(role))  # type: ignore[arg-type]
        if name:
            found += [page.get_by_label(name), page.get_by_placeholder(name), page.get_by_text(name),
                      page.get_by_alt_text(name), page.get_by_title(name)]
        return found


def _on_screen_box(visible: Locator, observation: Observation) -> Box | None:
    """The first matching element's box in screenshot pixels, if there is one on the screen."""
    from playwright.sync_api import Error

    try:
        if visible.count() == 0:  # counting never waits; bounding_box would, for an element to come
            return None
        rect = visible.first.bounding_box(timeout=1_000)  # CSS pixels of the viewport
    except Error:  # it went away in between, or the page navigated
        return None
    if rect is None or rect["width"] <= 0 or rect["height"] <= 0:
        return None
    to_screen = observation.geometry.to_screenshot
    left, top = to_screen(rect["x"], rect["y"])
    right, bottom = to_screen(rect["x"] + rect["width"] - 1, rect["y"] + rect["height"] - 1)
    width, height = observation.size
    if right < 0 or bottom < 0 or left >= width or top >= height:
        return None  # scrolled out of sight: the agent cannot click it where it is
    return Box(max(round(left), 0), max(round(top), 0),
               min(round(right), width - 1), min(round(bottom), height - 1))
