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
      - expect_text: Saved               # passes once the text is shown (browser; OCR on a desktop)
      - click: {x: 640, y: 360}          # a point, in pixels of the screenshot
      - wait: 1
      - navigate: https://example.org/   # browser only

A script is a task file (tasks/spec.py) that has steps, so it may also say where it starts
and how its success is checked; the step syntax is tasks/steps.py. `expect` is only as
strict as the grounder: a model may answer a box for something that is not there, so it
catches a screen that is plainly wrong, not a missing word. `expect_text` reads the text
itself: in a browser, the page's rendered text (`visible_text()` of the executor).

A compiled script (agent/replay) keeps fallbacks beside each target, `crop` and `at`. When the
words no longer find a target, the step heals: the crop matched on the new screen, then the
model given as `heal_with`; each step's `replay` record says how its target was found, and
`write_back=True` rewrites the healed steps in the file once the run has finished. `{{name}}`
in a script is a variable, given to `Script.load(path, variables={...})` (`--var name=value`).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from agent.grounding import Grounder, Grounding, act, grounded_points, grounding_records
from agent.redaction import redacting_logs
from agent.replay.session import Healing
from agent.runner import Runner, Start
from agent.trajectory import Step, Trajectory
from agent.vault import Secrets, UnknownSecret, literal_secret
from tasks.spec import Task
from tasks.steps import Expect, ExpectText, Fallback, ScriptStep, fallback_of
from tasks.yamlfile import Source, read_yaml
from tools.actions import Navigate
from tools.errors import AgentError, GroundingError, TaskError
from tools.executor import ActionResult, Executor, Observation

__all__ = ["Expect", "ExpectText", "Script", "ScriptRunner"]

SHOWN = 200  # characters of the screen's text that a failed expect_text quotes
VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class Script(Task):
    """A task that has steps (`steps` is never None); `Script.load` reads any task file with steps."""

    noun = "script"
    name: str = "script"
    # each step's crop and point, when it has them (a compiled script's): where a replay heals
    fallbacks: tuple[Fallback | None, ...] = ()

    @classmethod
    def load(cls, path: Path | str, *, variables: dict[str, str] | None = None) -> Script:
        """Read a script; its `{{name}}` placeholders become `variables[name]` (TaskError when one
        is not given)."""
        path = Path(path)
        data, source = read_yaml(path, noun=cls.noun)
        return cls.parse(data, source=source, path=path, variables=variables)

    @classmethod
    def parse(cls, data: Any, *, source: Source | str | None = None, path: Path | None = None,
              variables: dict[str, str] | None = None) -> Script:
        where = source.at() if isinstance(source, Source) else (source or str(path or "script"))
        if not isinstance(data, dict) or not isinstance(data.get("steps"), list) or not data["steps"]:
            raise TaskError(f"{where}: give a mapping with a non-empty `steps:` list (see agent/script.py); "
                            "a task with a goal and no steps runs with `internvl-agent run --task FILE`")
        data = _filled(data, variables or {}, where)  # the steps, and the goal and checks that name them
        script = super().parse(data, source=source, path=path)
        assert isinstance(script, Script)
        at = source.at if isinstance(source, Source) else (lambda *loc: where)
        fallbacks = tuple(fallback_of(raw, f"{at('steps', n)}: step {n + 1}")
                          for n, raw in enumerate(data["steps"]))
        return script.model_copy(update={"fallbacks": fallbacks}) if any(fallbacks) else script


class ScriptRunner(Runner[Task]):
    """Runs a task's steps on an executor, each step recorded like an agent's (runs/<id>/)."""

    def __init__(self, executor: Executor, grounder: Grounder, *, runs_dir: Path | str = "runs",
                 retry_every_s: float = 0.5, secrets: Mapping[str, str] | None = None,
                 heal_with: Grounder | None = None, write_back: bool = False) -> None:
        """`secrets`: values a step types as <secret>name</secret>, never written to disk (nor
        is the text of a `type` step marked `secret: true`). `heal_with`: the grounder (a model's)
        that finds a target when neither its words nor its crop do; `write_back`: rewrite the
        healed steps in the script's file once the run has finished (agent/replay/heal.py)."""
        super().__init__()
        self.heal_with = heal_with
        self.write_back = write_back
        self.executor = executor
        self.grounder = grounder
        self.secrets = Secrets(secrets)
        self.runs_dir = Path(runs_dir)
        self.retry_every_s = retry_every_s

    def steps(self, script: Task, *, run_id: str | None = None, start: Start | None = None) -> Iterator[Step]:
        """Run the steps in order; the first that fails ends the run as `failed`. `start`: where
        the executor was opened and the file the steps came from, kept in run.json for a resume."""
        steps = _steps_of(script)
        meta = {"kind": "script", "script": script.name, "steps_in_script": len(steps),
                "script_digest": _digest(steps), "secret_names": list(self.secrets.names),
                "start": dict(start or {}), "grounder": type(self.grounder).__name__,
                "heal_with": type(self.heal_with).__name__ if self.heal_with is not None else None}
        trajectory = self._begin(Trajectory.create(
            self.runs_dir, goal=f"script: {script.name}", run_id=run_id, meta=meta,
            secret_values=self.secrets.values))
        self._healing = Healing(script)
        yield from self._loop(steps, script.timeout, trajectory)
        self._healing.write_back(trajectory, enabled=self.write_back)

    def resume(self, script: Task, run_dir: Path | str, *, start_url: str | None = None) -> Iterator[Step]:
        """Go on with the run of `script` in `run_dir` (killed, crashed or stopped): the steps
        done are skipped, and the next one runs once a browser is back on the page of the last
        (see Runner._reopen; `start_url`: where the executor starts now, when the start moved,
        such as a folder served on a new port). The steps must be those the run began with, and
        the secrets the same (by name). A run whose last step failed just ends, as `failed`."""
        steps = _steps_of(script)

        def check(record: dict[str, Any]) -> None:
            if record.get("script_digest") != _digest(steps):
                raise TaskError(f"{run_dir} ran other steps (or these before they changed): resume it "
                                "with the script it began with")

        trajectory = self._resumed(run_dir, "script", self.secrets, check)
        self._healing = Healing(script)
        for action in steps[:len(trajectory)]:  # what the run had registered before the kill
            literal = None if isinstance(action, Expect | ExpectText) else literal_secret(action)
            if literal is not None:
                trajectory.add_secret(literal)
        yield from self._loop(steps, script.timeout, trajectory, reopen=lambda: self._reopen(
            self.executor, trajectory, start_url=start_url))
        self._healing.write_back(trajectory, enabled=self.write_back)

    def _loop(self, steps: Sequence[ScriptStep], timeout: float, trajectory: Trajectory,
              reopen: Callable[[], object] | None = None) -> Iterator[Step]:
        """The steps after those in `trajectory` (none, unless it is resumed, when `reopen`
        first takes the executor back to where the run was)."""
        done = trajectory.steps
        with redacting_logs(trajectory.redactor), trajectory.running("finished") as end:  # no secret in a log
            if done and not done[-1].ok:  # the run had failed there: only its end was not written
                last = done[-1]
                name = (last.action or {}).get("action")
                end.outcome, end.answer = "failed", f"step {last.index} ({name}): {last.feedback()}"
                return
            if reopen is not None and len(done) < len(steps):
                reopen()
            for index, action in enumerate(steps, start=1):
                if index <= len(done):
                    continue
                if self.stopping:
                    end.outcome = "stopped"
                    break
                step = self._run_step(index, action, timeout, trajectory)
                yield step
                if not step.ok:
                    end.outcome, end.answer = "failed", f"step {index} ({action.name}): {step.feedback()}"
                    break

    def _run_step(self, index: int, action: ScriptStep, timeout: float, trajectory: Trajectory) -> Step:
        """Observe and attempt the step; while its target or text is not there yet, look again
        until `timeout`."""
        t0 = time.perf_counter()
        deadline = time.monotonic() + timeout
        if not isinstance(action, Expect | ExpectText) and (literal := literal_secret(action)) is not None:
            trajectory.add_secret(literal)
        grounder = self._healing.grounder(index, self.grounder, self.executor, self.heal_with)
        while True:
            observation = self.executor.observe()
            trajectory.flush()  # the last step is on disk before this one acts: no kill loses an action
            result, found, missing = self._attempt(action, observation, grounder)
            if missing is None:
                break
            if self.stopping or time.monotonic() + self.retry_every_s > deadline:
                result = ActionResult.failure(f"{missing} (looked for {timeout:g} s)")
                break
            time.sleep(self.retry_every_s)  # the page or window may still be drawing it
        step = Step(
            index=index,
            observation=observation.metadata(),
            model_text=f"script step {index}",
            action=action.model_dump(mode="json"),
            result=result,
            grounded=grounded_points(found),
            grounding=grounding_records(found),
            timings_ms={"step": round((time.perf_counter() - t0) * 1e3, 2)},
            replay=grounder.records or None,
        )
        if result.ok and grounder.healed is not None:
            self._healing.healed[index] = grounder.healed
        return trajectory.append(step, observation.image)

    def _attempt(self, action: ScriptStep, observation: Observation, grounder: Grounder) -> tuple[
            ActionResult, dict[str, Grounding] | None, str | None]:
        """One try: (result, where targets were grounded, what is not there yet to look again for)."""
        if isinstance(action, ExpectText):
            return self._expect_text(action, observation)
        try:
            if isinstance(action, Expect):
                found = grounder.locate(observation, action.target)
                return ActionResult(ok=True), {action.target: found}, None
            if isinstance(action, Navigate) and not urlsplit(action.url).scheme:
                if not observation.url:
                    return ActionResult.failure(f"navigate {action.url!r}: a relative address needs a "
                                                "page to go from: give a full URL"), None, None
                action = action.model_copy(update={"url": urljoin(observation.url, action.url)})
            filled = self.secrets.fill_action(action)  # the record keeps the placeholder
            acted = act(self.executor, filled, observation, grounder)
            return acted.result, acted.found, None
        except UnknownSecret as exc:
            return ActionResult.failure(str(exc)), None, None
        except GroundingError as exc:
            return ActionResult.failure(exc.message), None, exc.message

    def _expect_text(self, action: ExpectText, observation: Observation,
                     ) -> tuple[ActionResult, None, str | None]:
        """Whether the screen shows `action.text`: the page's rendered text in a browser (the
        executor's `visible_text()`), else what OCR reads on the screenshot."""
        read = getattr(self.executor, "visible_text", None) or _ocr_reader(observation)
        try:
            shown = " ".join(read().split())
        except AgentError as exc:  # no OCR engine here
            return ActionResult.failure(f"expect_text needs OCR on this screen: {exc.message}"), None, None
        if " ".join(action.text.split()) in shown:
            return ActionResult(ok=True), None, None
        quoted = shown if len(shown) <= SHOWN else shown[: SHOWN - 1] + "…"
        missing = f"the text {action.text!r} is not shown; the screen shows {quoted!r}"
        return ActionResult.failure(missing), None, missing


def _ocr_reader(observation: Observation) -> Callable[[], str]:
    """The text OCR reads on the observation's screenshot."""
    from agent.grounding.ocr import screen_text

    return lambda: screen_text(observation.image)


def _filled(data: dict[str, Any], variables: Mapping[str, str], where: str) -> dict[str, Any]:
    """The file's data with each `{{name}}` in its strings replaced by `variables[name]`."""
    missing: list[str] = []

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            def one(match: re.Match[str]) -> str:
                if match.group(1) not in variables:
                    missing.append(match.group(1))
                    return match.group(0)
                return variables[match.group(1)]
            return VARIABLE.sub(one, value)
        if isinstance(value, dict):
            return {key: fill(item) for key, item in value.items()}
        if isinstance(value, list):
            return [fill(item) for item in value]
        return value

    filled: dict[str, Any] = fill(data)
    if missing:
        names = ", ".join(dict.fromkeys(missing))
        raise TaskError(f"{where}: the steps use the variable(s) {names}: give each with --var NAME=VALUE")
    return filled


def _steps_of(script: Task) -> tuple[ScriptStep, ...]:
    if not script.steps:
        raise TaskError(f"task {script.name!r} has no steps to run: give it `steps:`, or run its goal "
                        "with a model")
    return script.steps


def _digest(steps: Sequence[ScriptStep]) -> str:
    """A fingerprint of the steps: a resume goes on only with the steps the run began with."""
    dumped = [step.model_dump(mode="json") for step in steps]
    return hashlib.sha256(json.dumps(dumped, sort_keys=True).encode("utf-8")).hexdigest()[:16]
