"""Task files on a page of the widgets every web app has, scripted in words and checked on the page.

tests/tasks/widgets/: a table whose rows repeat their Edit and Delete buttons (relations and
ordinals), a modal dialog, tabs, and a form with a text field, a native <select>, a pre-filled
number field, a checkbox, radio buttons and a textarea. Each task runs its steps with the
embedded grounders in a real Chromium, with no model, and its success checks read the page's
own state.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.task_run import run_task
from tasks.spec import Task

pytestmark = pytest.mark.browser

WIDGETS = Path(__file__).resolve().parent.parent / "tasks" / "widgets"


@pytest.mark.parametrize("grounder", ["dom", "auto"])
@pytest.mark.parametrize("name", sorted(path.stem for path in WIDGETS.glob("*.yaml")))
def test_each_widget_task_succeeds_with_the_embedded_grounders(name: str, grounder: str, tmp_path: Path) -> None:
    result = run_task(Task.load(WIDGETS / f"{name}.yaml"), grounder=grounder, runs_dir=tmp_path)

    failed = [check.why for check in result.checks if not check.ok]
    assert result.success, (result.outcome, failed)
