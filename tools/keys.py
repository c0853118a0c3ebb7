"""The canonical key names, and their spelling in each executor.

The model and the action union use the canonical names only. Each executor maps them
through its own table here, so a key that one backend cannot press is known up front.
"""

from __future__ import annotations

import difflib
import string

__all__ = ["CANONICAL_KEYS", "canonical_key", "to_playwright", "to_pyautogui"]

# canonical name -> (Playwright name, pyautogui name)
_NAMED: dict[str, tuple[str, str]] = {
    "ctrl": ("Control", "ctrl"),
    "shift": ("Shift", "shift"),
    "alt": ("Alt", "alt"),
    "meta": ("Meta", "win"),
    "enter": ("Enter", "enter"),
    "tab": ("Tab", "tab"),
    "escape": ("Escape", "esc"),
    "backspace": ("Backspace", "backspace"),
    "delete": ("Delete", "delete"),
    "insert": ("Insert", "insert"),
    "space": (" ", "space"),
    "up": ("ArrowUp", "up"),
    "down": ("ArrowDown", "down"),
    "left": ("ArrowLeft", "left"),
    "right": ("ArrowRight", "right"),
    "home": ("Home", "home"),
    "end": ("End", "end"),
    "pageup": ("PageUp", "pageup"),
    "pagedown": ("PageDown", "pagedown"),
    "capslock": ("CapsLock", "capslock"),
    **{f"f{n}": (f"F{n}", f"f{n}") for n in range(1, 13)},
}
# Printable single characters are their own names in both backends.
_CHARS = string.ascii_lowercase + string.digits + "`-=[]\\;',./"

# Names people and models commonly write, folded onto the canonical ones.
_ALIASES: dict[str, str] = {
    "control": "ctrl",
    "cmd": "meta",
    "command": "meta",
    "super": "meta",
    "win": "meta",
    "windows": "meta",
    "option": "alt",
    "return": "enter",
    "esc": "escape",
    "del": "delete",
    "arrowup": "up",
    "arrowdown": "down",
    "arrowleft": "left",
    "arrowright": "right",
    "pgup": "pageup",
    "pgdn": "pagedown",
    " ": "space",
}

CANONICAL_KEYS: frozenset[str] = frozenset(_NAMED) | frozenset(_CHARS)


def canonical_key(name: str) -> str:
    """Return the canonical spelling of `name`, or raise ValueError naming close matches."""
    folded = name if name == " " else name.strip().lower()
    folded = _ALIASES.get(folded, folded)
    if folded in CANONICAL_KEYS:
        return folded
    close = difflib.get_close_matches(folded, sorted(CANONICAL_KEYS | set(_ALIASES)), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"unknown key {name!r}{hint} Valid keys: modifiers ctrl/shift/alt/meta, named keys "
        "such as enter, tab, escape, backspace, up, pagedown, f1..f12, or one printable character"
    )


def to_playwright(key: str) -> str:
    """Playwright's name for a canonical key (for `keyboard.press`)."""
    return _NAMED[key][0] if key in _NAMED else key


def to_pyautogui(key: str) -> str:
    """pyautogui's name for a canonical key (for `hotkey` and `press`)."""
    return _NAMED[key][1] if key in _NAMED else key
