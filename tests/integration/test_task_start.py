"""Starting a task and stopping it: a served folder in a real Chromium, a real program on Xvfb."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tasks.launch import launched
from tasks.spec import Task
from tasks.start import started
from tools.actions import Navigate
from tools.browser import BrowserExecutor
from tools.desktop.xvfb import XvfbDisplay
from tools.errors import ExecutorError, TaskError

TASKS = Path(__file__).resolve().parent.parent / "tasks"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.browser
def test_a_served_task_opens_its_page_on_the_allowed_domains_and_stops_it_all():
    task = Task.load(TASKS / "signup" / "signup.yaml")
    with started(task) as start:
        assert isinstance(start.executor, BrowserExecutor)
        assert start.url is not None and start.url.endswith("/signup.html")
        assert start.executor.observe().url == start.url
        with urllib.request.urlopen(start.url, timeout=10) as response:
            assert b"Create account" in response.read()
        refused = start.executor.execute(Navigate(url="https://example.org/"))
        assert not refused.ok and "example.org" in refused.error  # allowed_domains reached the browser
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(start.url, timeout=5)  # the server stopped with the block
    with pytest.raises(ExecutorError, match="closed"):
        start.executor.observe()


def on_xvfb(test):
    """A desktop test: it needs Xvfb, and tkinter for the program."""
    for mark in (pytest.mark.desktop,
                 pytest.mark.skipif(shutil.which("Xvfb") is None, reason="Xvfb is not installed"),
                 pytest.mark.skipif(importlib.util.find_spec("tkinter") is None, reason="no tkinter")):
        test = mark(test)
    return test


@pytest.fixture(scope="module")
def display() -> Iterator[str]:
    with XvfbDisplay(1024, 768) as xvfb:
        yield xvfb.display


@on_xvfb
def test_a_program_runs_once_its_window_shows_and_is_stopped_after(display, monkeypatch, tmp_path):
    monkeypatch.setenv("DISPLAY", display)
    shutil.copy(TASKS / "desktop" / "note_app.py", tmp_path)
    with launched([sys.executable, "note_app.py"], cwd=tmp_path, window_timeout=15) as process:
        assert process.poll() is None
        pid = int((tmp_path / "app.pid").read_text())
        assert _alive(pid) and (tmp_path / "out" / "saved.txt").read_text() == "Buy milk\n"
    assert process.returncode is not None and not _alive(pid)


@on_xvfb
def test_a_program_that_exits_first_or_shows_no_window_is_an_error_and_is_stopped(display, monkeypatch,
                                                                                   tmp_path):
    monkeypatch.setenv("DISPLAY", display)
    exits = [sys.executable, "-c", "import sys; sys.stderr.write('no config file\\n'); sys.exit(3)"]
    with pytest.raises(ExecutorError, match=r"exited with code 3 before showing a window \(no config file\)"):
        with launched(exits, cwd=tmp_path):
            pass
    no_window = "import os, time; open('pid', 'w').write(str(os.getpid())); time.sleep(99)"
    silent = [sys.executable, "-c", no_window]
    t0 = time.monotonic()
    with pytest.raises(ExecutorError, match="showed no window within 2 s"):
        with launched(silent, cwd=tmp_path, window_timeout=2):
            pass
    assert time.monotonic() - t0 < 20
    assert not _alive(int((tmp_path / "pid").read_text()))
    with pytest.raises(TaskError, match="'no-such-program-x' was not found"):
        with launched(["no-such-program-x"], cwd=tmp_path):
            pass


def test_a_command_without_a_display_says_how_to_get_one(monkeypatch, tmp_path):
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(ExecutorError, match="DISPLAY"):
        with launched(["true"], cwd=tmp_path):
            pass
    assert os.listdir(tmp_path) == []
