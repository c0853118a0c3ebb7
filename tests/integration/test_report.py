"""The HTML report of a run, opened in a real Chromium from disk, as a person would open it."""

from __future__ import annotations

import pytest
from PIL import Image

from agent.report import write_report
from agent.trajectory import Step, Trajectory
from tools.browser import BrowserExecutor
from tools.executor import ActionResult

pytestmark = pytest.mark.browser

HOSTILE = "<script>window.pwned = 1</script><img src=x onerror='window.pwned = 2'>"


def _run(tmp_path) -> Trajectory:
    trajectory = Trajectory.create(tmp_path, goal="Click <b>OK</b>", run_id="r", meta={"model": "scripted"})
    screen = Image.new("RGB", (400, 200), (240, 240, 240))
    trajectory.append(Step(index=1, observation={"size": [400, 200], "url": "http://127.0.0.1/x"},
                           model_text=f"I will click. {HOSTILE}", action={"action": "click", "target": "OK"},
                           result=ActionResult(ok=True), grounded={"OK": [100, 50]},
                           timings_ms={"model": 12.0, "ground": 3.0}), screen)
    trajectory.append(Step(index=2, observation={"size": [400, 200]}, model_text="hmm",
                           parse_error="no action found"), screen)
    trajectory.end("too_many_errors")
    return trajectory


def test_the_report_shows_every_step_and_runs_nothing_the_model_wrote(tmp_path):
    trajectory = _run(tmp_path)
    path = write_report(trajectory.run_dir)
    with BrowserExecutor(start_url=path.as_uri()) as browser:
        page = browser.page
        assert page.evaluate("window.pwned") is None  # neither the script nor the onerror ran
        assert page.locator("section.step").count() == 2
        assert page.locator("h1").inner_text() == "Click <b>OK</b>"  # shown as text, not markup
        assert HOSTILE in page.locator("#step-1 pre").nth(1).inner_text()
        assert page.evaluate("[...document.images].every(i => i.complete && i.naturalWidth === 400)")
        mark = page.locator("#step-1 .mark")
        assert mark.get_attribute("title") == "OK" and "left:25.00%" in mark.get_attribute("style")
        assert "no action found" in page.locator("#step-2 .failed").inner_text()
        assert "too_many_errors" in page.locator("body > p").first.inner_text()


def test_a_run_killed_mid_write_still_reports_its_complete_steps(tmp_path):
    trajectory = _run(tmp_path)
    with (trajectory.run_dir / "steps.jsonl").open("a", encoding="utf-8") as f:
        f.write('{"index": 3, "observation": {"si')  # the kill came in the middle of a line
    assert len(Trajectory.read_steps(trajectory.run_dir)) == 2
    assert write_report(trajectory.run_dir).is_file()


def test_a_damaged_record_is_one_agent_error(tmp_path):
    from tools.errors import AgentError

    (tmp_path / "steps.jsonl").write_text('{"index": "not a number"}\n')
    with pytest.raises(AgentError, match="cannot read the steps"):
        write_report(tmp_path)
