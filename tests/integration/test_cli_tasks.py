"""`script TASK`, `run --task TASK` and `tasks DIR`, run as a user runs them: real subprocesses,
a real Chromium on the task's served folder, the tiny model, and a real program on Xvfb."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.cli import CLI, run_cli
from tools.desktop.xvfb import XvfbDisplay

TASKS = Path(__file__).resolve().parent.parent / "tasks"
SIGNUP = TASKS / "signup"
JSON_KEYS = ["task", "success", "outcome", "steps", "run_dir", "checks"]
SECRET = "correct-horse-battery-staple"


def _cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=cwd, env={"pw": SECRET, **(env or {})})


def _result(proc: subprocess.CompletedProcess[str]) -> dict:
    """The --json object: the last line of stdout."""
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert list(result) == JSON_KEYS
    assert all(list(check) == ["check", "ok", "why"] for check in result["checks"])
    return result


def _one_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.browser
def test_script_runs_a_tasks_steps_then_its_checks_and_exits_0(tmp_path):
    proc = _cli("script", str(SIGNUP / "signup.yaml"), "--grounder", "dom", "--secret", "pw", "--json",
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = _result(proc)
    assert (result["task"], result["success"], result["outcome"]) == ("signup", True, "finished")
    assert result["steps"] == 5
    assert [c["ok"] for c in result["checks"]] == [True, True, True, True]
    assert result["checks"][0]["why"].startswith("url was http://127.0.0.1:")
    run_dir = tmp_path / result["run_dir"]
    record = json.loads((run_dir / "run.json").read_text())
    assert record["success"] is True and record["checks"] == result["checks"] and record["task"] == "signup"
    written = "".join(p.read_text(encoding="utf-8") for p in run_dir.glob("*.json*"))
    assert SECRET not in written and SECRET not in proc.stdout + proc.stderr
    assert "check all of 3: pass (3 of 3 passed)" in proc.stderr


@pytest.mark.browser
def test_a_failed_check_exits_1_and_the_json_names_what_was_seen(tmp_path):
    proc = _cli("script", str(SIGNUP / "signup-wrong-name.yaml"), "--grounder", "dom", "--json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    result = _result(proc)
    assert (result["success"], result["outcome"]) == (False, "finished")
    (check,) = result["checks"]
    assert check == {"check": "element_text: #msg equals 'Account created for Grace Hopper'", "ok": False,
                     "why": "the text of #msg was 'Account created for Ada Lovelace'"}


@pytest.mark.browser
def test_a_failed_step_exits_1_and_its_checks_still_run(tmp_path, page_server):
    (tmp_path / "t.yaml").write_text(f"""
name: missing-button
start: {{url: '{page_server}/playground.html'}}
timeout: 1
steps:
  - click: the Delete everything button
success:
  title_matches: .
""")
    proc = _cli("script", "t.yaml", "--grounder", "dom", "--json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    result = _result(proc)
    assert (result["success"], result["outcome"], result["steps"]) == (False, "failed", 1)
    assert result["checks"][0]["ok"]  # the page is there; the run failed all the same
    assert ("task missing-button: failed: the run's outcome was failed: step 1 (click): The action failed: "
            "no element on the page matches 'the Delete everything button'") in proc.stderr


@pytest.mark.parametrize(("text", "says"), [
    ("goal: g\nsteps:\n  - click: OK\nsuccess:\n  url_match: x\n", "t.yaml:5: unknown check 'url_match'"),
    ("goal: g\nsteps:\n  - click: OK\nstart:\n  serve: nowhere\n", "t.yaml:5: serve 'nowhere' is not a "),
    ("goal: g\n", "t.yaml: give a mapping with a non-empty `steps:` list"),
])
def test_a_bad_task_file_is_one_line_and_exit_2_before_anything_starts(tmp_path, text, says):
    (tmp_path / "t.yaml").write_text(text)
    line = _one_line(_cli("script", "t.yaml", "--grounder", "dom", "--model", "internvl3-78b", cwd=tmp_path))
    assert says in line
    assert not (tmp_path / "runs").exists()


def test_run_with_a_task_that_has_no_goal_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "t.yaml").write_text("steps:\n  - click: OK\n")
    line = _one_line(_cli("run", "--task", "t.yaml", "--model", "tiny", cwd=tmp_path))
    assert "t.yaml has no goal: give GOAL" in line
    line = _one_line(_cli("run", "some goal", "--model", "tiny", cwd=tmp_path))
    assert "--url" in line and "--task" in line


@pytest.mark.browser
@pytest.mark.model
def test_run_task_with_the_tiny_model_fails_its_checks_and_exits_1(tmp_path):
    proc = _cli("run", "--task", str(SIGNUP / "signup.yaml"), "--model", "tiny", "--max-steps", "1", "--json",
                cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr  # random weights do not sign anyone up
    result = _result(proc)
    assert (result["task"], result["success"], result["steps"]) == ("signup", False, 1)
    assert result["outcome"] in {"max_steps", "failed", "finished"}
    url_check = result["checks"][0]
    assert not url_check["ok"] and url_check["why"].startswith("url was http://127.0.0.1:")
    record = json.loads((tmp_path / result["run_dir"] / "run.json").read_text())
    assert record["goal"] == "Create an account for Ada Lovelace" and record["success"] is False


@pytest.mark.browser
def test_tasks_runs_a_folder_and_tabulates_each_task(tmp_path):
    proc = _cli("tasks", str(SIGNUP), "--secret", "pw", "--json", "results.json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr  # one of the two fails its check
    assert "1 of 2 tasks succeeded" in proc.stdout
    rows = [line for line in proc.stdout.splitlines() if "signup" in line]
    assert any("signup-wrong-name" in row and " no " in row and "Grace Hopper" in row for row in rows), rows
    assert any("signup " in row and " yes " in row for row in rows), rows
    results = json.loads((tmp_path / "results.json").read_text())
    assert [(r["task"], r["success"], r["steps"]) for r in results] == [("signup-wrong-name", False, 4),
                                                                         ("signup", True, 5)]  # by file name
    assert all(r["seconds"] > 0 for r in results)


@pytest.mark.browser
def test_tasks_on_two_workers_gives_the_same_results_in_the_same_order(tmp_path):
    proc = _cli("tasks", str(SIGNUP), "--secret", "pw", "--workers", "2", "--json", "results.json",
                cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "1 of 2 tasks succeeded" in proc.stdout
    results = json.loads((tmp_path / "results.json").read_text())
    assert [(r["task"], r["success"], r["steps"]) for r in results] == [("signup-wrong-name", False, 4),
                                                                         ("signup", True, 5)]
    (check,) = results[0]["checks"]
    assert check == {"check": "element_text: #msg equals 'Account created for Grace Hopper'", "ok": False,
                     "why": "the text of #msg was 'Account created for Ada Lovelace'"}
    for result in results:  # each worker recorded its run where a single process would have
        record = json.loads((tmp_path / result["run_dir"] / "run.json").read_text())
        assert record["task"] == result["task"] and record["success"] is result["success"]
        run_dir = tmp_path / result["run_dir"]
        written = "".join(p.read_text(encoding="utf-8") for p in run_dir.glob("*.json*"))
        assert SECRET not in written


def test_tasks_with_a_local_model_on_two_workers_asks_for_a_served_one(tmp_path):
    line = _one_line(_cli("tasks", str(SIGNUP), "--model", "tiny", "--workers", "2", cwd=tmp_path))
    assert "serve it once" in line and "--base-url" in line


def test_tasks_without_task_files_is_one_line_and_exit_2(tmp_path):
    line = _one_line(_cli("tasks", str(tmp_path), cwd=tmp_path))
    assert "holds no task files" in line


@pytest.fixture(scope="module")
def desktop_env() -> Iterator[dict[str, str]]:
    """An Xvfb display, and `python3` (the task's command) meaning this interpreter, which has tkinter."""
    if shutil.which("Xvfb") is None or importlib.util.find_spec("tkinter") is None:
        pytest.skip("needs Xvfb and tkinter")
    with XvfbDisplay(1024, 768) as xvfb:
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        yield {"DISPLAY": xvfb.display, "PATH": path}


@pytest.mark.desktop
@pytest.mark.model
def test_a_desktop_task_starts_its_program_checks_its_files_and_stops_it(desktop_env, tmp_path):
    folder = shutil.copytree(TASKS / "desktop", tmp_path / "desktop")
    proc = _cli("script", "note.yaml", "--model", "tiny", "--json", cwd=folder, env=desktop_env)
    assert proc.returncode == 0, proc.stderr
    result = _result(proc)
    assert (result["success"], result["steps"]) == (True, 1)
    assert [c["check"] for c in result["checks"]] == [
        "file_exists: app.pid", "file_contains: out/saved.txt holds 'Buy milk'", "all of 2"]
    pid = int((folder / "app.pid").read_text())
    assert not os.path.exists(f"/proc/{pid}")  # stopped at the end (and reaped)

    proc = _cli("script", "note-expect-text.yaml", "--grounder", "ocr", "--json", cwd=folder, env=desktop_env)
    assert proc.returncode == 0, proc.stderr  # the window's "Saved" label, read by OCR: no model loaded
    result = _result(proc)
    assert (result["outcome"], result["steps"], result["success"]) == ("finished", 1, True)
    assert [c["check"] for c in result["checks"]] == ["screen_text: Saved", "any of 1"]


@pytest.mark.desktop
def test_desktop_tasks_on_two_workers_each_get_a_display_of_their_own(desktop_env, tmp_path):
    folder = shutil.copytree(TASKS / "desktop", tmp_path / "desktop")
    env = {key: value for key, value in os.environ.items() if key != "DISPLAY"}  # no display but the workers'
    env["PATH"] = desktop_env["PATH"]
    proc = subprocess.run([*CLI, "tasks", ".", "--grounder", "ocr", "--workers", "2", "--json", "r.json"],
                          cwd=folder, env={**env, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads((folder / "r.json").read_text())
    assert [(r["task"], r["success"]) for r in results] == [("note-expect-text", True), ("note", True)]
