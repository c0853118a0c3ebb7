"""The step syntax of task files: one `action: value` pair a step.

    - click: the New note button
    - type: {text: Buy milk, target: the note body}
    - key: ctrl+s
    - expect: the Saved label             # passes once the grounder finds it on the screen
    - expect_text: Account created        # passes once this text is shown (bounded wait)
    - click: {x: 640, y: 360}             # a point, in pixels of the screenshot
    - wait: 1
    - navigate: https://example.org/      # browser only
    - back:

The value is the action's main field (`MAIN_FIELD`: a target for click, move and expect; the
text for type and expect_text; the keys for key; seconds for wait; the url for navigate) or
a mapping of its fields, as in tools/actions.py. `expect` and `expect_text` are checks, not
actions: the runner waits for them and no input is sent.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tools.actions import ACTION_ADAPTER, BaseAction
from tools.errors import TaskError
from tools.validation import format_validation_error

__all__ = ["MAIN_FIELD", "Expect", "ExpectText", "ScriptStep", "parse_step"]

# The field a bare value stands for, per step.
MAIN_FIELD = {"click": "target", "move": "target", "scroll": "target", "type": "text", "key": "keys",
              "wait": "seconds", "navigate": "url", "finish": "answer", "fail": "reason", "expect": "target",
              "expect_text": "text"}
_NO_MAIN_FIELD = ("drag", "back")


class _ScreenCheck(BaseModel):
    """A check, not an action: a step that passes once something is on the screen."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: str

    @property
    def name(self) -> str:
        return self.action


class Expect(_ScreenCheck):
    """Passes once `target` can be found on the screen (by the grounder)."""

    action: str = "expect"
    target: str = Field(min_length=1, max_length=500)


class ExpectText(_ScreenCheck):
    """Passes once `text` is shown: the page's rendered text in a browser, what OCR reads on the
    desktop. Whitespace runs compare as one space."""

    action: str = "expect_text"
    text: str = Field(min_length=1, max_length=2000)


ScriptStep = BaseAction | Expect | ExpectText


def parse_step(raw: Any, where: str) -> ScriptStep:
    """One step of a file; `where` starts every TaskError ("note.yaml:7: step 3")."""
    if not isinstance(raw, dict) or len(raw) != 1:
        raise TaskError(f"{where}: write one `action: value` pair, such as `click: the OK button`")
    ((name, value),) = raw.items()
    if name not in MAIN_FIELD and name not in _NO_MAIN_FIELD:
        known = ", ".join(sorted(MAIN_FIELD))
        raise TaskError(f"{where}: unknown action {name!r}; the actions are {known}, drag and back")
    if isinstance(value, dict):
        fields = dict(value)
    else:
        fields = {} if value is None else {MAIN_FIELD.get(name): value}
    if None in fields:
        raise TaskError(f"{where}: {name} takes a mapping of its fields")
    if name == "key" and isinstance(fields.get("keys"), str):
        fields["keys"] = fields["keys"].split("+")  # "ctrl+s", as people write it
    try:
        if name == "expect":
            return Expect(**fields)
        if name == "expect_text":
            return ExpectText(**fields)
        return ACTION_ADAPTER.validate_python({"action": name, **fields})
    except (ValidationError, TypeError) as exc:
        problem = format_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)
        raise TaskError(f"{where} ({name}): {problem}") from None
