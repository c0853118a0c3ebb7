"""OCR grounding on 1920x1080 screens: our OCRGrounder (rapidocr 3, PP-OCR on onnxruntime)
against Tesseract 5 through pytesseract, with the same matcher on top of each.

Four pages made here (a settings form, a data table, a dashboard, a dialog over a page),
rendered by headless Chromium at 1920x1080; on each, five text targets whose DOM boxes are
the truth. Columns, per engine:

    pass s      median wall time of one OCR pass over a screenshot
    cpu s       median CPU time of that pass (all threads; Tesseract's as a child process)
    5 targets s median wall time to ground five targets on a fresh observation (one pass,
                thanks to the per-observation cache, plus the matching)
    accuracy    targets whose grounded point falls inside the target's DOM box

The goal: ours at most half of Tesseract's time per pass, with accuracy at least as high.

    apt-get install -y tesseract-ocr && pip install -e '.[ocr,bench]'
    python bench/grounding_speed.py                 # 3 passes per page and engine
    taskset -c 0,1 python bench/grounding_speed.py  # as on a two-core machine

Without the `tesseract` binary or pytesseract, the baseline is skipped and the table says so.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.grounding import Box
from agent.grounding.ocr import OCRGrounder, RapidOCREngine
from agent.grounding.text_match import TextLine
from tools.browser import BrowserExecutor
from tools.errors import GroundingError
from tools.executor import Observation

VIEWPORT = (1920, 1080)
STYLE = """<style>
body { margin: 0; font: 15px "DejaVu Sans", sans-serif; color: #222; background: #f6f7f9 }
header { background: #243b55; color: #fff; padding: 14px 28px; font-size: 18px }
nav a { color: #dde; margin-right: 22px; font-size: 15px; text-decoration: none }
main { padding: 24px 28px } .card { background: #fff; border: 1px solid #ccd; border-radius: 6px;
padding: 14px 18px; margin: 0 18px 18px 0; display: inline-block; width: 380px; vertical-align: top }
button { font-size: 14px; padding: 5px 12px; margin: 2px }
input, select { font-size: 14px; padding: 5px; width: 260px }
td, th { padding: 7px 16px; text-align: left; border-bottom: 1px solid #dde } small { color: #667 }
.dialog { position: absolute; left: 700px; top: 300px; width: 460px; background: #fff; padding: 22px;
border: 1px solid #889; box-shadow: 0 8px 30px #0004 }
.shade { position: absolute; inset: 0; background: #0003 }
</style>"""
NAV = ("<header>Northwind Console <nav style='display:inline; margin-left: 60px'>"
       + "".join(f"<a id='nav-{n.lower()}' href='#'>{n}</a>" for n in
                 ("Overview", "Orders", "Customers", "Inventory", "Reports", "Settings")) + "</nav></header>")
LOREM = ("Shipments leave the warehouse every weekday at four. Orders placed after noon are packed the "
         "next morning, and tracking numbers are sent as soon as the carrier scans the parcel. ")


def _form() -> str:
    fields = "".join(
        f"<p><label>{name}<br><input id='in-{i}' placeholder='{hint}'></label></p>"
        for i, (name, hint) in enumerate([
            ("Company name", "Acme Ltd"), ("Billing email", "billing@acme.test"),
            ("Phone number", "+1 555 0100"), ("Street address", ""), ("Postal code", ""),
            ("Tax identifier", "")]))
    return (f"{NAV}<main><h2>Account settings</h2><div class='card'>{fields}</div>"
            "<div class='card'><h3>Notifications</h3>"
            + "".join(f"<p><label><input type='checkbox' style='width:auto'> {t}</label></p>" for t in
                      ("Email me when an order ships", "Weekly summary report", "Low stock alerts",
                       "Product announcements"))
            + f"<p><small>{LOREM}</small></p></div><div><button id='save'>Save changes</button>"
            "<button id='discard'>Discard</button><button id='export'>Export settings</button></div></main>")


def _table() -> str:
    people = ["Alice Martin", "Bob Chen", "Carol Diaz", "Dan Okafor", "Eve Laurent", "Frank Novak",
              "Grace Kim", "Hugo Silva", "Ivy Moreau", "Jack Brown", "Kira Ito", "Liam Walsh"]
    rows = "".join(
        f"<tr><td>{1040 + i}</td><td id='name-{i}'>{p}</td><td>{['Paid', 'Pending', 'Refunded'][i % 3]}</td>"
        f"<td>${(i * 37) % 400 + 19}.00</td><td><button id='edit-{i}'>Edit</button>"
        f"<button id='delete-{i}'>Delete</button></td></tr>" for i, p in enumerate(people))
    return (f"{NAV}<main><h2>Orders</h2><p><input id='search' placeholder='Search orders'> "
            "<button id='filter'>Filter</button> <button id='new-order'>New order</button></p>"
            f"<table><tr><th>Order</th><th>Customer</th><th>Status</th><th>Total</th><th></th></tr>{rows}</table>"
            "<p><a id='next-page' href='#'>Next page</a></p></main>")


def _dashboard() -> str:
    cards = "".join(
        f"<div class='card'><h3 id='card-{i}'>{title}</h3><p>{LOREM[: 90 + 20 * i]}</p>"
        f"<a id='more-{i}' href='#'>{link}</a></div>"
        for i, (title, link) in enumerate([
            ("Revenue this month", "View revenue"), ("Open tickets", "Go to support"),
            ("Stock alerts", "Review stock"), ("New customers", "See customers"),
            ("Returns", "Process returns"), ("Carrier status", "Track parcels")]))
    footer = "<p><small id='footer'>Last synced 4 minutes ago</small></p>"
    return f"{NAV}<main><h2>Overview</h2>{cards}{footer}</main>"


def _dialog() -> str:
    return (f"{NAV}<main><h2>Inventory</h2>" + f"<p>{LOREM * 3}</p>" * 4 + "</main><div class='shade'></div>"
            "<div class='dialog'><h3 id='dialog-title'>Remove discontinued items?</h3>"
            "<p>Seventeen products have had no sales for a year. Removing them hides them from the store.</p>"
            "<p><label><input type='checkbox' style='width:auto'> "
            "<span id='keep'>Keep their order history</span></label></p>"
            "<button id='remove'>Remove items</button> <button id='keep-all'>Keep all</button></div>")


PAGES: dict[str, tuple[Callable[[], str], list[tuple[str, str]]]] = {
    "form": (_form, [("the Save changes button", "save"), ("the Billing email field", "in-1"),
                     ("the Export settings button", "export"), ("the Orders link", "nav-orders"),
                     ("the Discard button", "discard")]),
    "table": (_table, [("the Delete button next to Carol Diaz", "delete-2"),
                       ("the New order button", "new-order"), ("the fourth Edit button", "edit-3"),
                       ("the Next page link", "next-page"), ("the Grace Kim text", "name-6")]),
    "dashboard": (_dashboard, [("the Review stock link", "more-2"), ("the Open tickets heading", "card-1"),
                               ("the Track parcels link", "more-5"), ("the Reports link", "nav-reports"),
                               ("the Last synced 4 minutes ago text", "footer")]),
    "dialog": (_dialog, [("the Remove items button", "remove"), ("the Keep all button", "keep-all"),
                         ("the Keep their order history checkbox", "keep"),
                         ("the Remove discontinued items? heading", "dialog-title"),
                         ("the Inventory heading", "nav-inventory")]),
}


@dataclass
class Screen:
    name: str
    observation: Observation
    targets: list[tuple[str, Box]]  # description, its element's box in screenshot pixels


@dataclass
class Row:
    passes: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    five: list[float] = field(default_factory=list)
    hits: int = 0
    total: int = 0
    misses: list[str] = field(default_factory=list)


class TesseractEngine:
    """Tesseract 5 through pytesseract: words grouped into lines by block, paragraph and line."""

    def __init__(self, psm: int = 3) -> None:
        import pytesseract

        self.pytesseract = pytesseract
        self.config = f"--psm {psm}"

    def __call__(self, image) -> list[TextLine]:
        data = self.pytesseract.image_to_data(image, config=self.config,
                                              output_type=self.pytesseract.Output.DICT)
        lines: dict[tuple[int, int, int], list[tuple[str, Box, float]]] = {}
        for i, word in enumerate(data["text"]):
            if word.strip() and float(data["conf"][i]) >= 0:
                left, top = data["left"][i], data["top"][i]
                box = Box(left, top, left + data["width"][i] - 1, top + data["height"][i] - 1)
                key = (data["block_num"][i], data["par_num"][i], data["line_num"][i])
                lines.setdefault(key, []).append((word, box, float(data["conf"][i]) / 100))
        return [TextLine(" ".join(w for w, _, _ in words),
                         Box(min(b.left for _, b, _ in words), min(b.top for _, b, _ in words),
                             max(b.right for _, b, _ in words), max(b.bottom for _, b, _ in words)),
                         statistics.fmean(c for _, _, c in words), tuple((w, b) for w, b, _ in words))
                for words in lines.values()]


def capture() -> list[Screen]:
    screens = []
    with BrowserExecutor(viewport=VIEWPORT) as browser:
        for name, (build, targets) in PAGES.items():
            browser.page.set_content(f"<!doctype html><html><head>{STYLE}</head><body>{build()}</body>")
            observation = browser.observe()
            boxes = []
            for description, element in targets:
                r = browser.page.evaluate(f"document.getElementById('{element}').getBoundingClientRect()"
                                          ".toJSON()")
                left, top = observation.geometry.to_screenshot(r["left"], r["top"])
                right, bottom = observation.geometry.to_screenshot(r["right"], r["bottom"])
                boxes.append((description, Box(int(left), int(top), int(right), int(bottom))))
            screens.append(Screen(name, observation, boxes))
    return screens


def _cpu() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def measure(engines: dict[str, Callable], screens: Sequence[Screen], repeat: int) -> dict[str, Row]:
    rows = {name: Row() for name in engines}
    for screen in screens:
        for _ in range(repeat):
            for name, engine in engines.items():  # interleaved: a busy moment hits both
                wall, cpu = time.perf_counter(), _cpu()
                engine(screen.observation.image)
                rows[name].passes.append(time.perf_counter() - wall)
                rows[name].cpu.append(_cpu() - cpu)
        for name, engine in engines.items():
            grounder = OCRGrounder(engine)
            fresh = Observation(screen.observation.image, screen.observation.geometry)  # a cold cache
            started = time.perf_counter()
            for description, box in screen.targets:
                rows[name].total += 1
                try:
                    point = grounder.locate(fresh, description).point
                except GroundingError:
                    point = None
                if point is not None and box.contains(*point):
                    rows[name].hits += 1
                else:
                    rows[name].misses.append(f"{screen.name}: {description} -> {point}")
            rows[name].five.append(time.perf_counter() - started)
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="OCR passes per page and engine")
    parser.add_argument("--psm", type=int, default=3, help="Tesseract page segmentation mode (3: automatic)")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: all cores)")
    parser.add_argument("--det-side", type=int, default=RapidOCREngine().det_side,
                        help="the longest side that text detection sees (rapidocr)")
    parser.add_argument("--whole", action="store_true",
                        help="also time our engine on the whole screen at once, not on its content's crops")
    args = parser.parse_args(argv)

    screens = capture()
    ours = RapidOCREngine(det_side=args.det_side, threads=args.threads)
    engines: dict[str, Callable] = {"rapidocr (ours)": ours}
    if args.whole:
        engines["rapidocr, whole screen"] = RapidOCREngine(det_side=args.det_side, threads=args.threads,
                                                           crop=False)
    for engine in engines.values():
        engine(screens[0].observation.image)  # load the models outside the timing
    baseline = None
    try:
        if shutil.which("tesseract") is None:
            raise ImportError("no tesseract binary: apt-get install -y tesseract-ocr")
        baseline = f"tesseract {args.psm and f'--psm {args.psm}'}"
        engines[baseline] = TesseractEngine(args.psm)
        engines[baseline](screens[0].observation.image)
    except ImportError as exc:
        print(f"baseline skipped: {exc}")
    rows = measure(engines, screens, args.repeat)

    print(f"\nOCR grounding, {len(screens)} pages at {VIEWPORT[0]}x{VIEWPORT[1]}, "
          f"{args.repeat} passes each, {len(os.sched_getaffinity(0))} of {os.cpu_count()} CPUs")
    print(f"{'engine':<24}{'pass s':>9}{'cpu s':>9}{'5 targets s':>13}{'accuracy':>12}")
    for name, row in rows.items():
        print(f"{name:<24}{statistics.median(row.passes):>9.2f}{statistics.median(row.cpu):>9.2f}"
              f"{statistics.median(row.five):>13.2f}{f'{row.hits}/{row.total}':>12}")
    if baseline is not None:
        ours, theirs = rows["rapidocr (ours)"], rows[baseline]
        ratio = statistics.median(ours.passes) / statistics.median(theirs.passes)
        goal = "met" if ratio <= 0.5 and ours.hits >= theirs.hits else "NOT met"
        print(f"ours / tesseract per pass: {ratio:.2f} (goal <= 0.50 with accuracy at least as high: {goal})")
    for name, row in rows.items():
        for miss in row.misses:
            print(f"  miss [{name}] {miss}")


if __name__ == "__main__":
    main()
