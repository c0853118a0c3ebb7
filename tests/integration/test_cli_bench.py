"""`internvl-agent bench miniwob`, run as a user runs it: a real subprocess.

    internvl-agent bench miniwob [--tasks a,b|all] [--seeds N] [--policy reference|grounded|model]
                                 [--model M] [--json FILE] [--time-limit S]

Skipped until the command is registered on the CLI.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

if importlib.util.find_spec("miniwob") is None:  # found, not imported: its __init__ loads gymnasium
    pytest.skip("MiniWoB++'s pages come from the miniwob package: pip install miniwob",
                allow_module_level=True)

CLI = [sys.executable, "-c", "from agent.cli import main; main()"]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    return subprocess.run([*CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


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
