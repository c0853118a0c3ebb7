"""Scripted automation: a YAML list of steps whose targets are described in words.

Each target is grounded on the live screen when its step runs, so a script keeps working
when the layout moves. No planning model is involved; the grounder (by default the model
itself, with InternVL's grounding prompt) only says where things are.

    name: Save a note
    timeout: 10              # seconds a step may wait for its target to appear (default 10)
    steps:
      - click: the New note button
      - type: {text: Buy milk, target: the note body}
      - key: ctrl+s
      - expect: the Saved label          # passes once the grounder answers where it is
      - click: {x: 640, y: 360}          # a point, in pixels of the screenshot
      - wait: 1
      - navigate: https://example.org/   # browser only

`expect` is only as strict as the grounder: a model may answer a box for something that is
not there, so it catches a screen that is plainly wrong, not a missing word.

A step is `action: value`, the value being the action's main field (a target for click,
move and expect; the text for type; the keys for key; seconds for wait; the url for
navigate) or a mapping of its fields, as in tools/actions.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.grounding import Grounder, act
from agent.runner import Runner
from agent.trajectory import Step, Trajectory
from agent.vault import Secrets, UnknownSecret, literal_secret
from tools.actions import ACTION_ADAPTER, BaseAction
from tools.errors import GroundingError, TaskError
from tools.executor import ActionResult, Executor
from tools.validation import format_validation_error

__all__ = ["Expect", "Script", "ScriptRunner"]

# The field a bare value stands for, per action.
_MAIN_FIELD = {"click": "target", "move": "target", "scroll": "target", "type": "text", "key": "keys",
               "wait": "seconds", "navigate": "url", "finish": "answer", "fail": "reason", "expect": "target"}


class Expect(BaseModel):
    """A check, not an action: the step passes once `target` can be found on the screen."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: str = "expect"
    target: str = Field(min_length=1, max_length=500)

    @property
    def name(self) -> str:
        return "expect"


class Script(BaseModel):
    """A validated script: `steps` are actions (pixels or targets in words) and Expect checks."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str = "script"
    timeout: float = Field(default=10.0, gt=0, le=600)
    steps: tuple[BaseAction | Expect, ...]

    @classmethod
    def load(cls, path: Path | str) -> Script:
        """Read a script file; TaskError says which step is wrong and how."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise TaskError(f"cannot read script {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise TaskError(f"script {path} is not UTF-8 text: save it as UTF-8") from None
        except yaml.YAMLError as exc:
            raise TaskError(f"script {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
        return cls.parse(data, source=str(path))

    @classmethod
    def parse(cls, data: Any, *, source: str = "script") -> Script:
        if not isinstance(data, dict) or not isinstance(data.get("steps"), list) or not data["steps"]:
            raise TaskError(f"{source}: give a mapping with a non-empty `steps:` list (see agent/script.py)")
        unknown = set(data) - {"name", "timeout", "steps"}
        if unknown:
            raise TaskError(f"{source}: unknown key(s) {sorted(unknown)}: the keys are name, timeout, steps")
        steps = [_step(raw, f"{source}: step {n}") for n, raw in enumerate(data["steps"], start=1)]
        try:
            return cls(name=str(data.get("name", "script")), timeout=data.get("timeout", 10.0),
                       steps=tuple(steps))
        except ValidationError as exc:
            raise TaskError(f"{source}: {format_validation_error(exc)}") from None


def _step(raw: Any, where: str) -> BaseAction | Expect:
    if not isinstance(raw, dict) or len(raw) != 1:
        raise TaskError(f"{where}: write one `action: value` pair, such as `click: the OK button`")
    ((name, value),) = raw.items()
    if name not in _MAIN_FIELD and name not in ("drag", "back"):
        known = ", ".join(sorted(_MAIN_FIELD))
        raise TaskError(f"{where}: unknown action {name!r}; the actions are {known}, drag and back")
    if isinstance(value, dict):
        fields = dict(value)
    else:
        fields = {} if value is None else {_MAIN_FIELD.get(name): value}
    if None in fields:
        raise TaskError(f"{where}: {name} takes a mapping of its fields")
    if name == "key" and isinstance(fields.get("keys"), str):
        fields["keys"] = fields["keys"].split("+")  # "ctrl+s", as people write it
    try:
        if name == "expect":
            return Expect(**fields)
        return ACTION_ADAPTER.validate_python({"action": name, **fields})
    except (ValidationError, TypeError) as exc:
        problem = format_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)
        raise TaskError(f"{where} ({name}): {problem}") from None


class ScriptRunner(Runner[Script]):
    """Runs a Script on an executor, each step recorded like an agent's (runs/<id>/)."""

    def __init__(self, executor: Executor, grounder: Grounder, *, runs_dir: Path | str = "runs",
                 retry_every_s: float = 0.5, secrets: Mapping[str, str] | None = None) -> None:
        """`secrets`: values a step types as <secret>name</secret>, never written to disk (nor
        is the text of a `type` step marked `secret: true`)."""
        super().__init__()
        self.executor = executor
        self.grounder = grounder
        self.secrets = Secrets(secrets)
        self.runs_dir = Path(runs_dir)
        self.retry_every_s = retry_every_s

    def steps(self, script: Script, *, run_id: str | None = None) -> Iterator[Step]:
        """Run the steps in order; the first that fails ends the run as `failed`."""
        meta = {"script": script.name, "steps_in_script": len(script.steps)}
        trajectory = self._begin(Trajectory.create(
            self.runs_dir, goal=f"script: {script.name}", run_id=run_id, meta=meta,
            secret_values=self.secrets.values))
        with trajectory.running("finished") as end:
            for index, action in enumerate(script.steps, start=1):
                if self.stopping:
                    end.outcome = "stopped"
                    break
                step = self._run_step(index, action, script.timeout, trajectory)
                yield step
                if not step.ok:
                    end.outcome, end.answer = "failed", f"step {index} ({action.name}): {step.feedback()}"
                    break

    def _run_step(self, index: int, action: BaseAction | Expect, timeout: float,
                  trajectory: Trajectory) -> Step:
        """Observe, ground and act; while a target cannot be found, look again until `timeout`."""
        t0 = time.perf_counter()
        deadline = time.monotonic() + timeout
        if not isinstance(action, Expect) and (literal := literal_secret(action)) is not None:
            trajectory.add_secret(literal)
        while True:
            observation = self.executor.observe()
            try:
                if isinstance(action, Expect):
                    box = self.grounder.locate(observation, action.target)
                    result, grounded = ActionResult(ok=True), {action.target: list(box.center)}
                else:
                    filled = self.secrets.fill_action(action)  # the record keeps the placeholder
                    acted = act(self.executor, filled, observation, self.grounder)
                    result, grounded = acted.result, acted.grounded
                break
            except UnknownSecret as exc:
                result, grounded = ActionResult.failure(str(exc)), None
                break
            except GroundingError as exc:
                if self.stopping or time.monotonic() + self.retry_every_s > deadline:
                    result, grounded = ActionResult.failure(f"{exc.message} (looked for {timeout:g} s)"), None
                    break
                time.sleep(self.retry_every_s)  # the page or window may still be drawing it
        step = Step(
            index=index,
            observation=observation.metadata(),
            model_text=f"script step {index}",
            action=action.model_dump(mode="json"),
            result=result,
            grounded=grounded,
            timings_ms={"step": round((time.perf_counter() - t0) * 1e3, 2)},
        )
        return trajectory.append(step, observation.image)
