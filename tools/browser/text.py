"""The text a page shows: what `expect_text` steps wait for and a person could read.

`page_text` joins the rendered text (`innerText`, which leaves out what CSS hides) of the
page and of each of its frames, with whitespace runs collapsed to one space. A frame that
cannot be read right now (mid-navigation, detached) counts as empty: callers poll.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Page

__all__ = ["page_text"]

_INNER_TEXT = "() => document.body ? document.body.innerText : ''"


def page_text(page: Page) -> str:
    """The rendered text of `page` and its frames, top frame first, whitespace collapsed."""
    from playwright.sync_api import Error

    parts = []
    for frame in page.frames:
        try:
            parts.append(frame.evaluate(_INNER_TEXT))
        except Error:
            continue
    return " ".join(" ".join(parts).split())
