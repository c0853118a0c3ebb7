"""A small Tk program for desktop task tests: a contact form with the widgets desktop apps have.

A labelled entry for the name and one for the email, a checkbox, two radio buttons, a list of
cities, and Save and Cancel buttons. Save writes the form to out/contact.json in the current
folder and shows "Saved contact <name>"; the window stays until the program is stopped.
"""

import json
import pathlib
import tkinter as tk

FONT = ("DejaVu Sans", 13)
root = tk.Tk(className="contacts")
root.title("Contacts")
root.geometry("520x420+60+40")
root.option_add("*Font", FONT)

form = tk.Frame(root, padx=16, pady=12)
form.pack(fill="both", expand=True)
tk.Label(form, text="Full name").grid(row=0, column=0, sticky="w", pady=4)
name = tk.Entry(form, width=24)
name.grid(row=0, column=1, sticky="w")
tk.Label(form, text="Email address").grid(row=1, column=0, sticky="w", pady=4)
email = tk.Entry(form, width=24)
email.grid(row=1, column=1, sticky="w")
newsletter = tk.BooleanVar()
tk.Checkbutton(form, text="Send me the newsletter", variable=newsletter).grid(row=2, column=0, columnspan=2,
                                                                             sticky="w", pady=4)
kind = tk.StringVar(value="personal")
tk.Radiobutton(form, text="Personal", variable=kind, value="personal").grid(row=3, column=0, sticky="w")
tk.Radiobutton(form, text="Business", variable=kind, value="business").grid(row=3, column=1, sticky="w")
tk.Label(form, text="City").grid(row=4, column=0, sticky="nw", pady=4)
cities = tk.Listbox(form, height=4, exportselection=False)
for city in ("Lisbon", "Nairobi", "Osaka", "Quito"):
    cities.insert("end", city)
cities.grid(row=4, column=1, sticky="w", pady=4)
status = tk.Label(form, text="")
status.grid(row=6, column=0, columnspan=2, sticky="w", pady=8)


def save() -> None:
    chosen = [cities.get(i) for i in cities.curselection()]
    record = {"name": name.get(), "email": email.get(), "newsletter": newsletter.get(), "kind": kind.get(),
              "city": chosen[0] if chosen else None}
    pathlib.Path("out").mkdir(exist_ok=True)
    pathlib.Path("out/contact.json").write_text(json.dumps(record))
    status.configure(text=f"Saved contact {record['name']}")


buttons = tk.Frame(form)
buttons.grid(row=5, column=0, columnspan=2, sticky="w", pady=8)
tk.Button(buttons, text="Save", command=save).pack(side="left", padx=(0, 12))
tk.Button(buttons, text="Cancel", command=lambda: status.configure(text="Cancelled")).pack(side="left")
root.mainloop()
