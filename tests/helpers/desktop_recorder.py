"""A Tk window that writes every input event it receives to a file, one JSON object a line.

    python tests/helpers/desktop_recorder.py LOG [X Y WIDTH HEIGHT]

Run it on a display with no window manager (the tests' own Xvfb): the window is then
undecorated and lands exactly at X, Y. (Override-redirect would place it too, but Tk
refuses the X focus to override-redirect windows.) A Text widget fills the window and
takes the keyboard focus. It logs:

    {"type": "ready", "x": .., "y": .., "width": .., "height": ..}  once mapped and focused
    {"type": "press" | "release", "button": n, "x": x_root, "y": y_root, "state": mask}
    {"type": "motion", "x": x_root, "y": y_root, "state": mask}
    {"type": "wheel", "delta": d, "x": .., "y": ..}                   (Tk 8.7+ on X11)
    {"type": "key", "keysym": name, "char": c, "state": mask, "text": whole text after it}
    {"type": "sync", "n": n}   after the line "sync n" arrives on stdin

`sync` is the tests' barrier: Tk's `update` first flushes the X connection and handles
every event the server has already queued, so a sync line follows all of them.
"""

from __future__ import annotations

import json
import sys
import tkinter as tk
from typing import TextIO


class Recorder:
    def __init__(self, log: TextIO, x: int, y: int, width: int, height: int) -> None:
        self.log = log
        self.root = tk.Tk(className="desktop-recorder")
        self.root.title("desktop recorder")
        self.root.geometry(f"{width}x{height}+{x}+{y}")
        self.text = tk.Text(self.root, undo=False, font=("DejaVu Sans Mono", 12))
        self.text.pack(fill="both", expand=True)
        # Pointer events are logged by a tag put first on the Text, before its class bindings
        # run: those may start a nested event loop (a middle click pastes the selection),
        # which would answer a `sync` before the event is logged. Keys are logged on "all",
        # last, so that `text` includes the key's effect.
        self.text.bindtags(("recorder", *self.text.bindtags()))
        for sequence, kind in (
            ("<ButtonPress>", "press"),
            ("<ButtonRelease>", "release"),
            ("<Motion>", "motion"),
        ):
            self.root.bind_class("recorder", sequence, lambda e, kind=kind: self._pointer(kind, e))
        self.root.bind_class("recorder", "<MouseWheel>", self._wheel)
        self.root.bind_all("<KeyPress>", self._key)
        self.root.tk.createfilehandler(sys.stdin, tk.READABLE, self._command)
        self.root.after(20, self._check_ready)

    def write(self, record: dict[str, object]) -> None:
        self.log.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.log.flush()

    def _check_ready(self) -> None:
        # Ready means mapped, placed, and holding the focus. Asking for the focus before the
        # window is mapped fails silently in X, so wait for the map first.
        if not self.root.winfo_viewable():
            self.root.after(20, self._check_ready)
            return
        self.root.focus_force()
        self.text.focus_set()
        self.root.update()
        self.write({
            "type": "ready",
            "x": self.root.winfo_rootx(),
            "y": self.root.winfo_rooty(),
            "width": self.root.winfo_width(),
            "height": self.root.winfo_height(),
            "window": int(self.root.wm_frame(), 16),
        })

    def _pointer(self, kind: str, event: tk.Event) -> None:
        record: dict[str, object] = {"type": kind, "x": event.x_root, "y": event.y_root, "state": event.state}
        if kind != "motion":
            record["button"] = event.num
        self.write(record)

    def _wheel(self, event: tk.Event) -> None:
        self.write({"type": "wheel", "delta": event.delta, "x": event.x_root, "y": event.y_root,
                    "state": event.state})

    def _key(self, event: tk.Event) -> None:
        self.write({
            "type": "key",
            "keysym": event.keysym,
            "char": event.char,
            "state": event.state,
            "text": self.text.get("1.0", "end-1c"),
        })

    def _command(self, stream: object, mask: int) -> None:
        line = sys.stdin.readline()
        if not line:  # the test closed our stdin: it is done with us
            self.root.destroy()
            return
        words = line.split()
        if words[:1] == ["sync"]:
            self.root.update()
            self.write({"type": "sync", "n": int(words[1])})
        elif words[:1] == ["clear"]:
            self.text.delete("1.0", "end")
            self.root.update()
            self.write({"type": "cleared", "n": int(words[1])})


def main(argv: list[str]) -> None:
    path = argv[1]
    x, y, width, height = (int(v) for v in argv[2:6]) if len(argv) >= 6 else (200, 150, 800, 600)
    with open(path, "a", encoding="utf-8") as log:
        recorder = Recorder(log, x, y, width, height)
        recorder.root.mainloop()


if __name__ == "__main__":
    main(sys.argv)
