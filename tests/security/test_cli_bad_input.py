"""Bad invocations of the CLI: one line on stderr, exit 2, no traceback, before anything heavy.

Each case names a model that is not on the machine (`not-on-this-machine`): the message must be
about the bad argument, which proves the argument was checked before any model was loaded.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-c", "from agent.cli import main; main()"]
NO_MODEL = ["--model", "not-on-this-machine"]
SITE = "http://127.0.0.1:8000/"  # never reached: every case ends before a browser starts


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
            ) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})


def assert_one_line(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("internvl-agent: ")
    for needle in needles:
        assert needle in lines[0]


@pytest.mark.parametrize(("url", "says"), [
    ("http://[::1", "is not a valid URL"),
    ("http://127.0.0.1:99999/", "is not a valid URL"),
    ("http://:80/", "names no host"),
    ("file://", "names no file"),
    ("ftp://example.org/", "starts with http://"),
    ("example.org", "starts with http://"),
])
def test_a_malformed_url_is_one_line_before_the_model_loads(url, says, tmp_path):
    assert_one_line(run_cli("run", "click OK", "--url", url, *NO_MODEL, "--runs-dir", str(tmp_path)), says)


def test_a_runs_dir_that_is_a_file_is_one_line(tmp_path):
    afile = tmp_path / "runs"
    afile.write_text("not a folder")
    result = run_cli("run", "click OK", "--url", SITE, *NO_MODEL, "--runs-dir", str(afile))
    assert_one_line(result, "is a file, not a folder")


def test_a_runs_dir_that_cannot_be_created_is_one_line(tmp_path):
    under_a_file = tmp_path / "file"
    under_a_file.write_text("x")
    result = run_cli("script", str(tmp_path / "missing.yaml"), "--runs-dir", str(under_a_file / "runs"))
    assert_one_line(result, "--runs-dir", "a file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_a_runs_dir_that_is_not_writable_is_one_line(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    result = run_cli("run", "click OK", "--url", SITE, *NO_MODEL, "--runs-dir", str(locked))
    assert_one_line(result, "not writable")


def test_a_missing_secret_is_one_line(tmp_path):
    result = run_cli("run", "log in", "--url", SITE, *NO_MODEL, "--secret", "NOT_SET_HERE",
                     "--runs-dir", str(tmp_path), env={"NOT_SET_HERE": ""})
    assert_one_line(result, "NOT_SET_HERE")


def test_a_secret_too_short_to_redact_is_one_line(tmp_path):
    result = run_cli("run", "log in", "--url", SITE, *NO_MODEL, "--secret", "PIN",
                     "--runs-dir", str(tmp_path), env={"PIN": "12"})
    assert_one_line(result, "shorter than 4 characters")


def test_an_unreadable_script_is_one_line(tmp_path):
    script = tmp_path / "s.yaml"
    script.write_bytes(b"\xff\xfe not utf-8")
    assert_one_line(run_cli("script", str(script), "--runs-dir", str(tmp_path)), "UTF-8")


def test_a_model_that_is_not_here_is_one_line(tmp_path):
    result = run_cli("run", "click OK", "--url", SITE, *NO_MODEL, "--runs-dir", str(tmp_path))
    assert_one_line(result, "not-on-this-machine")


@pytest.mark.browser
@pytest.mark.model
def test_a_chromium_that_cannot_start_ends_the_run_with_one_line(tmp_path, page_server):
    """The model loads (the tiny one, built offline), then the browser cannot start: the
    ExecutorError is one line and exit 2, as in the API."""
    result = run_cli("run", "click OK", "--url", f"{page_server}/playground.html", "--model", "tiny",
                     "--max-steps", "1", "--runs-dir", str(tmp_path),
                     env={"INTERNVL_AGENT_CHROMIUM": str(Path("/bin/false"))}, timeout=300)
    assert_one_line(result)


def test_resume_with_a_new_goal_is_one_line(tmp_path):
    result = run_cli("run", "click OK", "--resume", str(tmp_path), *NO_MODEL, "--runs-dir", str(tmp_path))
    assert_one_line(result, "--resume goes on with a recorded run")


def test_resume_of_a_folder_that_holds_no_run_is_one_line(tmp_path):
    result = run_cli("script", "--resume", str(tmp_path / "nothing"), "--runs-dir", str(tmp_path))
    assert_one_line(result)
