"""Task files over the widgets every app has, scripted in words and checked on the app's own state.

tests/tasks/widgets/ (web pages): rows that repeat their Edit and Delete buttons (relations and
ordinals), a modal dialog, tabs, a form with a text field, a native <select>, a pre-filled
number field, a checkbox, radio buttons and a textarea; icon buttons, a menu, a combobox, a
rich-text editor, a shadow root, an iframe, a button below the fold; late content, a drag
between columns, client-side routes. Each runs in a real Chromium with the embedded grounders.
tests/tasks/desktop-widgets/: a Tk form (entries by their labels, a checkbox, a radio button, a
list, buttons) on a real Xvfb display, grounded by OCR alone, checked by the file it writes.
No model takes part.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.task_run import run_task
from tasks.spec import Task

TASKS = Path(__file__).resolve().parent.parent / "tasks"
WIDGETS = TASKS / "widgets"


@pytest.mark.browser
@pytest.mark.parametrize("grounder", ["dom", "auto"])
@pytest.mark.parametrize("name", sorted(path.stem for path in WIDGETS.glob("*.yaml")))
def test_each_web_widget_task_succeeds_with_the_embedded_grounders(name: str, grounder: str,
                                                                   tmp_path: Path) -> None:
    result = run_task(Task.load(WIDGETS / f"{name}.yaml"), grounder=grounder, runs_dir=tmp_path)

    failed = [check.why for check in result.checks if not check.ok]
    assert result.success, (result.outcome, failed)


@pytest.mark.desktop
def test_a_desktop_form_is_filled_by_its_labels_with_ocr_alone(tmp_path: Path) -> None:
    from tools.desktop.xvfb import XvfbDisplay

    if shutil.which("Xvfb") is None:
        pytest.skip("needs Xvfb")
    folder = shutil.copytree(TASKS / "desktop-widgets", tmp_path / "task")
    with XvfbDisplay(1024, 768) as xvfb:
        # `python3` in the task's command is this interpreter, which has tkinter.
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        proc = subprocess.run(
            [sys.executable, "-c", "from agent.cli import main; main()", "script", "add-contact.yaml",
             "--grounder", "ocr", "--json", "--runs-dir", str(tmp_path / "runs")],
            cwd=folder, env={**os.environ, "DISPLAY": xvfb.display, "PATH": path, "HF_HUB_OFFLINE": "1"},
            capture_output=True, text=True, timeout=600,
        )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (proc.returncode, result["success"]) == (0, True), (proc.stderr[-2000:], result["checks"])
    assert json.loads((folder / "out" / "contact.json").read_text()) == {
        "name": "Grace Hopper", "email": "grace@example.org", "newsletter": True, "kind": "business",
        "city": "Osaka"}
