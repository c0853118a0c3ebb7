"""From an action to the code that performs it: what every executor's `execute()` shares.

Each executor keeps its input code in one object with a method per GUI action
(`ActionHandlers`): `tools.browser.input.PageInput` drives a Playwright page, and
`tools.desktop.input.DesktopInput` drives pyautogui. `Dispatcher` files those methods
under the action classes, and finds an action's handler along its class's MRO, so a
subclass of Click is still a click. Before a handler runs, an executor refuses:

- an action it has no handler for (a registered Python tool, say): `handler_for` raises
  ExecutorError, since the caller should not have sent it;
- an action whose target is still words: `refuse_ungrounded` returns the failed result,
  since a grounder must turn the words into screenshot pixels first.

A handler reports a failure of the world that its library does not raise (a point off the
screen, no page to go back to) by raising `ActionFailed`; the executor makes it a result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from tools.actions import (
    Back,
    BaseAction,
    Click,
    Drag,
    Fail,
    Finish,
    Key,
    Move,
    Navigate,
    Scroll,
    Type,
    Wait,
    is_ungrounded,
)
from tools.errors import ExecutorError
from tools.executor import ActionResult

__all__ = ["DRAG_STEPS", "ActionFailed", "ActionHandlers", "Dispatcher", "Handler", "refuse_ungrounded"]

DRAG_STEPS = 10  # intermediate pointer moves in a drag, so pages and applications see a real one

# What the handlers act on: a Playwright page, or the desktop's backends.
Surface = TypeVar("Surface")
SurfaceIn = TypeVar("SurfaceIn", contravariant=True)

# One action's handler: it acts on the surface and returns an optional line of output.
Handler = Callable[[Surface, Any], str | None]


class ActionFailed(Exception):
    """A handler's way to report a failure of the world that the library beneath does not raise."""


class ActionHandlers(Protocol[SurfaceIn]):
    """One method per GUI action. Each performs the action on the surface (its points in
    screenshot pixels) and returns an optional line of output, or raises; `nothing` serves
    Finish and Fail, which end the run without touching the screen."""

    def click(self, surface: SurfaceIn, action: Click, /) -> str | None: ...

    def move(self, surface: SurfaceIn, action: Move, /) -> str | None: ...

    def drag(self, surface: SurfaceIn, action: Drag, /) -> str | None: ...

    def scroll(self, surface: SurfaceIn, action: Scroll, /) -> str | None: ...

    def type(self, surface: SurfaceIn, action: Type, /) -> str | None: ...

    def key(self, surface: SurfaceIn, action: Key, /) -> str | None: ...

    def wait(self, surface: SurfaceIn, action: Wait, /) -> str | None: ...

    def navigate(self, surface: SurfaceIn, action: Navigate, /) -> str | None: ...

    def back(self, surface: SurfaceIn, action: Back, /) -> str | None: ...

    def nothing(self, surface: SurfaceIn, action: BaseAction, /) -> str | None: ...


class Dispatcher(Generic[Surface]):
    """The handler of each action class, for the executor named `executor` (for its errors)."""

    def __init__(self, executor: str, handlers: ActionHandlers[Surface]) -> None:
        self._executor = executor
        self._table: dict[type[BaseAction], Handler[Surface]] = {
            Click: handlers.click,
            Move: handlers.move,
            Drag: handlers.drag,
            Scroll: handlers.scroll,
            Type: handlers.type,
            Key: handlers.key,
            Wait: handlers.wait,
            Navigate: handlers.navigate,
            Back: handlers.back,
            Finish: handlers.nothing,
            Fail: handlers.nothing,
        }

    def handler_for(self, action: BaseAction) -> Handler[Surface]:
        """The handler of `action`'s class or of its nearest base; ExecutorError if none."""
        for cls in type(action).__mro__:
            if cls in self._table:
                return self._table[cls]
        name = type(action).__name__
        raise ExecutorError(f"{self._executor} cannot run {name}; it runs {self.supported()}")

    def supported(self) -> str:
        """The actions this executor runs, by name, for error messages."""
        return ", ".join(sorted(cls.__name__.lower() for cls in self._table))


def refuse_ungrounded(action: BaseAction) -> ActionResult | None:
    """The failed result for an action whose target is still described in words, or None
    for an action whose points are screenshot pixels, ready to run."""
    if not is_ungrounded(action):
        return None
    return ActionResult.failure(
        f"{action.name} names a target described in words; it must be grounded to x and y first"
    )
