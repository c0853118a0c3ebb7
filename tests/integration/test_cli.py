"""The `internvl-agent` command, run as a user runs it: a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from agent.cli import DEMO_PAGE
from tests.helpers.cli import CLI, run_cli


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=cwd)


@pytest.mark.browser
@pytest.mark.model
def test_run_with_the_tiny_model_writes_one_record_per_step(tmp_path):
    proc = _cli("run", "click OK", "--url", DEMO_PAGE.as_uri(), "--model", "tiny", "--max-steps", "3",
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run_dir = Path(proc.stdout.strip().rsplit("trajectory: ", 1)[1])
    run_dir = run_dir if run_dir.is_absolute() else tmp_path / run_dir
    lines = (run_dir / "steps.jsonl").read_text().splitlines()
    assert len(lines) == 3
    records = [json.loads(line) for line in lines]
    assert [r["index"] for r in records] == [1, 2, 3]
    for record in records:
        # Random weights write garbage: each step is either a parse error or an action with a result.
        assert (record["parse_error"] is None) == (record["action"] is not None)
        assert record["observation"]["size"] == [1280, 720]
        assert (run_dir / record["screenshot"]).exists()
    assert json.loads((run_dir / "run.json").read_text())["outcome"] in {"max_steps", "finished", "failed"}
    assert (run_dir / "report.html").is_file() and "report: " in proc.stderr


def test_a_model_that_is_not_here_is_one_line_and_exit_2(tmp_path):
    proc = _cli("run", "click OK", "--url", DEMO_PAGE.as_uri(), "--model", "internvl3-78b", cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--model" in lines[0], proc.stderr


def test_a_path_that_does_not_exist_is_one_line_and_exit_2(tmp_path):
    proc = _cli("run", "g", "--url", DEMO_PAGE.as_uri(), "--model", str(tmp_path / "nope"), cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert str(tmp_path / "nope") in proc.stderr


def test_a_url_without_a_scheme_is_one_line_and_exit_2(tmp_path):
    proc = _cli("run", "g", "--url", "example", "--model", "tiny", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "http://" in proc.stderr


def test_serve_with_a_missing_model_is_one_line_and_exit_2(tmp_path):
    proc = _cli("serve", "--model", str(tmp_path / "nope"), "--port", "8999", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--model" in proc.stderr


@pytest.mark.browser
def test_run_against_a_server_that_is_down_names_the_url(tmp_path):
    proc = _cli("run", "g", "--url", DEMO_PAGE.as_uri(), "--model", "m", "--max-steps", "1",
                "--base-url", "http://127.0.0.1:9/v1", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "127.0.0.1:9" in proc.stderr


def test_models_lists_every_catalog_entry_with_its_memory(tmp_path):
    proc = _cli("models", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:3] == ["name", "checkpoint", "params"]
    names = [line.split()[0] for line in lines[1:] if line.startswith("internvl3-")]
    assert names == ["internvl3-1b", "internvl3-2b", "internvl3-8b", "internvl3-9b", "internvl3-14b",
                     "internvl3-38b", "internvl3-78b"]
    row_8b = next(line.split() for line in lines if line.startswith("internvl3-8b "))
    assert row_8b[1] == "OpenGVLab/InternVL3-8B-hf" and float(row_8b[3]) > float(row_8b[4]) > float(row_8b[5])


def test_a_secret_whose_variable_is_not_set_is_one_line_and_exit_2(tmp_path):
    proc = _cli("run", "g", "--url", DEMO_PAGE.as_uri(), "--model", "tiny", "--secret", "NO_SUCH_VARIABLE_X",
                cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "NO_SUCH_VARIABLE_X" in lines[0], proc.stderr


@pytest.mark.browser
@pytest.mark.model
def test_ctrl_c_during_a_run_exits_130_with_the_run_recorded_as_stopped(tmp_path):
    import signal

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([*CLI, "run", "click OK", "--url", DEMO_PAGE.as_uri(), "--model", "tiny",
                             "--max-steps", "500"], cwd=tmp_path, env=env, stderr=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # wait until a step is done: the run is under way
            if line.startswith("step 1:"):
                break
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, rest
    assert "Traceback" not in rest and "Aborted" not in rest
    assert "interrupted; the steps so far are in" in rest
    (run,) = (tmp_path / "runs").iterdir()
    record = json.loads((run / "run.json").read_text())
    assert record["outcome"] == "stopped" and record["steps"] >= 1


@pytest.mark.parametrize(("url", "domain", "says"), [
    ("https://evil.net/", "example.org", "not on the allowed domains (example.org)"),
    ("https://example.org/", "https://example.org", "not a host name"),
])
def test_a_start_off_the_allowed_domains_or_a_bad_domain_is_one_line_and_exit_2(tmp_path, url, domain, says):
    proc = _cli("run", "g", "--url", url, "--allow-domain", domain, "--model", "tiny", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and says in lines[0], proc.stderr


def test_report_of_a_directory_without_a_run_is_one_line_and_exit_2(tmp_path):
    proc = _cli("report", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "no steps.jsonl" in proc.stderr


@pytest.mark.browser
@pytest.mark.model
def test_a_run_on_an_allowed_domain_starts_and_records_its_steps(tmp_path, page_server):
    proc = _cli("run", "click", "--url", f"{page_server}/playground.html", "--allow-domain", "127.0.0.1",
                "--model", "tiny", "--max-steps", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run_dir = tmp_path / proc.stdout.strip().rsplit("trajectory: ", 1)[1]
    assert len((run_dir / "steps.jsonl").read_text().splitlines()) == 1
