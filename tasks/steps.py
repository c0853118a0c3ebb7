"""The step syntax of task files: one `action: value` pair a step.

    - click: the New note button
    - type: {text: Buy milk, target: the note body}
    - key: ctrl+s
    - expect: the Saved label             # passes once the grounder finds it on the screen
    - expect_text: Account created        # passes once this text is shown (bounded wait)
    - click: {x: 640, y: 360}             # a point, in pixels of the screenshot
    - wait: 1
    - navigate: https://example.org/      # browser only; /settings.html: against the page shown
    - back:
    - click: the "Sign in" button         # a compiled step (agent/replay) also keeps its fallbacks:
      crop: login.crops/03-click.png      #   the target as it looked when recorded (beside the file)
      at: [0.42, 0.31]                    #   and where it was, as a fraction of the screen

The value is the action's main field (`MAIN_FIELD`: a target for click, move and expect; the
text for type and expect_text; the keys for key; seconds for wait; the url for navigate) or
a mapping of its fields, as in tools/actions.py. `expect` and `expect_text` are checks, not
actions: the runner waits for them and no input is sent.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tools.actions import ACTION_ADAPTER, BaseAction
from tools.errors import TaskError
from tools.validation import format_validation_error

__all__ = ["FALLBACK_KEYS", "MAIN_FIELD", "Expect", "ExpectText", "Fallback", "ScriptStep", "fallback_of",
           "parse_step"]

# The field a bare value stands for, per step.
MAIN_FIELD = {"click": "target", "move": "target", "scroll": "target", "type": "text", "key": "keys",
              "wait": "seconds", "navigate": "url", "finish": "answer", "fail": "reason", "expect": "target",
              "expect_text": "text"}
_NO_MAIN_FIELD = ("drag", "back")
# Keys a step may hold beside its `action: value` pair: where a replay looks when the words fail.
FALLBACK_KEYS = ("crop", "at")


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


class Fallback(BaseModel):
    """What a compiled step keeps besides its target in words: the recorded crop of the target
    (a PNG, relative to the script's folder) and its point as a fraction of the screen."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    crop: str | None = Field(default=None, min_length=1, max_length=500)
    at: tuple[float, float] | None = None

    @field_validator("at")
    @classmethod
    def _on_screen(cls, at: tuple[float, float] | None) -> tuple[float, float] | None:
        if at is not None and not all(0.0 <= v <= 1.0 for v in at):
            raise ValueError("at is [x, y] as fractions of the screen, each 0..1")
        return at


def fallback_of(raw: Any, where: str) -> Fallback | None:
    """The `crop` and `at` a step holds beside its action (None when neither)."""
    if not isinstance(raw, dict) or not any(key in raw for key in FALLBACK_KEYS):
        return None
    try:
        return Fallback(**{key: raw[key] for key in FALLBACK_KEYS if key in raw})
    except ValidationError as exc:
        raise TaskError(f"{where}: {format_validation_error(exc)}") from None


def parse_step(raw: Any, where: str) -> ScriptStep:
    """One step of a file; `where` starts every TaskError ("note.yaml:7: step 3"). The step's
    fallbacks (`crop`, `at`) are read by `fallback_of`."""
    if isinstance(raw, dict) and any(key in raw for key in FALLBACK_KEYS):
        fallback_of(raw, where)
        raw = {key: value for key, value in raw.items() if key not in FALLBACK_KEYS}
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
