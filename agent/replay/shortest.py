"""What of a run a replay repeats: the steps that worked, once each.

Dropped: steps that failed (a reply that did not parse, an action that did not run, a target
not found), finish and fail, calls of Python tools (a script drives the screen only), a step
the model took back (a `back` drops the step that led there, ctrl+z the typing before it), and
repeats: a block of one to three steps done again on a screen that had not changed is one
block. Each drop is said in words, for the compiled file's header.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agent.trajectory import Step
from tools.actions import GUI_ACTION_NAMES

__all__ = ["Kept", "shortest_replay"]

_UNDO_KEYS = (("ctrl", "z"), ("cmd", "z"), ("meta", "z"))
_ENDINGS = ("finish", "fail")
MAX_BLOCK = 3


@dataclass(frozen=True)
class Kept:
    """The steps a replay repeats, in order, and why each other step was left out."""

    steps: tuple[Step, ...]
    dropped: tuple[str, ...]


def shortest_replay(steps: Sequence[Step], same_screen: Callable[[Step, Step], bool]) -> Kept:
    """The shortest replay of what worked in `steps`; `same_screen(a, b)`: whether the two steps
    were taken on the same screen (the screenshots are equal)."""
    kept: list[Step] = []
    dropped: list[str] = []
    for step in steps:
        name = (step.action or {}).get("action")
        if not step.ok or name is None:
            dropped.append(f"step {step.index}: failed")
        elif name in _ENDINGS:
            continue
        elif name not in GUI_ACTION_NAMES:
            dropped.append(f"step {step.index}: the tool {name!r} (a script drives the screen only)")
        elif name == "back" and kept:
            undone = kept.pop()
            dropped.append(f"steps {undone.index} and {step.index}: taken back")
        elif name == "key" and _is_undo(step) and kept and (kept[-1].action or {}).get("action") == "type":
            undone = kept.pop()
            dropped.append(f"steps {undone.index} and {step.index}: typing undone")
        else:
            kept.append(step)
            _collapse(kept, dropped, same_screen)
    return Kept(tuple(kept), tuple(dropped))


def _is_undo(step: Step) -> bool:
    keys = tuple(str(k).lower() for k in (step.action or {}).get("keys") or ())
    return keys in _UNDO_KEYS


def _collapse(kept: list[Step], dropped: list[str], same_screen: Callable[[Step, Step], bool]) -> None:
    """If the last block of `kept` repeats the block before it, on the same screen, drop it."""
    for size in range(1, MAX_BLOCK + 1):
        if len(kept) < 2 * size:
            return
        first, again = kept[-2 * size:-size], kept[-size:]
        if all(_same_action(a, b) for a, b in zip(first, again, strict=True)) \
                and same_screen(first[0], again[0]):
            del kept[-size:]
            indices = ", ".join(str(s.index) for s in again)
            dropped.append(f"step(s) {indices}: a repeat of what was just done, on an unchanged screen")
            return


def _same_action(a: Step, b: Step) -> bool:
    return a.action == b.action
