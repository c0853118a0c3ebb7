"""Task files: what they may say, the one-line errors (with the line) for what they may not, and
the served folder that cannot be escaped."""

from __future__ import annotations

import http.client
import os
from pathlib import Path

import pytest

from agent.script import Script
from agent.task_run import TaskRun
from tasks.checks import All, AnyOf, ElementText, FileContains, UrlMatches
from tasks.serve import serve_folder
from tasks.spec import Start, Task
from tasks.steps import Expect, ExpectText
from tools.actions import Click, Type
from tools.errors import TaskError

BROWSER_SCRIPT = "steps:\n  - click: OK\nstart: {url: 'https://example.org/'}\n"
SIGNUP = Path(__file__).resolve().parent.parent / "tasks" / "signup" / "signup.yaml"


def _write(tmp_path: Path, text: str, name: str = "task.yaml") -> Path:
    (tmp_path / "pages").mkdir(exist_ok=True)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_task_file_reads_into_start_limits_steps_and_checks():
    task = Task.load(SIGNUP)
    assert (task.name, task.goal, task.max_steps, task.timeout) == (
        "signup", "Create an account for Ada Lovelace", 15, 5.0)
    assert task.start == Start(serve="pages/", path="signup.html") and task.browser
    assert task.allowed_domains == ("127.0.0.1",)
    assert task.source == SIGNUP and task.folder == SIGNUP.parent
    assert task.steps[0] == Type(text="Ada Lovelace", target="the Full name field")
    assert task.steps[2] == Click(target="the I agree to the terms checkbox")
    assert task.steps[4] == ExpectText(text="Account created for Ada Lovelace")
    assert isinstance(task.success, All)
    assert task.success.checks[0] == UrlMatches(pattern=r".*/welcome\.html")
    assert task.success.checks[1] == ElementText(selector="#msg", contains="Account created")


def test_a_goal_alone_is_a_task_and_checks_nest(tmp_path):
    path = _write(tmp_path, """
goal: Save a note
start: {command: [python3, app.py]}
success:
  any:
    - all:
        - file_exists: out/a.txt
        - file_contains: {path: out/a.txt, text: milk}
    - answer_matches: '\\bsaved\\b'
""")
    task = Task.load(path)
    assert task.name == "task" and task.steps is None and not task.browser
    assert task.start.command == ("python3", "app.py")
    assert isinstance(task.success, AnyOf) and isinstance(task.success.checks[0], All)
    assert task.success.checks[0].checks[1] == FileContains(path="out/a.txt", text="milk")


def test_a_script_is_a_task_with_steps_and_old_scripts_still_load(tmp_path):
    path = _write(tmp_path, "name: old\ntimeout: 3\nsteps:\n  - click: OK\n  - expect: the Saved label\n")
    script = Script.load(path)
    assert isinstance(script, Task) and script.start is None and script.goal is None
    assert script.steps == (Click(target="OK"), Expect(target="the Saved label"))
    assert Script.load(SIGNUP).success == Task.load(SIGNUP).success


@pytest.mark.parametrize(("text", "line", "says"), [
    ("name: x\ngoal: g\nretries: 3\n", 3, "unknown key(s) ['retries']: the keys are name, goal"),
    ("goal: g\nsteps:\n  - click: OK\n  - clik: OK\n", 4, "step 2: unknown action 'clik'"),
    ("goal: g\nsteps:\n  - click: OK\n\n  - click: {x: 5}\n", 5, "step 2 (click): "),
    ("steps:\n  - expect_text: ''\n", 2, "step 1 (expect_text): text"),
    ("steps:\n  - {click: a, type: b}\n", 2, "write one `action: value` pair"),
    ("goal: g\nsteps: []\n", 2, "steps is a non-empty list"),
    ("goal: g\nmax_steps: 0\n", 2, "max_steps must be at least 1"),
    ("goal: g\ntimeout: -1\n", 2, "timeout must be greater than 0"),
    ("name: nothing to do\n", None, "give `goal:`"),
    ("goal: g\nstart:\n  url: https://example.org/\n  serve: pages\n", 2, "give one of serve"),
    ("goal: g\nstart:\n  serve: nowhere\n", 3, "serve 'nowhere' is not a folder"),
    ("goal: g\nstart:\n  serve: pages\n  path: ../secret.txt\n", 4, "path: '../secret.txt' must stay inside"),
    ("goal: g\nstart:\n  url: example.org\n", 3, "url: 'example.org' is not a URL"),
    ("goal: g\nstart:\n  command: []\n", 3, "command: give a program and its arguments"),
    ("goal: g\nallowed_domains: [example.org]\nstart:\n  url: https://evil.net/\n", 3,
     "start.url https://evil.net/ is off allowed_domains (example.org)"),
    ("goal: g\nallowed_domains: [example.org]\nstart: {serve: pages}\n", 3,
     "start.serve (pages served on 127.0.0.1) is off allowed_domains (example.org): add its host"),
    ("goal: g\nallowed_domains: ['https://example.org']\n", 2, "is not a host name"),
    ("goal: g\nsuccess:\n  url_match: x\n", 3, "unknown check 'url_match'; the checks are url_matches"),
    ("goal: g\nsuccess:\n  all:\n    - url_matches: ok\n    - title_matches: '('\n", 5,
     "title_matches: pattern: '(' is not a regular expression"),
    ("goal: g\nsuccess:\n  element_text: {selector: '#a', equals: x, contains: y}\n", 3,
     "give either equals or contains"),
    ("goal: g\nsuccess:\n  element_text: '#a'\n", 3, "element_text takes a mapping"),
    ("goal: g\nsuccess:\n  file_contains: {path: a, txt: b}\n", 3, "unknown field 'txt'"),
    ("goal: g\nsuccess:\n  any: []\n", 3, "any takes a non-empty list of checks"),
    ("goal: g\ngoal: h\n", 2, "'goal' appears twice in one mapping"),
    ("goal: g\nsteps:\n  - click: [unclosed\n", 4, "not valid YAML"),
    ("- click: OK\n", None, "a task file is a mapping of name, goal, start"),
])
def test_a_bad_file_is_one_task_error_with_its_line_and_what_to_write(tmp_path, text, line, says):
    path = _write(tmp_path, text)
    with pytest.raises(TaskError) as caught:
        Task.load(path)
    message = caught.value.message
    assert says in message and "\n" not in message, message
    assert message.startswith(f"{path}:{line}: " if line is not None else f"{path}: "), message


def test_a_file_that_cannot_be_read_says_so(tmp_path):
    with pytest.raises(TaskError, match="cannot read task file"):
        Task.load(tmp_path / "missing.yaml")


def test_command_line_changes_are_checked_as_a_file_would_be(tmp_path):
    task = Task.load(_write(tmp_path, "goal: g\nallowed_domains: [example.org]\nstart: {url: 'https://example.org/'}\n"))
    assert task.replace(max_steps=3, steps=None).max_steps == 3
    assert task.starting_at("https://shop.example.org/").start == Start(url="https://shop.example.org/")
    with pytest.raises(TaskError, match=r"--url https://evil\.net/ is off allowed_domains"):
        task.starting_at("https://evil.net/")
    with pytest.raises(TaskError, match="max_steps must be at least 1"):
        task.replace(max_steps=0)


@pytest.mark.parametrize(("text", "grounder", "says"), [
    ("goal: g\n", "dom", "has no steps: give a model"),
    ("steps:\n  - click: OK\n", "dom", "runs on the desktop, and the dom grounder reads web pages"),
    (BROWSER_SCRIPT, "model", "the model grounder needs a model"),
    (BROWSER_SCRIPT, "sonar", "grounder 'sonar': give one of auto, dom, ocr, model"),
    (BROWSER_SCRIPT.replace("click: OK", "type: {text: 'pin <secret>pin</secret>'}"), "dom",
     "step 1 of task 'task' types the secret 'pin', which it was not given"),
])
def test_a_task_that_cannot_run_so_is_refused_before_anything_starts(tmp_path, text, grounder, says):
    task = Task.load(_write(tmp_path, text))
    with pytest.raises(TaskError, match=says):
        TaskRun(task, grounder=grounder, runs_dir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def _get(base: str, path: str) -> tuple[int, bytes]:
    """A request sent as written: http.client does not collapse `..` the way browsers do."""
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_the_served_folder_cannot_be_escaped(tmp_path):
    site, outside = tmp_path / "site", tmp_path / "outside"
    site.mkdir()
    outside.mkdir()
    (site / "page.html").write_text("<p>inside</p>")
    (tmp_path / "secret.txt").write_text("top secret")
    (outside / "secret.txt").write_text("top secret")
    os.symlink(outside, site / "out")                         # a folder link that leads out
    os.symlink(tmp_path / "secret.txt", site / "secret.txt")  # a file link that leads out
    os.symlink(site / "page.html", site / "alias.html")       # a link that stays inside is fine
    with serve_folder(site) as base:
        assert base.startswith("http://127.0.0.1:")
        assert _get(base, "/page.html") == (200, b"<p>inside</p>")
        assert _get(base, "/alias.html") == (200, b"<p>inside</p>")
        for escape in ("/../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt", "/out/secret.txt",
                       "/secret.txt", "/./out/../../secret.txt"):
            status, body = _get(base, escape)
            assert status == 404 and b"top secret" not in body, escape
        assert _get(base, "/")[0] == 404  # no directory listings
    with pytest.raises(OSError):
        _get(base, "/page.html")  # stopped with the block
