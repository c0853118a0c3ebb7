"""agent/parallel.py with real browsers: MiniWoB++ episodes of the reference policy on local
worker processes and on a local Ray give the same episodes, in the same order, as one worker; a
worker that dies runs its episode again once, then counts it as failed; Ctrl-C stops every
worker and keeps what finished.

Workers are made to die through the test-only hook agent.parallel.TEST_DIE_ENV: the worker about
to play the named episode SIGKILLs its own process while a counter file says so.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.bench import run_miniwob
from agent.parallel import TEST_DIE_ENV

if importlib.util.find_spec("miniwob") is None:  # found, not imported: its __init__ loads gymnasium
    pytest.skip("MiniWoB++'s pages come from the miniwob package: pip install miniwob",
                allow_module_level=True)

pytestmark = pytest.mark.browser

CLI = [sys.executable, "-c", "from agent.cli import main; main()"]
TASKS = "click-button,enter-text"
SEEDS = 3
VICTIM = "click-button seed 1"  # the episode whose worker is killed


def _same(episode: dict) -> tuple:
    """What must not depend on the workers: everything but times, the time-scaled reward and run_dir."""
    return (episode["task"], episode["seed"], episode["utterance"], episode["success"], episode["raw_reward"],
            episode["steps"], episode["outcome"])


@pytest.fixture(scope="module")
def one_worker() -> list[tuple]:
    records = run_miniwob(TASKS, seeds=SEEDS, policy="reference", progress=False)
    assert all(record.success for record in records)
    return [_same(record.to_json()) for record in records]


def _cli(*args: str, cwd: Path, env: dict[str, str] | None = None, **popen: object) -> subprocess.Popen[str]:
    environ = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}  # a local Ray
    return subprocess.Popen([*CLI, *args], cwd=cwd, env={**environ, "HF_HUB_OFFLINE": "1", **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)  # type: ignore[call-overload]


def _kill_once(tmp_path: Path, times: int) -> tuple[Path, str]:
    counter = tmp_path / "deaths-left"
    counter.write_text(f"{times}\n")
    return counter, f"{VICTIM}={counter}"


def test_two_local_workers_play_the_same_episodes_in_the_same_order(one_worker):
    records = run_miniwob(TASKS, seeds=SEEDS, policy="reference", progress=False, workers=2)
    assert [_same(record.to_json()) for record in records] == one_worker


def test_a_killed_local_worker_is_replaced_and_its_episode_played_again(one_worker, tmp_path, monkeypatch):
    counter, hook = _kill_once(tmp_path, 1)
    monkeypatch.setenv(TEST_DIE_ENV, hook)  # the spawned workers inherit it
    records = run_miniwob(TASKS, seeds=SEEDS, policy="reference", progress=False, workers=2)
    assert counter.read_text().strip() == "0"  # it did die once
    assert [_same(record.to_json()) for record in records] == one_worker


def test_an_episode_whose_worker_dies_twice_is_a_failure_with_the_reason(one_worker, tmp_path, monkeypatch):
    counter, hook = _kill_once(tmp_path, 2)
    monkeypatch.setenv(TEST_DIE_ENV, hook)
    records = run_miniwob(TASKS, seeds=SEEDS, policy="reference", progress=False, workers=2)
    assert counter.read_text().strip() == "0"
    assert [(r.task, r.seed) for r in records] == [row[:2] for row in one_worker]
    victim = records[1]
    assert (victim.task, victim.seed, victim.success, victim.outcome) == ("click-button", 1, False, "error")
    assert victim.note == "its worker died twice (its process was killed by SIGKILL)"
    others = [_same(r.to_json()) for r in records if r is not victim]
    assert others == [row for index, row in enumerate(one_worker) if index != 1]


def test_a_local_ray_plays_the_same_episodes_as_one_worker_even_when_an_actor_dies(one_worker, tmp_path):
    if importlib.util.find_spec("ray") is None:
        pytest.skip("needs Ray: pip install 'internvl-agent[scale]'")
    counter, hook = _kill_once(tmp_path, 1)
    # --ray auto --workers 2: ray.init(num_cpus=2), two actors, each with its Chromium
    proc = _cli("bench", "miniwob", "--tasks", TASKS, "--seeds", str(SEEDS), "--ray", "auto",
                "--workers", "2", "--json", "out.json", cwd=tmp_path, env={TEST_DIE_ENV: hook})
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    assert counter.read_text().strip() == "0"  # the actor died once; a new one played the episode
    episodes = json.loads((tmp_path / "out.json").read_text())["episodes"]
    assert [_same(episode) for episode in episodes] == one_worker


def _descendants(pid: int) -> set[int]:
    """Every live process under `pid`, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_ctrl_c_stops_every_worker_and_keeps_the_episodes_that_finished(tmp_path):
    seeds = 400  # far more than can finish before the interrupt
    proc = _cli("bench", "miniwob", "--tasks", "click-button", "--seeds", str(seeds), "--workers", "2",
                "--json", "out.json", cwd=tmp_path)
    deadline = time.monotonic() + 300
    browsers: set[int] = set()
    while time.monotonic() < deadline and proc.poll() is None:  # until both workers have a Chromium
        under = _descendants(proc.pid)
        browsers = {pid for pid in under if "chrom" in Path(f"/proc/{pid}/comm").read_text(errors="ignore")}
        if len(browsers) >= 2 * 2:  # a browser is several processes; two workers, at least two each
            break
        time.sleep(0.5)
    time.sleep(3)  # some episodes finish
    workers = _descendants(proc.pid)
    proc.send_signal(signal.SIGINT)  # to the CLI alone: it stops the workers
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    episodes = json.loads((tmp_path / "out.json").read_text())["episodes"]
    assert f"interrupted after {len(episodes)} of {seeds} episodes" in stderr
    assert len(episodes) < seeds
    assert all(episode["success"] and episode["task"] == "click-button" for episode in episodes)
    seeds_done = [episode["seed"] for episode in episodes]
    assert seeds_done == sorted(seeds_done)  # in the jobs' order
    time.sleep(2)  # Playwright's drivers take their browsers down once their worker has gone
    assert not [pid for pid in workers if _alive(pid)], "a worker or its browser outlived the run"
