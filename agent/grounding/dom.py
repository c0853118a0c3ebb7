"""Grounding in a browser page's DOM: by role, accessible name and visible text, with no model.

"the Sign in button" is a visible element with role button named "Sign in"; "the email field"
a textbox labelled or placeholdered "email"; "the Settings button" an icon button known only by
its `aria-label` or `title`; "the Hover me box" the smallest element whose text is "Hover me".
Descriptions are read by describe.py, so ordinals ("the second Delete button"), neighbours
("the Delete button next to Bob": the nearest on the same row) and containers ("the OK button
in the Save dialog") work here as in every grounder. The search runs in every frame (iframes,
at their offsets) and through open shadow roots (dom_script.py). Among the matches, an exact
accessible name beats words inside a longer text, an element with the asked role beats one
without, an interactive element beats a static one, and the innermost element wins, so an
instruction paragraph that says "Click on the OK button" never beats the button.

A target below the fold is scrolled into view and measured again: its Grounding's `tried`
says "dom: scrolled ... into view", and the caller observes again before it acts. A target
that is there but hidden, or a description that names neither a role nor a text, is a
GroundingError, so a cascade goes on to the next grounder.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.grounding import Box, Grounding
from agent.grounding.describe import Description, describe
from agent.grounding.dom_script import FIND, FRAME_OFFSET, RECT, SCROLL
from tools.errors import GroundingError
from tools.executor import Observation

if TYPE_CHECKING:
    from playwright.sync_api import Frame

    from tools.browser import BrowserExecutor

__all__ = ["SCROLLED", "DOMGrounder", "read_description"]

log = logging.getLogger(__name__)

SCROLLED = "dom: scrolled the target into view; observe again before acting"
# How sure a match is, by how the name matched: exactly, as words in a longer text, as a
# substring, or no name asked for (a role alone: "the text field").
_SCORES = {4: 1.0, 2: 0.8, 1: 0.6, 0: 0.9}
# Roles that a described role also accepts ("the Settings icon" may be an img or a button).
_ALSO = {"textbox": ("searchbox",), "searchbox": ("textbox",), "img": ("button", "link"),
         "menuitem": ("menuitemcheckbox", "menuitemradio", "option"), "switch": ("checkbox",),
         "cell": ("gridcell", "columnheader", "rowheader"), "dialog": ("alertdialog",),
         "combobox": ("listbox",), "option": ("menuitem",)}


def read_description(description: str) -> tuple[str | None, str]:
    """(ARIA role or None, the name to look for) in a description such as "the 'OK' button"."""
    wanted = describe(description)
    return wanted.role, wanted.name


@dataclass(frozen=True)
class _Candidate:
    frame: Frame
    index: int  # in the frame's window.__igEls
    order: tuple[int, int]  # (frame, document order): reading order across frames
    tier: tuple[int, ...]
    hidden: bool
    rect: tuple[float, float, float, float]  # left, top, width, height in main-viewport CSS px
    clip: tuple[float, float, float, float]  # the visible part of its frame, same units


class DOMGrounder:
    """Grounds targets on the active tab of `browser`, in the pixels of its observations.
    `scroll`: bring a target that is off screen into view (else it is a GroundingError)."""

    name = "dom"

    def __init__(self, browser: BrowserExecutor, *, scroll: bool = True) -> None:
        self.browser = browser
        self.scroll = scroll

    def locate(self, observation: Observation, description: str) -> Grounding:
        wanted = describe(description)
        if not wanted.name and wanted.role is None:
            raise GroundingError(f"the DOM grounder cannot read {description!r}: name the element's text "
                                 "or label and its kind, as in 'the Sign in button' or 'the email field'")
        candidates, anchors, no_container = self._search(wanted)
        if no_container:
            raise GroundingError(f"no {wanted.within!r} container (a dialog, form or section so named) "
                                 f"on the page for {description!r}")
        shown = [c for c in candidates if not c.hidden]
        if not candidates:
            raise GroundingError(f"no element on the page matches {description!r}: describe it by its "
                                 "visible text or label, as in 'the Sign in button' or 'the email field'")
        best = max(c.tier for c in shown) if shown else None
        # Hidden when nothing shows, or only words inside a longer text while the element hides.
        if best is None or (best[0] < 4 and max(c.tier for c in candidates) > best):
            raise GroundingError(f"{description!r} is on the page but hidden: "
                                 "open or reveal what holds it first")
        pool = sorted((c for c in shown if c.tier == best), key=lambda c: c.order)
        chosen = self._choose(wanted, pool, anchors, description)
        box = _box(chosen.rect, chosen.clip, observation)
        if box is not None:
            return Grounding.of(box, "dom", _SCORES.get(best[0], 0.5))
        if not self.scroll:
            raise GroundingError(f"{description!r} is on the page but off screen: scroll to it first")
        return self._scrolled(chosen, observation, description)

    def _search(self, wanted: Description) -> tuple[list[_Candidate], list[tuple[float, ...]], bool]:
        """Every candidate in every frame, and the rectangles of the `near` anchor."""
        from playwright.sync_api import Error

        query = {"name": wanted.name, "roles": _roles(wanted.role), "within": wanted.within,
                 "near": wanted.near}
        candidates: list[_Candidate] = []
        anchors: list[tuple[float, ...]] = []
        missing = 0
        frames = self._frames()
        for number, (frame, (dx, dy, cw, ch)) in enumerate(frames):
            try:
                found: dict[str, Any] = frame.evaluate(FIND, query)
            except Error as exc:  # the frame navigated or went away meanwhile
                log.debug("dom grounding skipped a frame: %s", exc)
                continue
            if found.get("missing"):
                missing += 1
                continue
            vw, vh = found["view"]
            clip = (dx, dy, min(cw, vw), min(ch, vh))
            for c in found["cands"]:
                x, y, w, h = c["rect"]
                candidates.append(_Candidate(frame, c["i"], (number, c["order"]), tuple(c["tier"]),
                                             c["hidden"], (x + dx, y + dy, w, h), clip))
            anchors += [(x + dx, y + dy, w, h) for x, y, w, h in found["anchors"]]
        return candidates, anchors, bool(wanted.within) and missing == len(frames)

    def _frames(self) -> list[tuple[Frame, tuple[float, float, float, float]]]:
        """Each frame with its content's (left, top, width, height) in main-viewport CSS px."""
        from playwright.sync_api import Error

        page = self.browser.page
        width, height = self.browser.viewport
        placed: dict[Frame, tuple[float, float, float, float]] = {page.main_frame: (0, 0, width, height)}
        out = [(page.main_frame, placed[page.main_frame])]
        pending = list(page.main_frame.child_frames)
        while pending:
            frame = pending.pop(0)
            parent = frame.parent_frame
            if parent not in placed:
                continue
            try:
                element = frame.frame_element()
                x, y, w, h = element.evaluate(FRAME_OFFSET)
            except Error:  # detached meanwhile
                continue
            px, py, pw, ph = placed[parent]
            left, top = max(px + x, px), max(py + y, py)
            right, bottom = min(px + x + w, px + pw), min(py + y + h, py + ph)
            placed[frame] = (px + x, py + y, w, h)
            if right > left and bottom > top:  # some of it shows
                out.append((frame, placed[frame]))
            pending += frame.child_frames
        return out

    @staticmethod
    def _choose(wanted: Description, pool: list[_Candidate], anchors: list[tuple[float, ...]],
                description: str) -> _Candidate:
        if wanted.near is not None:
            if not anchors:
                raise GroundingError(f"nothing on the page reads {wanted.near!r}, "
                                     f"which {description!r} is next to")
            pool = _nearest_first(pool, anchors, wanted.direction)
            if wanted.ordinal is None:
                return pool[0]
        if wanted.ordinal is not None:
            index = wanted.ordinal - 1 if wanted.ordinal > 0 else len(pool) + wanted.ordinal
            if not 0 <= index < len(pool):
                raise GroundingError(f"{description!r}: only {len(pool)} such element(s) on the page")
            return pool[index]
        return pool[0]

    def _scrolled(self, chosen: _Candidate, observation: Observation, description: str) -> Grounding:
        from playwright.sync_api import Error

        try:
            chosen.frame.evaluate(SCROLL, chosen.index)
            frame_box = dict(self._frames()).get(chosen.frame)
            x, y, w, h = chosen.frame.evaluate(RECT, chosen.index)
        except Error as exc:
            raise GroundingError(f"{description!r} went away while it was scrolled into view") from exc
        if frame_box is None:
            raise GroundingError(f"{description!r} is in a frame that is off screen")
        dx, dy, cw, ch = frame_box
        box = _box((x + dx, y + dy, w, h), (dx, dy, cw, ch), observation)
        if box is None:
            raise GroundingError(f"{description!r} is on the page but could not be scrolled into view")
        return Grounding(box, box.center, _SCORES.get(chosen.tier[0], 0.5), "dom", tried=(SCROLLED,))


def _roles(role: str | None) -> list[str]:
    return [] if role is None else [role, *_ALSO.get(role, ())]


def _nearest_first(pool: list[_Candidate], anchors: list[tuple[float, ...]],
                   direction: str | None) -> list[_Candidate]:
    """The candidates by distance to the nearest anchor; on its row (or in `direction`) first."""

    def rank(c: _Candidate) -> tuple[int, float]:
        best = (2, float("inf"))
        cx, cy = c.rect[0] + c.rect[2] / 2, c.rect[1] + c.rect[3] / 2
        for ax, ay, aw, ah in anchors:
            mx, my = ax + aw / 2, ay + ah / 2
            same_row = c.rect[1] < ay + ah and ay < c.rect[1] + c.rect[3]
            if direction == "right":
                fits = cx > mx and same_row
            elif direction == "left":
                fits = cx < mx and same_row
            elif direction == "below":
                fits = cy > my
            elif direction == "above":
                fits = cy < my
            else:
                fits = same_row
            best = min(best, (0 if fits else 1, ((cx - mx) ** 2 + (cy - my) ** 2) ** 0.5))
        return best

    return sorted(pool, key=rank)


def _box(rect: tuple[float, ...], clip: tuple[float, ...], observation: Observation) -> Box | None:
    """The element's visible box in screenshot pixels, or None when none of it is on screen."""
    x, y, w, h = rect
    cx, cy, cw, ch = clip
    left, top = max(x, cx, 0), max(y, cy, 0)
    right, bottom = min(x + w, cx + cw), min(y + h, cy + ch)
    if right - left < 1 or bottom - top < 1:
        return None
    to_screen = observation.geometry.to_screenshot
    sl, st = to_screen(left, top)
    sr, sb = to_screen(right, bottom)
    width, height = observation.size
    if sr <= 0 or sb <= 0 or sl >= width or st >= height:
        return None
    return Box(max(round(sl), 0), max(round(st), 0),
               min(round(sr) - 1, width - 1), min(round(sb) - 1, height - 1))
