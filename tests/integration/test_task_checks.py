"""Success checks on a real Chromium and real files, and `expect_text` steps waiting for text.

Each check kind is written as a task file writes it, judged on a page served from a folder
this module writes, and must both pass and fail; a failure says what it saw.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agent.grounding.dom import DOMGrounder
from agent.script import Script, ScriptRunner
from tasks.checks import CheckResult, parse_check, run_checks
from tasks.serve import serve_folder
from tasks.yamlfile import Source
from tools.browser import BrowserExecutor
from tools.desktop import DesktopExecutor

pytestmark = pytest.mark.browser

PAGE = """<!doctype html>
<html><head><title>Checks page</title></head>
<body>
  <h1>Your order</h1>
  <p id="msg">Account   created for
     Ada</p>
  <ul><li>milk</li><li>eggs</li><li>bread</li></ul>
  <p id="later"></p>
  <script>
    window.total = 42;
    setTimeout(() => { document.getElementById("later").textContent = "Payment received"; }, 400);
  </script>
</body></html>
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("site")
    (folder / "page.html").write_text(PAGE, encoding="utf-8")
    with serve_folder(folder) as base:
        yield base


@pytest.fixture
def page(browser: BrowserExecutor, site: str) -> BrowserExecutor:
    browser.page.goto(f"{site}/page.html")
    return browser


def _check(raw: dict) -> object:
    return parse_check(raw, Source("test"), ())


def _judge(raw: dict, executor, **context) -> CheckResult:
    results = run_checks(_check(raw), executor, **context)
    return results[-1]


@pytest.mark.parametrize(("raw", "ok", "why"), [
    ({"url_matches": r".*/page\.html$"}, True, "url was http://127.0.0.1:"),
    ({"url_matches": r"/welcome\.html"}, False, "/page.html"),
    ({"title_matches": "^Checks page$"}, True, "title was 'Checks page'"),
    ({"title_matches": "Welcome"}, False, "title was 'Checks page'"),
    ({"element_text": {"selector": "#msg", "equals": "Account created for Ada"}}, True, "Account created"),
    ({"element_text": {"selector": "#msg", "contains": "created for Ada"}}, True, "#msg"),
    ({"element_text": {"selector": "#msg", "equals": "Account created"}}, False,
     "the text of #msg was 'Account created for Ada'"),
    ({"element_text": {"selector": "#nope", "contains": "x"}}, False, "no element matches '#nope'"),
    ({"element_text": {"selector": "#msg[", "contains": "x"}}, False, "element_text failed on the page"),
    ({"element_exists": "li"}, True, "3 element(s) matched 'li'"),
    ({"element_exists": "#cart"}, False, "0 element(s) matched '#cart'"),
    ({"js": "document.querySelectorAll('li').length === 3"}, True, "it gave true"),
    ({"js": "window.total"}, True, "it gave 42"),
    ({"js": "window.total > 100"}, False, "it gave false"),
    ({"js": "noSuchFunction()"}, False, "js failed on the page: ReferenceError: noSuchFunction is not"),
    ({"screen_text": "Your order"}, False, "screen_text needs OCR"),
])
def test_each_page_check_passes_or_fails_saying_what_it_saw(page, raw, ok, why):
    result = _judge(raw, page)
    assert result.ok is ok and why in result.why, result
    assert result.check.startswith(next(iter(raw)))


def test_file_checks_read_paths_relative_to_the_task_folder(page, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "note.txt").write_text("Buy milk\nand eggs\n", encoding="utf-8")
    cases = [
        ({"file_exists": "out/note.txt"}, True, "note.txt exists"),
        ({"file_exists": "out/other.txt"}, False, "out/other.txt does not exist"),
        ({"file_contains": {"path": "out/note.txt", "text": "Buy milk"}}, True, "held 'Buy milk and eggs'"),
        ({"file_contains": {"path": "out/note.txt", "text": "bread"}}, False, "held 'Buy milk and eggs'"),
        ({"file_contains": {"path": "out/none.txt", "text": "x"}}, False, "could not be read"),
    ]
    for raw, ok, why in cases:
        result = _judge(raw, page, base_dir=tmp_path)
        assert result.ok is ok and why in result.why, result


def test_answer_matches_reads_the_runs_answer(page):
    assert _judge({"answer_matches": r"\b42\b"}, page, answer="The total is 42.").ok
    missed = _judge({"answer_matches": r"\b42\b"}, page, answer="It is 420")
    assert not missed.ok and missed.why == "answer was 'It is 420'"
    assert _judge({"answer_matches": "x"}, page, answer=None).why == "the run gave no answer"


def test_all_and_any_nest_and_the_last_result_is_the_verdict(page):
    check = _check({"all": [
        {"url_matches": "page"},
        {"any": [{"title_matches": "Welcome"}, {"element_exists": "h1"}]},
    ]})
    results = run_checks(check, page)
    assert [r.check for r in results] == ["url_matches: page", "title_matches: Welcome", "element_exists: h1",
                                          "any of 2", "all of 2"]
    assert [r.ok for r in results] == [True, False, True, True, True]
    assert results[-1].why == "2 of 2 passed"

    failing = run_checks(_check({"any": [{"title_matches": "Welcome"}, {"js": "false"}]}), page)
    assert not failing[-1].ok and failing[-1].why.startswith("0 of 2 passed; failed: title_matches: Welcome "
                                                              "(title was 'Checks page')")
    one_off = run_checks(_check({"all": [{"element_exists": "h1"}, {"element_exists": "#cart"}]}), page)
    assert not one_off[-1].ok
    assert one_off[-1].why == "1 of 2 passed; failed: element_exists: #cart (0 element(s) matched '#cart')"


def test_page_checks_on_the_desktop_fail_instead_of_raising():
    desktop = DesktopExecutor()  # never started: a page check must not need it
    result = _judge({"element_text": {"selector": "#msg", "contains": "x"}}, desktop)
    assert not result.ok and result.why == "element_text reads a web page, and this task runs on the desktop"


def test_expect_text_waits_until_the_text_is_shown(page, tmp_path):
    script = Script.parse({"timeout": 5, "steps": [{"expect_text": "Payment   received"}]})
    runner = ScriptRunner(page, DOMGrounder(page), runs_dir=tmp_path, retry_every_s=0.1)
    trajectory = runner.run(script)  # the text appears 400 ms after the load
    assert trajectory.outcome == "finished" and trajectory.steps[0].ok


def test_expect_text_fails_after_its_timeout_saying_what_the_page_shows(page, tmp_path):
    script = Script.parse({"timeout": 1, "steps": [{"expect_text": "Order shipped"}, {"wait": 0.1}]})
    runner = ScriptRunner(page, DOMGrounder(page), runs_dir=tmp_path, retry_every_s=0.2)
    trajectory = runner.run(script)
    assert (trajectory.outcome, len(trajectory)) == ("failed", 1)
    error = trajectory.steps[0].result.error
    assert error.startswith("the text 'Order shipped' is not shown; the screen shows "
                            "'Your order Account created for Ada milk eggs bread")
    assert error.endswith("(looked for 1 s)")


def test_visible_text_leaves_out_what_css_hides(browser: BrowserExecutor, site: str):
    browser.page.set_content("<p>shown</p><p style='display:none'>hidden</p>"
                             "<iframe srcdoc='<p>framed</p>'></iframe>")
    browser.page.wait_for_function("document.querySelector('iframe').contentDocument.body.innerText")
    assert browser.visible_text() == "shown framed"

