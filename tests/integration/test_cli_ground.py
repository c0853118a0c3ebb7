"""`internvl-agent ground`, run as a user runs it: a real subprocess, on a PNG that headless
Chromium rendered from a local page, and on the same page served over HTTP on 127.0.0.1.
The truth is each element's box, read from the DOM. No model: OCR and the DOM ground."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from agent.grounding import Box
from tests.helpers.http import serving_folder
from tools.browser import BrowserExecutor

CLI = [sys.executable, "-c", "from agent.cli import main; main()"]
BOX_COLOUR = (255, 0, 64)  # agent/cli/ground.py draws in this colour

PAGE = """<!doctype html><html><head><style>
body { font-family: "DejaVu Sans", sans-serif; font-size: 15px; margin: 24px; background: #fff }
button { font-size: 14px; padding: 4px 10px } td { padding: 6px 14px }
#far { margin-top: 1400px }
</style></head><body>
<h2>Account settings</h2>
<button id="save">Save changes</button> <button id="cancel">Cancel</button>
<table><tr><td>Alice</td><td><button id="del-alice">Delete</button></td></tr>
<tr><td>Bob</td><td><button id="del-bob">Delete</button></td></tr></table>
<button id="settings" aria-label="Settings" style="width: 28px; height: 28px">&#9881;</button>
<p id="far"><button id="archive">Archive</button></p>
</body></html>"""

needs_ocr = pytest.mark.skipif(importlib.util.find_spec("rapidocr") is None, reason="pip install '.[ocr]'")


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([*CLI, "ground", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def _answer(proc: subprocess.CompletedProcess[str]) -> dict:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _one_line_exit(proc: subprocess.CompletedProcess[str], code: int) -> str:
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("site")
    (folder / "index.html").write_text(PAGE, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def shots(site) -> dict[int, tuple[Path, dict[str, Box]]]:
    """The page rendered at scale 1 and 2: {scale: (the PNG, each element's box in its pixels)}."""
    rendered = {}
    for scale in (1, 2):
        with BrowserExecutor(start_url=(site / "index.html").as_uri(), device_scale_factor=scale,
                             capture="png") as browser:
            observation = browser.observe()
            path = site / f"page@{scale}x.png"
            observation.image.save(path)
            rendered[scale] = path, _boxes(browser, scale)
    return rendered


def _boxes(browser: BrowserExecutor, scale: float) -> dict[str, Box]:
    rects = browser.page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('[id]')]
        .map(e => [e.id, e.getBoundingClientRect().toJSON()]))""")
    return {name: Box(int(r["left"] * scale), int(r["top"] * scale), int(r["right"] * scale) - 1,
                      int(r["bottom"] * scale) - 1) for name, r in rects.items()}


def _drawn(path: Path, box: list[int]) -> bool:
    """The box is drawn just outside the target on the written image."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")
        x1, y1, x2, y2 = box
        middle = (y1 + y2) // 2
        return all(rgb.getpixel(p) == BOX_COLOUR for p in [(x1 - 1, middle), (x2 + 1, middle)])


@needs_ocr
@pytest.mark.browser
@pytest.mark.parametrize("scale", [1, 2])
def test_a_screenshot_target_by_ocr_in_the_screenshots_pixels(shots, tmp_path, scale):
    png, boxes = shots[scale]
    out = tmp_path / "marked.png"
    found = _answer(_cli(str(png), "the Delete button next to Bob", "--scale", str(scale), "--json",
                         "--out", str(out), cwd=tmp_path))
    assert set(found) == {"point", "box", "score", "source", "image"}
    assert found["source"] == "ocr" and 0 < found["score"] <= 1
    assert boxes["del-bob"].contains(*found["point"]), (found, boxes["del-bob"])
    assert found["image"] == str(out) and _drawn(out, found["box"])
    with Image.open(png) as original, Image.open(out) as marked:
        assert marked.size == original.size == (1280 * scale, 720 * scale)


@needs_ocr
@pytest.mark.browser
def test_without_json_it_prints_point_box_and_source_and_marks_a_copy_beside_the_image(shots, tmp_path):
    png, boxes = shots[1]
    proc = _cli(str(png), "the 'Save changes' button", "--grounder", "ocr", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(": ", 1) for line in proc.stdout.splitlines() if ": " in line)
    x, y = (int(v) for v in lines["point"].split(", "))
    assert boxes["save"].contains(x, y) and lines["source"].startswith("ocr")
    marked = png.with_name(f"{png.stem}-ground.png")
    assert lines["image"] == str(marked) and _drawn(marked, [int(v) for v in lines["box"].split(", ")])


@pytest.mark.browser
def test_a_served_page_is_grounded_by_its_dom_in_auto(site, tmp_path):
    with serving_folder(site) as url:
        icon = _answer(_cli(f"{url}/index.html", "the Settings button", "--json", cwd=tmp_path))
        scaled = _answer(_cli(f"{url}/index.html", "the second Delete button", "--grounder", "dom",
                              "--scale", "2", "--json", "--out", "scaled.png", cwd=tmp_path))
        below = _answer(_cli(f"{url}/index.html", "the Archive button", "--json", "--out", "below.png",
                             cwd=tmp_path))
        with BrowserExecutor(start_url=f"{url}/index.html") as browser:
            boxes = _boxes(browser, 1)
    assert icon["source"] == "dom" and boxes["settings"].contains(*icon["point"])  # an aria-label alone
    assert icon["image"] == "ground.png" and _drawn(tmp_path / "ground.png", icon["box"])
    double = boxes["del-bob"]
    assert Box(2 * double.left, 2 * double.top, 2 * double.right + 1, 2 * double.bottom + 1).contains(
        *scaled["point"])  # device pixels at scale 2
    # Below the fold: scrolled into view, then measured on the screenshot taken after the scroll.
    assert below["source"] == "dom" and 0 <= below["point"][1] < 720
    assert _drawn(tmp_path / "below.png", below["box"])
    with Image.open(tmp_path / "below.png") as marked, Image.open(tmp_path / "scaled.png") as double:
        assert marked.size == (1280, 720) and double.size == (2560, 1440)


@pytest.mark.browser
@pytest.mark.model
def test_the_model_grounder_runs_with_the_tiny_model(shots, tmp_path):
    """The tiny checkpoint has random weights (real ones cannot be downloaded here): its answer is
    noise, so this checks the path, not the point: a box inside the image, or exit 1 saying why."""
    png, _ = shots[1]
    proc = _cli(str(png), "the Cancel button", "--grounder", "model", "--model", "tiny", "--json",
                "--out", "model.png", cwd=tmp_path)
    if proc.returncode == 1:
        assert "could not find 'the Cancel button'" in _one_line_exit(proc, 1)
        return
    found = _answer(proc)
    x1, y1, x2, y2 = found["box"]
    assert found["source"] == "model" and 0 <= x1 <= x2 < 1280 and 0 <= y1 <= y2 < 720
    assert (tmp_path / "model.png").is_file()


@needs_ocr
@pytest.mark.browser
def test_a_target_that_is_not_there_is_exit_1_with_the_reason(shots, tmp_path):
    png, _ = shots[1]
    line = _one_line_exit(_cli(str(png), "the Publish button", "--json", cwd=tmp_path), 1)
    assert "Publish" in line and "closest text read" in line
    assert not (tmp_path / "page@1x-ground.png").exists()


@pytest.mark.parametrize(("args", "says"), [
    (["missing.png", "the OK button"], "does not exist"),
    (["notes.txt", "the OK button"], "not an image"),
    (["ftp://example.org/", "the OK button"], "is not a URL"),
    (["http://:80/", "the OK button"], "names no host"),
    (["shot.png", "the OK button", "--grounder", "magic"], "give one of auto, dom, ocr, model"),
    (["shot.png", "the OK button", "--grounder", "dom"], "is an image"),
    (["shot.png", "the OK button", "--grounder", "model"], "needs a model"),
    (["shot.png", "the OK button", "--out", "no/such/folder/x.png"], "does not exist"),
    (["http://127.0.0.1:9/", "the OK button", "--viewport", "wide"], "WIDTHxHEIGHT"),
])
def test_a_bad_argument_is_one_line_and_exit_2(tmp_path, args, says):
    (tmp_path / "notes.txt").write_text("not a picture")
    Image.new("RGB", (64, 32), "white").save(tmp_path / "shot.png")
    line = _one_line_exit(_cli(*args, cwd=tmp_path), 2)
    assert says in line, line
