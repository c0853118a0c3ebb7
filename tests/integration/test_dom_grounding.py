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
        found = DOMGrounder(browser).locate(observation, "the Click me button")
        box = found.box
        assert (found.source, found.point) == ("dom", box.center)
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


_RICH = """<!DOCTYPE html><html><head><meta charset="utf-8"><style>
  body { margin: 0; font: 16px sans-serif; } table { margin: 10px; } td { padding: 4px 12px; }
  .icon { width: 32px; height: 32px; }
  iframe { position: absolute; left: 600px; top: 20px; border: 3px solid #888; padding: 5px;
    width: 300px; height: 120px; }
  #far { position: absolute; top: 2600px; left: 40px; }
  dialog { position: absolute; top: 330px; left: 500px; margin: 0; }
</style></head><body>
<p id="hint">Click on the OK button when you are done, then press Delete for Bob, not Archive.</p>
<table><tr><td id="alice">Alice</td><td><button id="del-alice">Delete</button></td></tr>
<tr><td id="bob">Bob</td><td><button id="del-bob">Delete</button></td></tr>
<tr><td id="carol">Carol</td><td><button id="del-carol">Delete</button></td></tr></table>
<button id="ok-main">OK</button>
<button id="gear" class="icon" aria-label="Settings">&#9881;</button>
<button id="trash" class="icon" title="Move to trash">&#128465;</button>
<button id="ghost" style="display:none">Archive</button>
<div id="host"></div>
<dialog id="save" open aria-labelledby="save-title">
  <h2 id="save-title">Save</h2><button id="ok-save">OK</button></dialog>
<iframe id="frame"
  srcdoc="<body style='margin:0'><button id='inner' style='margin:10px'>Frame button</button>"></iframe>
<button id="far">Far away</button>
<script>
  document.getElementById('host').attachShadow({mode: 'open'}).innerHTML =
    '<button id="shadowed">Shadow button</button>';
</script></body></html>"""


@pytest.fixture
def rich(browser):
    while len(browser.tabs()) > 1:
        browser.close_tab(len(browser.tabs()) - 1)
    browser.page.set_content(_RICH)
    browser.page.wait_for_function("document.getElementById('frame').contentDocument?.getElementById('inner')")
    return browser


def _id_at(browser, x, y, scale=1):
    """The id of the innermost element at screenshot pixel (x, y), through frames and shadow roots."""
    return browser.page.evaluate("""([x, y]) => {
        let doc = document, el = doc.elementFromPoint(x, y), dx = 0, dy = 0;
        while (el && el.tagName === 'IFRAME') {
            const r = el.getBoundingClientRect();
            dx += r.left + el.clientLeft + 5; dy += r.top + el.clientTop + 5;
            doc = el.contentDocument; el = doc.elementFromPoint(x - dx, y - dy);
        }
        while (el && el.shadowRoot) {
            const inner = el.shadowRoot.elementFromPoint(x, y);
            if (!inner || inner === el) break;
            el = inner;
        }
        return el && el.id; }""", [x / scale, y / scale])


@pytest.mark.parametrize(("description", "element_id"), [
    ("the Frame button", "inner"),  # inside an iframe, at the frame's offset
    ("the Shadow button", "shadowed"),  # inside an open shadow root
    ("the second Delete button", "del-bob"),
    ("the last Delete button", "del-carol"),
    ("the Delete button next to Bob", "del-bob"),
    ("the Delete button in Carol's row", "del-carol"),
    ("the OK button in the Save dialog", "ok-save"),
    ("the OK button", "ok-main"),  # the button itself, not the paragraph that mentions it
    ("the Settings button", "gear"),  # known only by aria-label
    ("the Settings icon", "gear"),
    ("the Move to trash button", "trash"),  # known only by title
    ("Bob", "bob"),  # the smallest element that holds the text
])
def test_rich_descriptions_land_on_their_element(rich, description, element_id):
    x, y = DOMGrounder(rich).locate(rich.observe(), description).point
    assert _id_at(rich, x, y) == element_id


def test_a_target_below_the_fold_is_scrolled_into_view_and_measured_again(rich):
    found = DOMGrounder(rich).locate(rich.observe(), "the Far away button")
    assert found.tried and "scrolled" in found.tried[0]
    assert 0 <= found.point[1] < 720
    assert _id_at(rich, *found.point) == "far"
    with pytest.raises(GroundingError, match="off screen"):
        rich.page.evaluate("window.scrollTo(0, 0)")
        DOMGrounder(rich, scroll=False).locate(rich.observe(), "the Far away button")


def test_a_hidden_target_or_an_unreadable_description_is_a_grounding_error(rich):
    grounder = DOMGrounder(rich)
    with pytest.raises(GroundingError, match="hidden"):
        grounder.locate(rich.observe(), "the Archive button")
    with pytest.raises(GroundingError, match="cannot read"):
        grounder.locate(rich.observe(), "  ")
    with pytest.raises(GroundingError, match="only 3"):
        grounder.locate(rich.observe(), "the fifth Delete button")


def test_frames_shadow_roots_and_relations_keep_screenshot_pixels_at_scale_2():
    with BrowserExecutor(device_scale_factor=2) as browser:
        browser.page.set_content(_RICH)
        browser.page.wait_for_function("document.getElementById('frame').contentDocument?.getElementById('inner')")
        observation = browser.observe()
        assert observation.size == (2560, 1440)
        grounder = DOMGrounder(browser)
        for description, element_id in [("the Frame button", "inner"), ("the Shadow button", "shadowed"),
                                        ("the Delete button next to Carol", "del-carol")]:
            x, y = grounder.locate(observation, description).point
            assert _id_at(browser, x, y, scale=2) == element_id
