"""The reference policy: a scripted solver for a subset of MiniWoB++ that reads the page to
decide and acts only through GUI actions, as an agent must.

Each solver reads the utterance and the DOM (where an element is, what it says, whether it
is checked) and yields `Click`, `Type` and `Key` actions whose points are screenshot pixels:
an element's box, from `getBoundingClientRect()`, through the episode's `Geometry`. Nothing
here clicks, focuses or sets a value through page scripts, so a reference episode exercises
the same input path, coordinates and timing as a model's. It is the ceiling the other
policies are measured against, and the workload of bench/miniwob_throughput.py.

A solver is a generator: the caller runs each action, then resumes it, so the solver reads
the page again after every action (a tab that opened, a menu that appeared).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from tools.actions import BaseAction, Click, Key, Type
from tools.errors import TaskError

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tools.executor import Geometry

__all__ = ["REFERENCE_TASKS", "PageReader", "ReferenceFailed", "reference_actions"]

WAIT_MS = 3_000  # the most a solver waits for something to appear (an autocomplete menu)

# Boxes of the visible elements that match a CSS selector and, if given, a text (trimmed, exact).
_BOXES = """([selector, text]) => [...document.querySelectorAll(selector)]
  .filter((e) => text === null || e.textContent.replace(/\\s+/g, " ").trim() === text)
  .map((e) => e.getBoundingClientRect())
  .filter((r) => r.width > 0 && r.height > 0)
  .map((r) => [r.left, r.top, r.right, r.bottom])"""


class ReferenceFailed(Exception):
    """The page did not hold what the utterance named: the solver gives up on this episode."""


class PageReader:
    """What a solver may do with the page: read it. Points come back in screenshot pixels."""

    def __init__(self, page: Page, geometry: Geometry) -> None:
        self.page = page
        self.geometry = geometry

    def js(self, script: str, arg: Any = None) -> Any:
        return self.page.evaluate(script, arg)

    def boxes(self, selector: str, text: str | None = None) -> list[tuple[float, float, float, float]]:
        """CSS-pixel boxes (left, top, right, bottom) of the visible matches, in document order."""
        return [(left, top, right, bottom) for left, top, right, bottom in self.js(_BOXES, [selector, text])]

    def point(self, selector: str, text: str | None = None, index: int = 0) -> tuple[int, int]:
        """The screenshot pixel at the centre of the `index`-th visible match."""
        found = self.boxes(selector, text)
        if len(found) <= index:
            what = selector + (f" with text {text!r}" if text is not None else "")
            raise ReferenceFailed(f"no visible {what} on the page")
        return self.to_pixel(found[index])

    def to_pixel(self, box: tuple[float, float, float, float]) -> tuple[int, int]:
        left, top, right, bottom = box
        x, y = self.geometry.to_screenshot((left + right) / 2, (top + bottom) / 2)
        width, height = self.geometry.screenshot_size
        if not (0 <= x < width and 0 <= y < height):
            raise ReferenceFailed(f"the element at ({x:.0f}, {y:.0f}) is outside the task area")
        return round(x), round(y)

    def click(self, selector: str, text: str | None = None, index: int = 0) -> Click:
        x, y = self.point(selector, text, index)
        return Click(x=x, y=y)

    def click_box(self, box: list[float] | tuple[float, ...]) -> Click:
        """A click at the centre of a CSS-pixel box (left, top, right, bottom) read from the page."""
        left, top, right, bottom = box
        x, y = self.to_pixel((left, top, right, bottom))
        return Click(x=x, y=y)

    def wait(self, predicate: str, arg: Any = None, timeout_ms: float = WAIT_MS) -> bool:
        """Wait until the page's `predicate` holds; False if it never did."""
        from playwright.sync_api import TimeoutError

        try:
            self.page.wait_for_function(predicate, arg=arg, timeout=timeout_ms, polling="raf")
        except TimeoutError:
            return False
        return True


Solver = Callable[[PageReader, str], Iterator[BaseAction]]


def _quoted(utterance: str, index: int = 0) -> str:
    found = re.findall(r'"([^"]*)"', utterance)
    if len(found) <= index:
        raise ReferenceFailed(f"the utterance quotes no text: {utterance!r}")
    return found[index]


def _match(pattern: str, utterance: str) -> re.Match[str]:
    found = re.search(pattern, utterance)
    if found is None:
        raise ReferenceFailed(f"unexpected utterance: {utterance!r}")
    return found


def click_button(view: PageReader, utterance: str) -> Iterator[BaseAction]:
    yield view.click("#area button", _quoted(utterance))


def click_button_sequence(view: PageReader, utterance: str) -> Iterator[BaseAction]:
    first, second = _match(r"[Cc]lick button (\w+), then click button (\w+)", utterance).groups()
    yield view.click("#area button", first)
    yield view.click("#area button", second)


def click_link(view: PageReader, utterance: str) -> Iterator[BaseAction]:
    yield view.click("#area span.alink", _quoted(utterance))


def click_tab(view: PageReader, utterance: str) -> Iterator[BaseAction]:
    yield view.click("#area ul a", _match(r"Tab #\d+", utterance).group(0))


def _labelled_input(view: PageReader, name: str) -> Click:
    """A click on the checkbox or radio button inside the <label> that reads `name`."""
    boxes = view.js("""(name) => [...document.querySelectorAll('#area label')]
        .filter((l) => l.textContent.trim() === name)
        .map((l) => l.querySelector('input').getBoundingClientRect())
        .map((r) => [r.left, r.top, r.right, r.bottom])""", name)
    if not boxes:
        raise ReferenceFailed(f"no option labelled {name!r}")
    return view.click_box(boxes[0])


def click_checkboxes(view: PageReader, utterance: str) -> Iterator[BaseAction]:
    names = _match(r"^Select (.*) and click Submit\.?$", utterance).group(1)
    for name in ([] if names == "nothing" else names.split(", ")):
        yield _labelled_input(view, name)
    yield view.click("#area button", "Submit")


def click_option(view: PageReader, utterance: str) -> Iterator[BaseAction]:
    yield _labelled_input(view, _match(r"^Select (.*) and click Submit\.?$", utterance).group(1))
    yield view.click("#area button", "Submit")


def click_dialog(view: PageReader, utterance: str) -> Iterator[BaseAction]:
    yield view.click(".ui-dialog-titlebar-close")


def click_dialog_2(view: PageReader, utterance: str) -> Iterator[BaseAction]:
    label = _quoted(utterance)
    if label == "x":
        yield view.click(".ui-dialog-titlebar-close")
    else:
        yield view.click(".ui-dialog-buttonpane button", label)


def _enter(view: PageReader, field: str, text: str, index: int = 0) -> Iterator[BaseAction]:
    yield view.click(field, None, index)
    yield Type(text=text)


def enter_text(view: PageReader, utterance: str) -> Iterator[BaseAction]:
    yield from _enter(view, "#area input", _quoted(utterance))
    yield view.click("#area button", "Submit")


def enter_text_2(view: PageReader, utterance: str) -> Iterator[BaseAction]:
    text = _quoted(utterance)
    text = text.upper() if "upper case" in utterance else text.lower()
    yield from _enter(view, "#area input", text)
    yield view.click("#area button", "Submit")


def focus_text(view: PageReader, utterance: str) -> Iterator[BaseAction]:
    yield view.click("#area input")


def focus_text_2(view: PageReader, utterance: str) -> Iterator[BaseAction]:
    ordinal = _match(r"(\d)(?:st|nd|rd|th) input", utterance).group(1)
    yield view.click("#area input", None, int(ordinal) - 1)


def enter_password(view: PageReader, utterance: str) -> Iterator[BaseAction]:
    password = _quoted(utterance)
    for index in range(2):
        yield from _enter(view, "#area input[type=password]", password, index)
    yield view.click("#area button", "Submit")


def login_user(view: PageReader, utterance: str) -> Iterator[BaseAction]:
    username, password = _quoted(utterance, 0), _quoted(utterance, 1)
    for label, text in (("username", username), ("password", password)):
        yield _field_by_label(view, label)
        yield Type(text=text)
    yield view.click("#area button", "Login")


def _field_by_label(view: PageReader, label: str) -> Click:
    """A click on the field that the <label> reading `label` (any case) names or precedes."""
    box = view.js("""(label) => {
        const l = [...document.querySelectorAll('#area label')]
            .find((l) => l.textContent.trim().toLowerCase() === label);
        const field = l && (l.control || l.parentElement.querySelector('input, textarea'));
        if (!field) return null;
        const r = field.getBoundingClientRect();
        return [r.left, r.top, r.right, r.bottom];
    }""", label)
    if box is None:
        raise ReferenceFailed(f"no field labelled {label!r}")
    return view.click_box(box)


def click_widget(view: PageReader, utterance: str) -> Iterator[BaseAction]:
    kind = _quoted(utterance)
    yield view.click(f'#area .widget [data-type="{kind}"]')


def choose_list(view: PageReader, utterance: str) -> Iterator[BaseAction]:
    wanted = _match(r"^Select (.*) from the list", utterance).group(1)
    options, selected = view.js("""() => { const s = document.querySelector('#area select');
        return [[...s.options].map((o) => o.textContent.trim()), s.selectedIndex]; }""")
    if wanted not in options:
        raise ReferenceFailed(f"{wanted!r} is not among the options {options}")
    yield view.click("#area select")
    moves = options.index(wanted) - selected
    for _ in range(abs(moves)):
        yield Key(keys=("down",) if moves > 0 else ("up",))
    yield Key(keys=("enter",))
    yield view.click("#area button", "Submit")


def use_autocomplete(view: PageReader, utterance: str) -> Iterator[BaseAction]:
    start = _quoted(utterance)
    end = _quoted(utterance, 1) if "ends with" in utterance else ""
    yield from _enter(view, "#area input", start)
    shown = "() => [...document.querySelectorAll('ul.ui-autocomplete li')].some((li) => li.offsetHeight > 0)"
    if not view.wait(shown):
        raise ReferenceFailed(f"no suggestions appeared for {start!r}")
    items = view.js("() => [...document.querySelectorAll('ul.ui-autocomplete li')]"
                    ".map((li) => li.textContent.trim())")
    fitting = [index for index, item in enumerate(items) if item.startswith(start) and item.endswith(end)]
    if not fitting:
        raise ReferenceFailed(f"no suggestion starts with {start!r} and ends with {end!r}: {items}")
    yield view.click("ul.ui-autocomplete li", None, fitting[0])
    yield view.click("#area button", "Submit")


def navigate_tree(view: PageReader, utterance: str) -> Iterator[BaseAction]:
    name = _quoted(utterance)
    for _ in range(8):  # at most one click per level of folders, and the tree is 2 deep
        if view.boxes("#tree span", name):
            yield view.click("#tree span", name)
            return
        # Open the closed folder on the way to the first item with that name.
        closed = view.js("""(name) => {
            const item = [...document.querySelectorAll('#tree span')].find((s) => s.textContent === name);
            if (!item) return null;
            let li = item.closest('li').parentElement.closest('li');
            const path = [];
            for (; li; li = li.parentElement.closest('li')) path.unshift(li);
            const shut = path.find((l) => l.querySelector(':scope > ul').offsetHeight === 0);
            if (!shut) return null;
            const r = shut.querySelector(':scope > span').getBoundingClientRect();
            return [r.left, r.top, r.right, r.bottom];
        }""", name)
        if closed is None:
            raise ReferenceFailed(f"no item named {name!r} in the tree")
        yield view.click_box(closed)
    raise ReferenceFailed(f"{name!r} did not come into view")


SOLVERS: dict[str, Solver] = {
    "click-button": click_button, "click-button-sequence": click_button_sequence, "click-link": click_link,
    "click-tab": click_tab, "click-checkboxes": click_checkboxes, "click-option": click_option,
    "click-dialog": click_dialog, "click-dialog-2": click_dialog_2, "enter-text": enter_text,
    "enter-text-2": enter_text_2, "focus-text": focus_text, "focus-text-2": focus_text_2,
    "enter-password": enter_password, "login-user": login_user, "click-widget": click_widget,
    "choose-list": choose_list, "use-autocomplete": use_autocomplete, "navigate-tree": navigate_tree,
}
REFERENCE_TASKS: tuple[str, ...] = tuple(SOLVERS)


def reference_actions(task: str, view: PageReader, utterance: str) -> Iterator[BaseAction]:
    """The reference policy's actions for one episode of `task`, read off the page as it goes.
    TaskError for a task it does not solve; ReferenceFailed from inside if the page disagrees."""
    solver = SOLVERS.get(task)
    if solver is None:
        raise TaskError(f"the reference policy does not solve {task!r}; it solves "
                        f"{', '.join(REFERENCE_TASKS)}")
    return solver(view, utterance)
