"""Script files: what they may say, and the one-line errors for what they may not."""

from __future__ import annotations

import pytest

from agent.script import Expect, Script
from tools.actions import Click, Key, Navigate, Type, Wait
from tools.errors import TaskError

GOOD = """
name: Save a note
timeout: 3
steps:
  - click: the New note button
  - type: {text: Buy milk, target: the note body, submit: true}
  - key: ctrl+s
  - expect: the Saved label
  - click: {x: 640, y: 360}
  - wait: 0.5
  - navigate: https://example.org/
  - back:
"""


def test_a_script_reads_into_actions_and_checks(tmp_path):
    path = tmp_path / "note.yaml"
    path.write_text(GOOD)
    script = Script.load(path)
    assert (script.name, script.timeout, len(script.steps)) == ("Save a note", 3.0, 8)
    assert script.steps[0] == Click(target="the New note button")
    assert script.steps[1] == Type(text="Buy milk", target="the note body", submit=True)
    assert script.steps[2] == Key(keys=("ctrl", "s"))
    assert script.steps[3] == Expect(target="the Saved label")
    assert script.steps[4] == Click(x=640, y=360)
    assert script.steps[5] == Wait(seconds=0.5)
    assert script.steps[6] == Navigate(url="https://example.org/")
    assert script.steps[7].name == "back"


@pytest.mark.parametrize(("text", "says"), [
    ("steps: []", "non-empty `steps:` list"),
    ("- click: x", "non-empty `steps:` list"),
    ("steps:\n  - clik: the OK button", "step 1: unknown action 'clik'"),
    ("steps:\n  - click: the OK button\n  - click: {x: 5}", "step 2 (click): "),
    ("steps:\n  - {click: a, type: b}", "step 1: write one `action: value` pair"),
    ("steps:\n  - wait: forever", "step 1 (wait): "),
    ("steps:\n  - expect:", "step 1 (expect): "),
    ("timeout: -1\nsteps:\n  - wait: 1", "timeout"),
    ("stepz:\n  - wait: 1", "non-empty `steps:` list"),
    ("steps:\n  - wait: 1\nretries: 3", "unknown key(s) ['retries']"),
    ("steps: [click: {x: 1, y: 2, target: t}]", "either x and y or target"),
    ("steps:\n  - click: [unclosed", "not valid YAML"),
])
def test_bad_scripts_are_one_task_error_that_names_the_step(tmp_path, text, says):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(TaskError) as caught:
        Script.load(path)
    assert says in caught.value.message and "\n" not in caught.value.message
    assert caught.value.message.startswith(str(path)) or "YAML" in caught.value.message


def test_a_missing_file_says_which(tmp_path):
    with pytest.raises(TaskError, match="cannot read script"):
        Script.load(tmp_path / "nope.yaml")


def test_a_file_that_is_not_utf8_is_one_task_error(tmp_path):
    (tmp_path / "latin1.yaml").write_bytes("steps:\n  - click: le bouton «OK»\n".encode("latin-1"))
    with pytest.raises(TaskError, match="not UTF-8"):
        Script.load(tmp_path / "latin1.yaml")
