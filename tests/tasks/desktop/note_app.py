"""A small desktop program for task tests: a Tk window titled "Notes" that saves a note.

It writes its PID to app.pid (so a test can check it was stopped) and "Buy milk" to
out/saved.txt, both in the current folder, then shows its window until it is stopped.
"""

import os
import pathlib
import tkinter as tk

pathlib.Path("app.pid").write_text(str(os.getpid()))
pathlib.Path("out").mkdir(exist_ok=True)
pathlib.Path("out/saved.txt").write_text("Buy milk\n")
root = tk.Tk(className="notes")
root.title("Notes")
root.geometry("400x300+100+100")
tk.Label(root, text="Saved", font=("DejaVu Sans", 24)).pack(expand=True)
root.mainloop()
