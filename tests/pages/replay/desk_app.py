"""A Tk window of buttons for the desktop replay tests; each click appends the button's text to LOG.

    python desk_app.py LOG X Y Apply,Export,Print

The window lands at X, Y (no window manager on the tests' Xvfb), its buttons in the given
order; once drawn it prints each button's box in screen pixels, as one JSON line.
"""

import json
import sys
import tkinter as tk

log, x, y, order = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(",")
root = tk.Tk(className="desk")
root.title("Desk")
root.geometry(f"+{x}+{y}")


def clicked(name: str) -> None:
    with open(log, "a", encoding="utf-8") as file:
        file.write(name + "\n")


buttons = {name: tk.Button(root, text=name, font=("DejaVu Sans", 16), command=lambda n=name: clicked(n))
           for name in order}
for button in buttons.values():
    button.pack(side="left", padx=14, pady=14)


def ready() -> None:
    root.update()
    boxes = {name: [b.winfo_rootx(), b.winfo_rooty(), b.winfo_rootx() + b.winfo_width() - 1,
                    b.winfo_rooty() + b.winfo_height() - 1] for name, b in buttons.items()}
    print(json.dumps(boxes), flush=True)


root.after(300, ready)
root.mainloop()
