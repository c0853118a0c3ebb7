"""The OCR grounder on real screens: Chromium pages at scale 1 and 2 and 2560x1440, and a real
Xvfb desktop with the Tk recorder (tests/helpers/desktop_recorder.py), with no model at all.

rapidocr's models come from its wheel: one test runs a first read with every socket refused.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.grounding import act
from agent.grounding.ocr import OCRGrounder, RapidOCREngine
from tools.actions import Click, Type
from tools.browser import BrowserExecutor
from tools.errors import GroundingError

pytestmark = pytest.mark.skipif(importlib.util.find_spec("rapidocr") is None, reason="pip install '.[ocr]'")

PAGE = """<!doctype html><html><head><style>
body { font-family: "DejaVu Sans", sans-serif; font-size: 15px; margin: 24px }
button { font-size: 14px; padding: 4px 10px } input { font-size: 14px; padding: 4px; width: 220px }
td { padding: 6px 14px } .dialog { border: 1px solid #888; padding: 12px; width: 300px;
display: inline-block; margin: 12px; vertical-align: top } .dialog h3 { margin: 0 0 30px 0 }
#help { position: absolute; right: 12px; bottom: 8px; font-size: 10px }
</style></head><body>
<h2>Account settings</h2>
<p><label>Email <input id="email"></label></p>
<p><label for="name">Full name</label><br><input id="name"></p>
<p><input id="search" placeholder="Search products"></p>
<button id="save">Save changes</button> <button id="cancel">Cancel</button>
<table><tr><td>Alice</td><td><button id="del-alice">Delete</button></td></tr>
<tr><td>Bob</td><td><button id="del-bob">Delete</button></td></tr>
<tr><td>Carol</td><td><button id="del-carol">Delete</button></td></tr></table>
<div class="dialog"><h3>Print</h3><button id="ok-print">OK</button></div>
<div class="dialog"><h3>Save</h3><button id="ok-save">OK</button></div>
<a id="help" href="#">Help</a>
<script>window.clicked = [];
document.addEventListener("click", e => window.clicked.push(e.target.id))</script>
</body></html>"""

TARGETS = [  # description -> the element it means
    ("the Save changes button", "save"), ("the Cancel button", "cancel"),
    ("the Email field", "email"), ("the Full name field", "name"), ("the Search products field", "search"),
    ("the second Delete button", "del-bob"), ("the last Delete button", "del-carol"),
    ("the Delete button next to Bob", "del-bob"), ("the Delete button next to Alice", "del-alice"),
    ("the OK button in the Save dialog", "ok-save"), ("the OK button in the Print dialog", "ok-print"),
]


@pytest.fixture(scope="module")
def ocr() -> OCRGrounder:
    """One grounder (one loaded rapidocr) for the module; its cache is per observation."""
    return OCRGrounder()


def _element_at(browser: BrowserExecutor, point: tuple[int, int], observation) -> str:
    x, y = observation.geometry.to_device(*point)
    return browser.page.evaluate(f"document.elementFromPoint({x}, {y}).id")


@pytest.mark.browser
@pytest.mark.parametrize("scale", [1, 2])
def test_each_target_is_found_by_its_text_at_scale_1_and_2(ocr, scale):
    with BrowserExecutor(viewport=(1280, 720), device_scale_factor=scale) as browser:
        browser.page.set_content(PAGE)
        observation = browser.observe()
        assert observation.size == (1280 * scale, 720 * scale)
        for description, element in TARGETS:
            found = ocr.locate(observation, description)
            assert found.source == "ocr" and 0.8 <= found.score <= 1
            assert found.box.contains(*found.point) or "field" in description
            assert _element_at(browser, found.point, observation) == element, description
        # And the executor maps the point back to CSS pixels: the click lands.
        found = ocr.locate(observation, "the Delete button next to Bob")
        assert browser.execute(Click(x=found.point[0], y=found.point[1])).ok
        assert browser.page.evaluate("window.clicked") == ["del-bob"]


@pytest.mark.browser
def test_typing_into_a_field_named_by_its_label(ocr, browser):
    browser.page.set_content(PAGE)
    observation = browser.observe()
    record = act(browser, Type(text="ada@example.org", target="the Email field"), observation, ocr)
    assert record.result.ok and browser.page.input_value("#email") == "ada@example.org"
    assert record.grounding["the Email field"]["source"] == "ocr"


@pytest.mark.browser
def test_a_small_target_on_a_2560x1440_page(ocr):
    with BrowserExecutor(viewport=(2560, 1440)) as browser:
        browser.page.set_content(PAGE)
        observation = browser.observe()
        found = ocr.locate(observation, "the Help link")  # 10-px text in the bottom-right corner
        assert found.box.left > 2400 and found.box.height < 30
        assert _element_at(browser, found.point, observation) == "help"


@pytest.mark.browser
def test_one_ocr_pass_per_observation_however_many_targets(ocr, browser):
    reads = []

    def counting(image):
        reads.append(image.size)
        return ocr.engine(image)

    grounder = OCRGrounder(counting)
    browser.page.set_content(PAGE)
    observation = browser.observe()
    for description, _ in TARGETS[:5]:
        grounder.locate(observation, description)
    assert len(reads) == 1
    grounder.locate(browser.observe(), "the Cancel button")  # a new look at the screen: a new pass
    assert len(reads) == 2


@pytest.mark.browser
def test_what_is_not_there_is_a_grounding_error_that_says_what_was_read(ocr, browser):
    browser.page.set_content(PAGE)
    observation = browser.observe()
    with pytest.raises(GroundingError, match=r"no text reads 'Delet all'.*closest text read: 'Delete'"):
        ocr.locate(observation, "the Delet all button")
    with pytest.raises(GroundingError, match=r"'Zoe', which it is placed by, is not"):
        ocr.locate(observation, "the Delete button next to Zoe")
    with pytest.raises(GroundingError, match="none is the one described"):
        ocr.locate(observation, "the fifth Delete button")
    with pytest.raises(GroundingError, match="names none"):
        ocr.locate(observation, "the text field")


def test_reading_downloads_nothing(monkeypatch):
    """A fresh engine loads rapidocr's bundled models and reads, with every connection refused."""
    from PIL import Image, ImageDraw, ImageFont

    attempts: list[object] = []

    def refuse(self, address, *args, **kwargs):
        attempts.append(address)
        raise OSError("the network is off in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    image = Image.new("RGB", (400, 80), "white")
    font = ImageFont.truetype("DejaVuSans.ttf", 20)
    ImageDraw.Draw(image).text((20, 25), "Offline reading", fill="black", font=font)
    lines = RapidOCREngine()(image)
    assert [line.text for line in lines] == ["Offline reading"] and attempts == []


# --- the desktop: a real Xvfb screen and the Tk recorder, no model ------------------------------

ROOT = Path(__file__).resolve().parent.parent.parent
RECORDER = ROOT / "tests" / "helpers" / "desktop_recorder.py"
ROWS = "Alice   Delete\nBob     Delete\nCarol   Delete"


@pytest.fixture
def recorder_log(tmp_path) -> Iterator[tuple[str, Path]]:
    """Xvfb with the recorder window on it: (the display, the recorder's event log)."""
    if shutil.which("Xvfb") is None or importlib.util.find_spec("pyautogui") is None:
        pytest.skip("needs Xvfb (apt-get install xvfb) and pip install '.[desktop]'")
    from tools.desktop.xvfb import XvfbDisplay

    saved = os.environ.get("DISPLAY")
    log = tmp_path / "events.jsonl"
    log.touch()
    with XvfbDisplay(1280, 800) as screen:
        process = subprocess.Popen([sys.executable, str(RECORDER), str(log), "100", "80", "700", "400"],
                                   stdin=subprocess.PIPE, text=True, env=screen.env)
        try:
            _wait_for(log, lambda e: e["type"] == "ready")
            yield screen.display, log
        finally:
            process.stdin.close()  # type: ignore[union-attr]
            process.wait(timeout=10)
    if saved is None:
        os.environ.pop("DISPLAY", None)
    else:
        os.environ["DISPLAY"] = saved


def _wait_for(log: Path, wanted, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in map(json.loads, log.read_text(encoding="utf-8").splitlines()):
            if wanted(event):
                return event
        time.sleep(0.05)
    raise AssertionError(f"the recorder logged nothing like that in {timeout} s")


# Run in a process of its own: pyautogui binds a process to the first X display it meets, and
# other desktop tests in this process have their own Xvfb.
DESKTOP_SCRIPT = """
import json, sys
from agent.grounding.ocr import OCRGrounder
from agent.script import Script, ScriptRunner
from tools.desktop import DesktopExecutor
script = Script.parse({"timeout": 30, "steps": [
    {"type": sys.argv[3]},  # the recorder's text box has the focus: these become the screen's text
    {"click": "the Delete button next to Bob"},
    {"type": "X"},
    {"type": {"text": "Y", "target": "the Carol text"}},
    {"expect": "the second Delete"},
]})
with DesktopExecutor(display=sys.argv[1]) as desktop:
    trajectory = ScriptRunner(desktop, OCRGrounder(), runs_dir=sys.argv[2]).run(script)
print(json.dumps({"outcome": trajectory.outcome, "run_dir": str(trajectory.run_dir),
                  "errors": [s.result.error for s in trajectory.steps if s.result and not s.ok]}))
"""


@pytest.mark.desktop
def test_a_desktop_script_clicks_and_types_by_the_text_on_screen(recorder_log, tmp_path):
    display, log = recorder_log
    proc = subprocess.run([sys.executable, "-c", DESKTOP_SCRIPT, display, str(tmp_path / "runs"), ROWS],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    ran = json.loads(proc.stdout.strip().splitlines()[-1])
    assert ran["outcome"] == "finished", ran["errors"]
    final = _wait_for(log, lambda e: e["type"] == "key" and "Y" in e["text"])["text"]
    alice, bob, carol = final.split("\n")
    assert alice == "Alice   Delete"
    assert "X" in bob and bob.replace("X", "") == "Bob     Delete" and bob.index("X") > 8  # in its Delete
    assert "Y" in carol and carol.replace("Y", "") == "Carol   Delete" and carol.index("Y") <= 5
    steps = [json.loads(line) for line in (Path(ran["run_dir"]) / "steps.jsonl").read_text().splitlines()]
    grounding = steps[1]["grounding"]["the Delete button next to Bob"]
    assert grounding["source"] == "ocr" and grounding["score"] > 0.8


# --- a small window on a large, dark desktop ------------------------------------------------------

# A Tk dialog in 8-point text, placed at X, Y on an empty (black) screen; it prints each
# button's box in screen pixels, as JSON, once it is drawn.
SMALL_DIALOG = """
import json, sys, tkinter as tk
root = tk.Tk()
root.geometry(f"+{sys.argv[1]}+{sys.argv[2]}")
tk.Label(root, text="Export options", font=("DejaVu Sans", 8)).pack(padx=6, pady=4)
tk.Checkbutton(root, text="Include hidden files", font=("DejaVu Sans", 8)).pack(anchor="w", padx=6)
row = tk.Frame(root)
row.pack(padx=6, pady=6)
buttons = {name: tk.Button(row, text=name, font=("DejaVu Sans", 8)) for name in ("Apply", "Close")}
for button in buttons.values():
    button.pack(side="left", padx=3)
def ready():
    root.update()
    boxes = {name: [b.winfo_rootx(), b.winfo_rooty(), b.winfo_rootx() + b.winfo_width() - 1,
                    b.winfo_rooty() + b.winfo_height() - 1] for name, b in buttons.items()}
    print(json.dumps(boxes), flush=True)
root.after(200, ready)
root.mainloop()
"""


@pytest.mark.desktop
@pytest.mark.parametrize(("width", "height", "x", "y"), [(1920, 1080, 1500, 820), (2560, 1440, 1100, 600)])
def test_a_small_window_on_a_large_dark_screen_is_read(ocr, width, height, x, y):
    """On a black 1920x1080 Xvfb desktop with one small window, OCR once read no text at all."""
    if shutil.which("Xvfb") is None or importlib.util.find_spec("mss") is None:
        pytest.skip("needs Xvfb (apt-get install xvfb) and pip install '.[desktop]'")
    import mss
    from PIL import Image

    from agent.grounding import Box
    from tools.desktop.xvfb import XvfbDisplay
    from tools.executor import Geometry, Observation

    with XvfbDisplay(width, height) as screen:
        app = subprocess.Popen([sys.executable, "-c", SMALL_DIALOG, str(x), str(y)], stdout=subprocess.PIPE,
                               text=True, env=screen.env)
        try:
            boxes = json.loads(app.stdout.readline())  # type: ignore[union-attr]
            with (getattr(mss, "MSS", None) or mss.mss)(display=screen.display) as grabber:
                shot = grabber.grab(grabber.monitors[1])
        finally:
            app.kill()
            app.wait(timeout=10)
            app.stdout.close()  # type: ignore[union-attr]
    image = Image.frombytes("RGB", shot.size, shot.rgb)
    assert image.size == (width, height)
    observation = Observation(image, Geometry.identity(width, height))
    for name in ("Apply", "Close"):
        found = ocr.locate(observation, f"the {name} button")
        assert Box(*boxes[name]).contains(*found.point), (name, found, boxes[name])
        assert found.box.height < 30  # small text, found where it is
    assert "Include hidden files" in [line.text for line in ocr.read(observation)]
