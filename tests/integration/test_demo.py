"""The demo: a bundled web app (tasks/examples/app/), a task on it, and `internvl-agent demo`.

The app is driven in a real Chromium, each page on its own and the whole flow through the
task's steps with the DOM grounder; the success checks must fail when a step is left out.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from agent.cli.run import DEMO_TASK
from agent.grounding.dom import DOMGrounder
from agent.script import ScriptRunner
from agent.task_run import run_task
from tasks.spec import Task
from tests.helpers.http import serving_folder
from tools.browser import BrowserExecutor

APP = DEMO_TASK.parent / "app"
CLI = [sys.executable, "-c", "from agent.cli import main; main()"]

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app_url() -> Iterator[str]:
    with serving_folder(APP) as url:
        yield url


@pytest.fixture
def app(browser: BrowserExecutor, app_url: str) -> BrowserExecutor:
    """The browser on the sign-in page, with nobody signed in and nothing saved."""
    browser.page.goto(f"{app_url}/login.html")
    browser.page.evaluate("localStorage.clear(); sessionStorage.clear()")
    browser.page.reload()
    return browser


def _sign_in(app: BrowserExecutor, password: str = "demo123") -> None:
    app.page.fill("#username", "demo")
    app.page.fill("#password", password)
    app.page.get_by_role("button", name="Sign in").click()


def test_the_demo_steps_sign_in_watch_the_lamp_and_save_its_alerts(app, tmp_path):
    trajectory = ScriptRunner(app, DOMGrounder(app), runs_dir=tmp_path).run(Task.load(DEMO_TASK))

    assert trajectory.outcome == "finished", trajectory.answer
    page = app.page
    assert page.url.endswith("/saved.html")
    assert page.inner_text("#msg") == ("Settings saved. Restock alerts are on (daily digest). "
                                       "Watching: Walnut desk lamp.")
    assert page.evaluate("JSON.parse(localStorage.getItem('watchlist'))") == ["LS-1042"]
    saved = page.evaluate("JSON.parse(localStorage.getItem('settings'))")
    assert (saved["restockAlerts"], saved["frequency"], saved["compactRows"]) == (True, "daily", False)


def test_a_wrong_password_is_refused_with_a_message(app):
    _sign_in(app, password="demo12")
    page = app.page
    assert page.url.endswith("/login.html")
    assert page.get_by_role("alert").inner_text() == "Wrong username or password. Check them and try again."
    assert page.input_value("#password") == ""
    assert page.evaluate("sessionStorage.getItem('user')") is None


@pytest.mark.parametrize("page_name", ["catalogue.html", "item.html?sku=LS-1042", "settings.html",
                                       "saved.html"])
def test_a_page_behind_the_sign_in_sends_a_visitor_to_it(app, app_url, page_name):
    app.page.goto(f"{app_url}/{page_name}")
    app.page.wait_for_url("**/login.html")


def test_the_search_narrows_the_catalogue_and_each_row_has_its_own_view_button(app):
    _sign_in(app)
    page = app.page
    page.wait_for_url("**/catalogue.html")
    assert page.locator("#products tbody tr").count() == 14
    page.get_by_role("searchbox", name="Search products").fill("lamp")
    names = page.locator("#products tbody tr td:first-child").all_inner_texts()
    assert names == ["Linen lamp shade", "Brass floor lamp", "Walnut desk lamp", "Clip-on reading lamp"]
    assert page.get_by_role("status").inner_text() == "Showing 4 of 14 products"
    page.get_by_role("button", name="Clear search").click()
    page.get_by_role("button", name="Lighting", exact=True).click()
    assert page.locator("#products tbody tr").count() == 5
    page.get_by_role("button", name="View Walnut desk lamp").click()
    page.wait_for_url("**/item.html?sku=LS-1042")
    assert page.get_by_role("heading", level=1).inner_text() == "Walnut desk lamp"


def test_watching_toggles_and_the_frequency_waits_for_alerts_to_be_on(app, app_url):
    _sign_in(app)
    page = app.page
    page.goto(f"{app_url}/item.html?sku=LS-1042")
    watch = page.get_by_role("button", name="Watch this item")
    watch.click()
    assert page.get_by_role("button", name="Watching").get_attribute("aria-pressed") == "true"
    page.get_by_role("button", name="Watching").click()  # again: no longer watched
    assert page.evaluate("localStorage.getItem('watchlist')") == "[]"
    page.get_by_role("button", name="Watch this item").click()
    page.get_by_role("link", name="Settings").first.click()
    page.wait_for_url("**/settings.html")
    assert page.get_by_role("listitem").first.inner_text() == "Walnut desk lamp (LS-1042)"
    assert page.get_by_role("radio", name="Daily digest").is_disabled()
    page.get_by_role("switch", name="Restock alerts").click()
    page.get_by_role("radio", name="Weekly digest").click()
    page.get_by_role("button", name="Save settings").click()
    page.wait_for_url("**/saved.html")
    assert "Restock alerts are on (weekly digest)" in page.inner_text("#msg")


def _changed_task(tmp_path: Path, change, **fields: object) -> Path:
    """A copy of the demo task, beside a copy of its app, its steps changed by `change`."""
    data = yaml.safe_load(DEMO_TASK.read_text(encoding="utf-8"))
    data.update(fields, steps=change(data["steps"]))
    shutil.copytree(APP, tmp_path / "app")
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _task_without(tmp_path: Path, *left_out: str) -> Path:
    """The demo task without the steps that name `left_out`."""
    def leave_out(steps: list) -> list:
        kept = [s for s in steps if not any(words in json.dumps(s) for words in left_out)]
        assert len(kept) == len(steps) - len(left_out)
        return kept

    return _changed_task(tmp_path, leave_out)


def test_the_bundled_task_passes_its_checks(tmp_path):
    result = run_task(Task.load(DEMO_TASK), grounder="dom", runs_dir=tmp_path)

    assert result.success, [c.why for c in result.checks]
    assert len(result.checks) == 6 and all(c.ok for c in result.checks)  # five, then their `all`
    assert result.outcome == "finished"


@pytest.mark.parametrize("left_out", [
    ("the Save settings button", "Settings saved"),  # the last action, and its expect_text
    ("the Daily digest radio button",),
    ("the Watch this item button", "You are watching this item"),
])
def test_the_checks_fail_when_a_step_is_left_out(tmp_path, left_out):
    task = Task.load(_task_without(tmp_path, *left_out))
    result = run_task(task, grounder="dom", runs_dir=tmp_path / "runs")

    assert result.outcome == "finished"  # every step that is left ran
    assert not result.success
    assert not all(c.ok for c in result.checks)


def test_the_task_with_a_wrong_password_stops_at_the_sign_in_page_and_fails(tmp_path):
    def wrong_password(steps: list) -> list:
        assert steps[1] == {"type": {"text": "demo123", "target": "the Password field"}}
        return [steps[0], {"type": {"text": "demo1234", "target": "the Password field"}}, *steps[2:]]

    task = Task.load(_changed_task(tmp_path, wrong_password, timeout=1))
    result = run_task(task, grounder="dom", runs_dir=tmp_path / "runs")

    # Step 4, expect_text "Signed in as demo", waited its second in vain.
    assert (result.outcome, result.steps, result.success) == ("failed", 4, False)
    assert result.checks[0].why.endswith("/login.html")


def _demo(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([*CLI, "demo", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_demo_runs_the_task_and_passes_every_check(tmp_path):
    proc = _demo("--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "step" in out and "the View Walnut desk lamp button" in out and "Save settings" in out
    assert "done: 5 of 5 checks passed" in out and "not done" not in out
    report = Path(out.rsplit("report: ", 1)[1].split()[0])
    assert report.name == "report.html" and report.is_file()
    record = json.loads((report.parent / "run.json").read_text())
    assert record["success"] is True


def test_the_demo_with_a_model_that_is_not_here_is_one_line_and_exit_2(tmp_path):
    proc = _demo("--model", "does-not-exist", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)

    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "does-not-exist" in lines[0] and "hf download" in lines[0], lines
    assert not (tmp_path / "runs").exists()


@pytest.mark.model
def test_the_demo_with_the_tiny_model_fails_its_checks_and_says_so(tmp_path):
    proc = _demo("--model", "tiny", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "not done" in proc.stdout and "random weights" in proc.stdout
