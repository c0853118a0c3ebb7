"""`internvl-agent bench miniwob` and `bench tasks`, run as a user runs them: real subprocesses.

    internvl-agent bench miniwob [--tasks a,b|all] [--seeds N] [--policy reference|grounded|model]
                                 [--model M] [--json FILE] [--time-limit S] [--workers N] [--ray auto|ADDR]
    internvl-agent bench tasks DIR [--workers N] [--json FILE]

Skipped until the command is registered on the CLI.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from functools import cache
from pathlib import Path

import pytest

from tests.helpers.cli import run_cli

if importlib.util.find_spec("miniwob") is None:  # found, not imported: its __init__ loads gymnasium
    pytest.skip("MiniWoB++'s pages come from the miniwob package: pip install miniwob",
                allow_module_level=True)



TASKS = Path(__file__).resolve().parent.parent / "tasks"


def _cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=cwd, env={"COLUMNS": "200", **(env or {})})  # rich tables at full width


def _one_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, (proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@cache
def _registered() -> bool:
    return _cli("bench", "miniwob", "--help", cwd=Path.cwd()).returncode == 0


@pytest.fixture(autouse=True)
def _needs_the_command() -> None:
    if not _registered():
        pytest.skip("`internvl-agent bench miniwob` is not registered on the CLI yet")


@pytest.mark.browser
def test_bench_miniwob_writes_every_episode_and_prints_a_table(tmp_path):
    proc = _cli("bench", "miniwob", "--tasks", "click-button,enter-text", "--seeds", "2",
                "--policy", "reference", "--json", "out.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    written = json.loads((tmp_path / "out.json").read_text())
    episodes = written["episodes"]
    assert [(e["task"], e["seed"]) for e in episodes] == [
        ("click-button", 0), ("click-button", 1), ("enter-text", 0), ("enter-text", 1)]
    assert all(e["success"] and e["reward"] > 0 and e["steps"] >= 1 and e["utterance"] for e in episodes)
    assert all("act" in e["timings_ms"] for e in episodes)
    assert "click-button" in proc.stdout and "enter-text" in proc.stdout and "4/4" in proc.stdout


@pytest.mark.browser
def test_bench_miniwob_with_a_task_time_limit_and_the_grounded_policy(tmp_path):
    proc = _cli("bench", "miniwob", "--tasks", "click-button", "--policy", "grounded", "--time-limit", "task",
                "--json", "out.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (episode,) = json.loads((tmp_path / "out.json").read_text())["episodes"]
    assert episode["task"] == "click-button" and episode["seed"] == 0 and "ground" in episode["timings_ms"]


@pytest.mark.parametrize(("args", "said"), [
    (["--tasks", "click-buton"], "click-button"),
    (["--tasks", "click-button", "--policy", "model"], "--model"),
    (["--tasks", "click-button", "--policy", "guess"], "reference"),
    (["--tasks", "click-button", "--time-limit", "soon"], "--time-limit"),
])
def test_bench_miniwob_refuses_bad_input_in_one_line_with_exit_2(tmp_path, args, said):
    proc = _cli("bench", "miniwob", *args, cwd=tmp_path)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert said in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.browser
def test_two_workers_write_the_same_episodes_in_the_same_order_as_one(tmp_path):
    args = ("bench", "miniwob", "--tasks", "click-button,enter-text,click-link", "--seeds", "3")
    one = _cli(*args, "--json", "one.json", cwd=tmp_path)
    two = _cli(*args, "--workers", "2", "--json", "two.json", cwd=tmp_path)
    assert one.returncode == 0 and two.returncode == 0, (one.stderr, two.stderr)

    def same(name: str) -> list[dict]:  # all but times, the time-scaled reward and run_dir
        episodes = json.loads((tmp_path / name).read_text())["episodes"]
        varying = ("seconds", "timings_ms", "reward", "run_dir", "checks")
        return [{key: value for key, value in e.items() if key not in varying} for e in episodes]

    assert same("two.json") == same("one.json")
    assert [(e["task"], e["seed"]) for e in same("two.json")] == [
        (task, seed) for task in ("click-button", "enter-text", "click-link") for seed in range(3)]
    assert all(e["success"] and e["utterance"] for e in same("two.json"))
    assert "9/9" in two.stdout


def test_ray_without_ray_installed_says_how_to_install_it_in_one_line(tmp_path):
    # "Not installed" is simulated: a PYTHONPATH shim whose `ray` package fails to import.
    shim = tmp_path / "shim" / "ray"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text('raise ImportError("No module named \'ray\' (this test hides it)")\n')
    path = os.pathsep.join([str(tmp_path / "shim"), os.environ.get("PYTHONPATH", "")])
    line = _one_line(_cli("bench", "miniwob", "--tasks", "click-button", "--ray", "auto", cwd=tmp_path,
                          env={"PYTHONPATH": path}))
    assert line == ("internvl-agent: --ray needs Ray, which is not installed: "
                    "pip install 'internvl-agent[scale]'")


def test_a_local_model_on_several_workers_asks_for_a_served_one(tmp_path):
    line = _one_line(_cli("bench", "miniwob", "--tasks", "click-button", "--policy", "model", "--model",
                          "tiny", "--workers", "2", cwd=tmp_path))
    assert "serve it once" in line and "--base-url" in line


@pytest.mark.browser
def test_bench_tasks_runs_a_folder_of_task_files_into_a_table_and_json(tmp_path):
    proc = _cli("bench", "tasks", str(TASKS / "signup"), "--secret", "pw", "--workers", "2", "--json",
                "out.json", cwd=tmp_path, env={"pw": "correct-horse-battery-staple"})
    assert proc.returncode == 0, proc.stderr
    written = json.loads((tmp_path / "out.json").read_text())
    episodes = written["episodes"]
    assert [(e["task"], e["success"], e["steps"], e["outcome"]) for e in episodes] == [
        ("signup-wrong-name", False, 4, "finished"), ("signup", True, 5, "finished")]  # by file name
    assert episodes[0]["note"].startswith("element_text: #msg equals 'Account created for Grace Hopper'")
    assert all(e["policy"] == "steps (auto)" and "reset" in e["timings_ms"] and e["run_dir"]
               for e in episodes)
    assert written["summary"]["success_rate"] == 0.5
    assert "signup-wrong-name" in proc.stdout and "0/1" in proc.stdout and "1/2 (50%)" in proc.stdout
    written_text = proc.stdout + proc.stderr + (tmp_path / "out.json").read_text()
    assert "correct-horse-battery-staple" not in written_text
