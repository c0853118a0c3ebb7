"""X11 plumbing for the desktop executor, on python-xlib (which pyautogui already needs).

- `open_display`: connect, with libX11's tolerance of a missing ~/.Xauthority;
- `connect`: pyautogui connects to $DISPLAY once, when it is imported, so a process can
  drive one X display: set $DISPLAY before that import, and refuse any other display;
- `focused_window_name`: the name of the window that holds the keyboard focus;
- `XKeyboard`: type any Unicode text through XTest, by keysym.

Typing by keysym instead of through pyautogui.write: pyautogui looks a character's keysym
up without its shift level and adds Shift by its own table, so on the common pc105
keymap "<" comes out as ">" (keysym `less` lives unshifted on the extra <LSGT> key).
Characters off the keymap (é, ✓) are bound for the moment to a spare keycode, as
`xdotool type` does; that needs no clipboard tool, leaves the user's clipboard alone,
and works in terminals, whose paste shortcut differs from other applications'.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

from tools.errors import ExecutorError

__all__ = [
    "CannotType", "XKeyboard", "connect", "focused_window_name", "keysym_for", "open_display",
    "refuse_a_second_display", "same_display", "xlib_auth",
]

INSTALL_HINT = "pip install 'internvl-agent[desktop]'"
NO_DISPLAY = (
    "no X display{detail}: start Xvfb (e.g. `Xvfb :99 &` and export DISPLAY=:99) "
    "or run inside a desktop session"
)
_bound_display: str | None = None  # the X display this process's pyautogui is connected to
_SPECIAL_KEYSYMS = {"\n": 0xFF0D, "\t": 0xFF09}  # Return, Tab
SHIFT_L = 0xFFE1
SETTLE_S = 0.05  # after binding keycodes, before pressing them
REBIND_WAIT_S = 0.2  # before giving a borrowed keycode a new meaning (or back)
CHECK_EVERY = 50  # characters typed between calls of XKeyboard.type's `check`


class CannotType(Exception):
    """Text that cannot be typed (a control character, no spare keycode): a failed action."""


def same_display(first: str, second: str) -> bool:
    """":0" and ":0.0" name the same screen."""
    return re.sub(r"\.0$", "", first) == re.sub(r"\.0$", "", second)


@contextlib.contextmanager
def xlib_auth() -> Iterator[None]:
    """Around a python-xlib connection (and pyautogui's import, which makes two).

    python-xlib refuses to connect when ~/.Xauthority is missing, which libX11 allows (a
    bare Xvfb needs no cookie): point it at an empty file for the moment. It also prints
    a warning on stdout when it finds no cookie, and it and pyscreeze leave files open
    (ResourceWarning, an error under `-W error`): keep both out of the caller's way."""
    saved = os.environ.get("XAUTHORITY")
    home = os.environ.get("HOME", "/nonexistent")
    if saved is None and not os.path.isfile(os.path.join(home, ".Xauthority")):
        os.environ["XAUTHORITY"] = os.devnull
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            yield
    finally:
        if saved is None:
            os.environ.pop("XAUTHORITY", None)


def open_display(target: str) -> Any:
    """An Xlib Display for `target` (such as ":0"), or ExecutorError saying how to get one."""
    try:
        import Xlib.display
        import Xlib.error
    except ImportError as exc:
        raise ExecutorError(f"python-xlib is not installed: {INSTALL_HINT}") from exc
    try:
        with xlib_auth():
            return Xlib.display.Display(target)
    except (Xlib.error.DisplayError, Xlib.error.ConnectionClosedError, OSError) as exc:
        raise ExecutorError(NO_DISPLAY.format(detail=f" at {target} (cannot connect)")) from exc


def refuse_a_second_display(target: str) -> None:
    """pyautogui connects once, at import: refuse to drive another X display than its own."""
    loaded = sys.modules.get("pyautogui")
    bound = _bound_display
    with contextlib.suppress(Exception):  # pyautogui imported by someone else: ask its connection
        bound = bound or loaded._pyautogui_x11._display.get_display_name()  # type: ignore[union-attr]
    if bound is not None and not same_display(bound, target):
        raise ExecutorError(
            f"pyautogui in this process is already connected to X display {bound}, and it connects "
            f"only once: use display={bound!r}, or drive {target} from another process"
        )


def connect(display: str | None) -> tuple[str, Any, ModuleType]:
    """The X display to use, our own connection to it, and pyautogui connected to it."""
    global _bound_display
    target = display or os.environ.get("DISPLAY", "")
    if not target:
        raise ExecutorError(NO_DISPLAY.format(detail=" ($DISPLAY is not set)"))
    refuse_a_second_display(target)
    xdisplay = open_display(target)  # first: it fails cleanly where pyautogui's import would not
    if sys.modules.get("pyautogui") is None:
        # pyautogui connects to $DISPLAY when it is imported, so the choice must be made before.
        os.environ["DISPLAY"] = target
    try:
        with xlib_auth():
            import pyautogui
    except Exception as exc:  # whatever pyautogui's import-time connection raises (Xlib, KeyError)
        xdisplay.close()
        raise ExecutorError(NO_DISPLAY.format(detail=f" at {target} (pyautogui: {exc})")) from exc
    _bound_display = _bound_display or target
    return target, xdisplay, pyautogui


def focused_window_name(xdisplay: Any) -> str | None:
    """The name of the window holding the keyboard focus, or of its nearest named parent.

    With the focus at PointerRoot (Tk leaves it there when the pointer goes out of its
    window, when no window manager runs), keys go to the top-level window under the pointer.
    """
    try:
        window = xdisplay.get_input_focus().focus
        root = xdisplay.screen().root
        if window == 1:  # X.PointerRoot
            window = root.query_pointer().child
        net_wm_name, utf8 = xdisplay.get_atom("_NET_WM_NAME"), xdisplay.get_atom("UTF8_STRING")
        for _ in range(8):
            if isinstance(window, int) or window is None or window == root:
                return None  # no focus, or nothing under the pointer
            prop = window.get_full_property(net_wm_name, utf8)
            name = prop.value if prop else window.get_wm_name()
            if isinstance(name, bytes):  # python-xlib decodes some property types, not all
                name = name.decode("utf-8", "replace")
            if name:
                return str(name)
            window = window.query_tree().parent
    except Exception:  # best effort: the window may vanish while we ask
        return None
    return None


def keysym_for(char: str) -> int | None:
    """The X keysym that types `char`: Latin-1 is its code point, the rest of Unicode 0x1000000 + it."""
    if char in _SPECIAL_KEYSYMS:
        return _SPECIAL_KEYSYMS[char]
    code = ord(char)
    if code < 0x20 or 0x7F <= code < 0xA0:
        return None
    return code if code < 0x100 else 0x01000000 | code


class XKeyboard:
    """Types Unicode text through XTest, by keysym, at the shift level the keymap says.

    A character missing from the keymap is bound to a spare (empty) keycode. Applications
    translate a keycode with the keymap as it is when they handle the key, not as it was
    when the key was sent (measured with Tk: rebinding at once garbles the text), so a
    binding is made a moment before its key is pressed and kept until it is needed for
    another character or `restore()`, which first wait for the application to catch up.
    """

    def __init__(self, xdisplay: Any) -> None:
        self._xdisplay = xdisplay
        self._borrowed: dict[int, int] = {}  # keycode -> keysym bound there, oldest first

    def _keymap(self) -> tuple[dict[int, tuple[int, bool]], list[int], int]:
        """keysym -> (keycode, needs shift), the spare keycodes, and keysyms per keycode."""
        info = self._xdisplay.display.info
        rows = self._xdisplay.get_keyboard_mapping(info.min_keycode, info.max_keycode - info.min_keycode + 1)
        codes = [(info.min_keycode + i, row) for i, row in enumerate(rows)]
        where: dict[int, tuple[int, bool]] = {}
        # Later writes win: unshifted over shifted, then low keycodes over high ones.
        for level in (1, 0):
            for code, row in reversed(codes):
                if len(row) > level and row[level]:
                    where[row[level]] = (code, level == 1)
        spare = [code for code, row in codes if not any(row)]
        return where, spare, len(rows[0]) if rows else 2

    def type(self, text: str, check: Callable[[], None] | None = None) -> None:
        """Type `text`; call `check` (which may raise to stop) every CHECK_EVERY characters."""
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        keysyms = [keysym_for(c) for c in text]
        if None in keysyms:
            bad = next(c for c, k in zip(text, keysyms, strict=True) if k is None)
            raise CannotType(f"cannot type the control character {bad!r}: use a key action")
        from Xlib import X
        from Xlib.ext.xtest import fake_input

        where, spare, width = self._keymap()
        shift = where.get(SHIFT_L, (None, False))[0]
        if shift is None:  # no Shift key on the keymap: shifted characters must be borrowed too
            where = {k: v for k, v in where.items() if not v[1]}
        todo = [k for k in keysyms if k is not None]
        typed = 0
        while todo:
            batch = self._bind(todo, where, spare, width)
            for keysym in todo[:batch]:
                if check is not None and typed % CHECK_EVERY == 0:
                    check()
                typed += 1
                code, shifted = where[keysym]
                if shifted:
                    fake_input(self._xdisplay, X.KeyPress, shift)
                fake_input(self._xdisplay, X.KeyPress, code)
                fake_input(self._xdisplay, X.KeyRelease, code)
                if shifted:
                    fake_input(self._xdisplay, X.KeyRelease, shift)
                self._xdisplay.sync()
            todo = todo[batch:]

    def _bind(self, keysyms: list[int], where: dict[int, tuple[int, bool]], spare: list[int],
              width: int) -> int:
        """Bind keycodes for the longest head of `keysyms` that the spare ones allow; its length."""
        used: set[int] = set()
        bound = waited = False
        for typable, keysym in enumerate(keysyms):
            if keysym not in where:
                if spare:
                    code = spare.pop()
                else:
                    # Recycle the oldest borrowed keycode that this batch does not type.
                    code = next((old for old, held in self._borrowed.items() if held not in used), 0)
                    if not code:
                        if typable == 0:
                            char = chr(keysym & 0xFFFFFF)
                            raise CannotType(f"no spare keycode on the keymap to type {char!r}")
                        break
                    where.pop(self._borrowed.pop(code), None)
                    if not waited:  # let the application read keys sent with the old meaning
                        time.sleep(REBIND_WAIT_S)
                        waited = True
                self._xdisplay.change_keyboard_mapping(code, [(keysym,) * width])
                self._borrowed[code] = keysym
                where[keysym] = (code, False)
                bound = True
            used.add(keysym)
        else:
            typable = len(keysyms)
        if bound:
            self._xdisplay.sync()
            time.sleep(SETTLE_S)
        return typable

    def restore(self) -> None:
        """Give the borrowed keycodes back, empty, as they were."""
        if not self._borrowed:
            return
        time.sleep(REBIND_WAIT_S)
        width = len(self._xdisplay.get_keyboard_mapping(next(iter(self._borrowed)), 1)[0])
        for code in list(self._borrowed):
            self._xdisplay.change_keyboard_mapping(code, [(0,) * width])
            del self._borrowed[code]
        self._xdisplay.sync()
