"""CascadeGrounder and auto_grounder: DOM, then OCR, then the model, recording who answered
and why the others did not. Real grounders on a real page; a scripted model where weights
would be needed."""

from __future__ import annotations

import importlib.util

import pytest

from agent.grounding import Box, Grounding
from agent.grounding.cascade import CascadeGrounder, auto_grounder
from agent.grounding.dom import DOMGrounder
from agent.grounding.model import ModelGrounder
from agent.grounding.ocr import OCRGrounder
from agent.script import Script, ScriptRunner
from agent.trajectory import Trajectory
from model.scripted import ScriptedModel
from tools.errors import GroundingError

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(importlib.util.find_spec("rapidocr") is None, reason="pip install '.[ocr]'")]

# "Export" is drawn on a canvas: no element holds it, so only the screenshot shows it.
PAGE = """<!doctype html><html><body style="font-family: 'DejaVu Sans', sans-serif; margin: 30px">
<button id="save" style="font-size: 16px">Save changes</button>
<canvas id="canvas" width="300" height="80" style="display: block; margin-top: 30px"></canvas>
<script>{  /* a block: set_content reuses the window, and its globals */
const c = document.getElementById("canvas").getContext("2d");
c.fillStyle = "#fff"; c.fillRect(0, 0, 300, 80); c.fillStyle = "#000"; c.font = "22px 'DejaVu Sans'";
c.fillText("Export", 20, 45);
}
window.clicked = [];
document.addEventListener("click", e => window.clicked.push([e.target.id, e.offsetX, e.offsetY]));
</script></body></html>"""


class NoGrounder:
    """A grounder that never finds anything (for the order of a cascade)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.asked = 0

    def locate(self, observation, description) -> Grounding:
        self.asked += 1
        raise GroundingError(f"{self.name} never finds {description!r}")


@pytest.fixture(scope="module")
def ocr() -> OCRGrounder:
    return OCRGrounder()


@pytest.fixture
def page(browser):
    browser.page.set_content(PAGE)
    return browser


def test_the_dom_answers_first_when_the_markup_has_it(page, ocr):
    cascade = CascadeGrounder([DOMGrounder(page), ocr])
    found = cascade.locate(page.observe(), "the Save changes button")
    assert (found.source, found.tried) == ("dom", ())


def test_text_only_the_screenshot_shows_falls_through_to_ocr_with_the_reason(page, ocr):
    cascade = CascadeGrounder([DOMGrounder(page), ocr])
    observation = page.observe()
    found = cascade.locate(observation, "the Export button")
    assert found.source == "ocr"
    (reason,) = found.tried
    assert reason.startswith("dom: no element on the page matches 'the Export button'")
    canvas = page.page.evaluate("document.getElementById('canvas').getBoundingClientRect().toJSON()")
    x, y = found.point
    assert canvas["left"] <= x <= canvas["right"] and canvas["top"] <= y <= canvas["bottom"]


def test_the_model_answers_last_and_every_reason_is_kept(page, ocr):
    model = ScriptedModel(["<box>[[10, 10, 50, 50]]</box>"])
    cascade = CascadeGrounder([DOMGrounder(page), ocr, ModelGrounder(model)])
    found = cascade.locate(page.observe(), "the gear icon")
    assert found.source == "model" and found.box == Box(13, 7, 64, 36)
    assert [reason.split(":")[0] for reason in found.tried] == ["dom", "ocr"]
    assert "no text reads 'gear'" in found.tried[1]


def test_a_target_no_grounder_finds_lists_each_reason_in_order(page):
    first, second = NoGrounder("first"), NoGrounder("second")
    reasons = r"\(first -> second\): first: first never .*; second: second never"
    with pytest.raises(GroundingError, match=reasons):
        CascadeGrounder([first, second]).locate(page.observe(), "the gear icon")
    assert (first.asked, second.asked) == (1, 1)
    with pytest.raises(ValueError):
        CascadeGrounder([])


def test_auto_grounder_is_dom_ocr_model_in_a_browser_and_skips_a_missing_model(page):
    assert auto_grounder(page).names == ("dom", "ocr")
    assert auto_grounder(page, ScriptedModel([])).names == ("dom", "ocr", "model")


def test_auto_grounder_on_the_desktop_has_no_dom():
    class Desktop:  # any executor that is not a browser
        pass

    assert auto_grounder(Desktop()).names == ("ocr",)  # type: ignore[arg-type]
    assert auto_grounder(Desktop(), ScriptedModel([])).names == ("ocr", "model")  # type: ignore[arg-type]


def test_a_script_records_who_grounded_each_step(page, tmp_path):
    script = Script.parse({"steps": [{"click": "the Save changes button"}, {"click": "the Export text"}]})
    trajectory = ScriptRunner(page, auto_grounder(page), runs_dir=tmp_path).run(script)
    assert trajectory.outcome == "finished"
    steps = Trajectory.read_steps(trajectory.run_dir)
    save, export = (step.grounding for step in steps)
    assert save["the Save changes button"]["source"] == "dom"
    assert export["the Export text"]["source"] == "ocr"
    assert export["the Export text"]["tried"][0].startswith("dom:")
    assert [c[0] for c in page.page.evaluate("window.clicked")] == ["save", "canvas"]
    assert steps[1].grounded["the Export text"] == export["the Export text"]["point"]
