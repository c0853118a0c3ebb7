"""Synthetic grounding sets, made offline: local HTML pages, rendered in Chromium, boxes from the DOM.

    synthesize("sets/synth", count=300, seed=0) -> sets/synth/grounding.jsonl

Each page mixes a few parts: a button bar, links, a form whose fields are known by their
labels, an icon toolbar known only by `aria-label` or `title`, a menu bar, a table with a
repeated Delete and Edit on every row (targets by ordinal and by neighbour), an open dialog
with its own OK, and sometimes an instruction paragraph that names a button in its words.
Light or dark, labels in Latin (with diacritics), Cyrillic and Greek (scripts that DejaVu Sans
draws on any machine: CJK would show as empty boxes where no CJK font is installed), screenshots
from 1280x720 to 2560x1440 at device scale 1 or 2. Every choice comes from `random.Random`
seeded by (seed, page), so one seed gives one set; each target's box is its element's
rectangle, in screenshot pixels. The HTML stays beside its PNG, so a grounder that reads
markup is scored on the live page.
"""

from __future__ import annotations

import html
import json
import random
from dataclasses import dataclass
from pathlib import Path

__all__ = ["JSONL_NAME", "SIZES", "synthesize"]

JSONL_NAME = "grounding.jsonl"
# (CSS viewport, device scale): screenshots from 1280x720 to 2560x1440.
SIZES = (((1280, 720), 1), ((1280, 720), 2), ((1920, 1080), 1), ((1600, 900), 1), ((2560, 1440), 1))
_WORDS = ("Save", "Open", "Print", "Export", "Import", "Share", "Archive", "Publish", "Refresh", "Upload",
          "Download", "Continue", "Submit", "Preview", "Settings", "Profile", "Billing", "Reports", "Invite",
          "Schedule", "Enregistrer", "Télécharger", "Löschen", "Übersicht", "Guardar", "Búsqueda", "Café",
          "Сохранить", "Настройки", "Поиск", "Αποθήκευση", "Ρυθμίσεις", "Βοήθεια", "Ayuda", "Zurück",
          "Aperçu", "Señal")
_FIELDS = ("Email", "Password", "First name", "Last name", "City", "Company", "Phone", "Street",
           "Postcode", "Nom", "Straße", "Ciudad", "Имя", "Διεύθυνση")
_PEOPLE = ("Alice", "Bob", "Carol", "Dmitri", "Émile", "Fatima", "Günter", "Hiroshi", "Inès", "José",
           "Zoë", "Łukasz", "Søren", "Mei")
_ICONS = ("Close", "Search", "Menu", "Notifications", "Favorite", "Help", "Home", "Calendar", "Attach",
          "Bookmark", "Lock", "Filter")
_SHAPES = ('<circle cx="12" cy="12" r="8"/>', '<rect x="5" y="5" width="14" height="14"/>',
           '<path d="M4 20L12 4L20 20Z"/>', '<path d="M4 12h16M12 4v16"/>',
           '<path d="M5 5L19 19M19 5L5 19"/>',
           '<path d="M4 8h16M4 12h16M4 16h16"/>')
_RESERVED = ("OK", "Cancel", "Delete", "Edit")
_THEMES = {"light": ("#ffffff", "#1d1d1f", "#f2f2f5", "#2563eb"),  # background, text, card, accent
           "dark": ("#16181d", "#e6e6e6", "#23262d", "#60a5fa")}


@dataclass
class _Target:
    gid: str
    instruction: str
    data_type: str


class _Page:
    """One page's HTML parts and targets, drawn from its own random stream."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.parts: list[str] = []
        self.targets: list[_Target] = []
        self.words = rng.sample(_WORDS, len(_WORDS))  # labels drawn once each: unique on the page

    def gid(self) -> str:
        return f"t{len(self.targets)}"

    def add(self, instruction: str, data_type: str = "text") -> str:
        gid = self.gid()
        self.targets.append(_Target(gid, instruction, data_type))
        return f'data-gt="{gid}"'

    def buttons(self) -> None:
        labels = [self.words.pop() for _ in range(self.rng.randint(2, 4))]
        cells = "".join(f"<button {self.add(f'the {w} button')}>{html.escape(w)}</button>" for w in labels)
        self.parts.append(f'<section class="card"><h3>Actions</h3><div class="row">{cells}</div></section>')

    def links(self) -> None:
        labels = [self.words.pop() for _ in range(self.rng.randint(2, 3))]
        items = "".join(f'<li><a href="#{i}" {self.add(f"the {w} link")}>{html.escape(w)}</a></li>'
                        for i, w in enumerate(labels))
        self.parts.append(f'<nav class="card"><h3>Links</h3><ul>{items}</ul></nav>')

    def form(self) -> None:
        names = self.rng.sample(_FIELDS, self.rng.randint(2, 3))
        rows = "".join(f'<div class="field"><label for="f{i}">{html.escape(n)}</label>'
                       f'<input id="f{i}" type="text" {self.add(f"the {n} field")}></div>'
                       for i, n in enumerate(names))
        self.parts.append(f'<form class="card" onsubmit="return false"><h3>Details</h3>{rows}</form>')

    def icons(self) -> None:
        names = self.rng.sample(_ICONS, self.rng.randint(2, 4))
        cells = []
        for name in names:
            attr = "aria-label" if self.rng.random() < 0.7 else "title"
            words = self.rng.choice((f"the {name} button", f"the {name} icon"))
            shape = _SHAPES[_ICONS.index(name) % len(_SHAPES)]  # one glyph per name
            cells.append(f'<button class="icon" {attr}="{name}" {self.add(words, "icon")}>'
                         f'<svg viewBox="0 0 24 24" width="22" height="22">{shape}</svg></button>')
        row = "".join(cells)
        self.parts.append(f'<section class="card"><h3>Tools</h3><div class="row">{row}</div></section>')

    def menu(self) -> None:
        labels = [self.words.pop() for _ in range(3)]
        items = "".join(f'<div role="menuitem" tabindex="0" {self.add(f"the {w} menu item")}>'
                        f"{html.escape(w)}</div>" for w in labels)
        self.parts.append(f'<div class="card"><div role="menubar" class="menubar">{items}</div></div>')

    def table(self) -> None:
        people = self.rng.sample(_PEOPLE, self.rng.randint(3, 4))
        picks = {self.rng.randrange(len(people)): "near", self.rng.randrange(len(people)): "ordinal"}
        rows = []
        for i, person in enumerate(people):
            delete = edit = ""
            if picks.get(i) == "near":
                delete = self.add(f"the Delete button next to {person}")
            elif picks.get(i) == "ordinal":
                ordinal = ("first", "second", "third", "fourth")[i]
                edit = self.add(self.rng.choice((f"the {ordinal} Edit button",
                                                 f"the Edit button in {person}'s row")))
            rows.append(f"<tr><td>{html.escape(person)}</td><td><button {edit}>Edit</button></td>"
                        f"<td><button {delete}>Delete</button></td></tr>")
        self.parts.append(f'<section class="card"><h3>People</h3><table>{"".join(rows)}</table></section>')

    def dialog(self) -> None:
        title = self.words.pop()
        ok = self.add(f"the OK button in the {title} dialog")
        cancel = self.add(f"the Cancel button in the {title} dialog")
        self.parts.append(f'<section class="card"><button>OK</button><div role="dialog" aria-label="{title}" '
                          f'class="dialog"><h3>{html.escape(title)}</h3><p>Apply the changes?</p>'
                          f'<div class="row"><button {ok}>OK</button><button {cancel}>Cancel</button>'
                          "</div></div></section>")

    def hint(self) -> None:
        word = self.words.pop()
        target = self.add(f"the {word} button")
        shown = html.escape(word)
        self.parts.append(f'<section class="card"><p class="hint">Click on the {shown} button when you are '
                          f'ready; the {shown} button saves nothing else.</p>'
                          f'<button {target}>{html.escape(word)}</button></section>')

    def render(self, theme: str, columns: int) -> str:
        bg, fg, card, accent = _THEMES[theme]
        size = self.rng.choice((13, 14, 15, 16, 18))
        style = (f"body{{margin:0;padding:16px;background:{bg};color:{fg};"
                 f"font:{size}px 'DejaVu Sans',sans-serif;"
                 f"display:grid;grid-template-columns:repeat({columns},1fr);gap:12px;overflow:hidden}}"
                 f".card{{background:{card};border-radius:8px;padding:10px}}h3{{margin:0 0 8px}}"
                 ".row{display:flex;gap:8px;flex-wrap:wrap}ul{margin:0;padding-left:18px}"
                 f"a{{color:{accent}}}button{{font:inherit;padding:5px 12px;border-radius:6px;"
                 f"border:1px solid {accent};"
                 f"background:{bg};color:{fg}}}.icon{{padding:4px;line-height:0}}svg{{fill:none;stroke:{fg};"
                 "stroke-width:2}.field{display:flex;gap:8px;align-items:center;margin:6px 0}"
                 f"label{{min-width:90px}}input{{font:inherit;padding:4px;background:{bg};color:{fg};"
                 f"border:1px solid {fg}}}.menubar{{display:flex;gap:16px}}[role=menuitem]{{padding:4px 8px}}"
                 f".dialog{{border:2px solid {accent};border-radius:8px;padding:8px;margin-top:8px}}"
                 "td{padding:3px 8px}.hint{margin:0 0 8px}")
        return (f'<!DOCTYPE html><html lang="mul"><head><meta charset="utf-8"><title>synthetic</title>'
                f"<style>{style}</style></head><body>{''.join(self.parts)}</body></html>")


def _page(seed: int, number: int) -> tuple[str, list[_Target], tuple[int, int], int, str]:
    rng = random.Random(seed * 1_000_003 + number)
    page = _Page(rng)
    viewport, scale = SIZES[number % len(SIZES)]
    parts = [page.buttons, page.links, page.form, page.icons, page.menu, page.table, page.dialog, page.hint]
    for part in rng.sample(parts, rng.randint(3, 5)):
        part()
    theme = rng.choice(("light", "dark"))
    return page.render(theme, 3 if viewport[0] >= 1600 else 2), page.targets, viewport, scale, theme


_BOXES = """() => [...document.querySelectorAll('[data-gt]')].map(e => {
  const r = e.getBoundingClientRect();
  const seen = r.width > 0 && r.height > 0 && r.left >= 0 && r.top >= 0 && r.right <= innerWidth
    && r.bottom <= innerHeight;
  return [e.dataset.gt, r.left, r.top, r.width, r.height, seen];
})"""


def synthesize(folder: str | Path, *, count: int = 300, seed: int = 0) -> Path:
    """Write `count` targets (PNG + HTML per page, one JSONL) into `folder`; returns the JSONL.
    Targets that do not fit the viewport are left out; pages are added until `count` is met."""
    from tasks.serve import serve_folder
    from tools.browser import BrowserExecutor

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    browsers: dict[tuple[tuple[int, int], int], BrowserExecutor] = {}
    try:
        with serve_folder(folder) as url:
            number = 0
            while len(lines) < count:
                markup, targets, viewport, scale, theme = _page(seed, number)
                name = f"page-{number:04d}"
                (folder / f"{name}.html").write_text(markup, encoding="utf-8")
                browser = browsers.get((viewport, scale))
                if browser is None:
                    browser = browsers[(viewport, scale)] = BrowserExecutor(
                        viewport=viewport, device_scale_factor=scale, capture="png")
                browser.page.goto(f"{url}/{name}.html")
                browser.page.evaluate("document.fonts.ready")
                browser.observe().image.save(folder / f"{name}.png", format="PNG")
                boxes = {gid: (x, y, w, h) for gid, x, y, w, h, seen in browser.page.evaluate(_BOXES) if seen}
                for target in targets:
                    if target.gid in boxes and len(lines) < count:
                        x, y, w, h = (round(v * scale, 1) for v in boxes[target.gid])
                        lines.append(json.dumps({
                            "img_filename": f"{name}.png", "instruction": target.instruction,
                            "bbox": [x, y, w, h],
                            "data_type": target.data_type, "platform": "web", "html": f"{name}.html",
                            "viewport": list(viewport), "scale": scale, "theme": theme,
                        }, ensure_ascii=False))
                number += 1
    finally:
        for browser in browsers.values():
            browser.close()
    jsonl = folder / JSONL_NAME
    jsonl.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return jsonl
