"""The DOM grounder on a real Chromium page: descriptions in words -> elements -> pixels."""

from __future__ import annotations

import pytest

from agent.grounding.dom import DOMGrounder, read_description
from agent.script import Script, ScriptRunner
from tools.actions import Click
from tools.browser import BrowserExecutor
from tools.errors import GroundingError

pytestmark = pytest.mark.browser


@pytest.mark.parametrize(("description", "parsed"), [
    ("the Click me button", ("button", "Click me")),
    ("the text field", ("textbox", "")),
    ("an 'Email' input", ("textbox", "Email")),
    ("the “Second page” link", ("link", "Second page")),
    ("the Hover me box", (None, "Hover me")),
    ("Drop here", (None, "Drop here")),
    ("the search box", ("searchbox", "")),
])
def test_a_description_reads_as_a_role_and_a_name(description, parsed):
    assert read_description(description) == parsed


@pytest.mark.parametrize(("description", "element_id"), [
    ("the Click me button", "button"),
    ("the text field", "text"),
    ("the Type here field", "text"),  # by its placeholder
    ("the 'Second page' link", "link"),
    ("the Hover me box", "hover"),
    ("Drop here", "drop"),
])
def test_each_description_lands_on_its_element(playground, description, element_id):
    observation = playground.observe()
    x, y = DOMGrounder(playground).locate(observation, description).center
    assert playground.page.evaluate(f"document.elementFromPoint({x}, {y}).id") == element_id


def test_an_element_that_is_not_there_or_not_on_screen_is_a_grounding_error(playground):
    grounder = DOMGrounder(playground)
    with pytest.raises(GroundingError, match="no element on the page matches 'the Delete button'"):
        grounder.locate(playground.observe(), "the Delete button")
    playground.page.evaluate("document.getElementById('button').style.display = 'none'")
    with pytest.raises(GroundingError):
        grounder.locate(playground.observe(), "the Click me button")


def test_boxes_are_in_screenshot_pixels_at_device_scale_2(page_server):
    with BrowserExecutor(start_url=f"{page_server}/playground.html", device_scale_factor=2) as browser:
        observation = browser.observe()
        box = DOMGrounder(browser).locate(observation, "the Click me button")
        css = browser.page.evaluate("document.getElementById('button').getBoundingClientRect().toJSON()")
        assert abs(box.left - 2 * css["left"]) <= 1 and abs(box.right - 2 * css["right"]) <= 2
        x, y = box.center  # and the executor maps it back: the click lands on the button
        assert browser.execute(Click(x=x, y=y)).ok
        assert browser.page.evaluate("window.state.clicks") == 1


def test_a_script_runs_with_dom_grounding_and_no_model(playground, tmp_path):
    script = Script.parse({"steps": [{"click": "the Click me button"},
                                     {"type": {"text": "no model", "target": "the text field"}},
                                     {"expect": "the Drop here box"}]})
    trajectory = ScriptRunner(playground, DOMGrounder(playground), runs_dir=tmp_path).run(script)
    assert trajectory.outcome == "finished"
    assert playground.page.evaluate("window.state.clicks") == 1
    assert playground.page.input_value("#text") == "no model"
