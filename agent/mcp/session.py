"""One MCP client's hold on one executor: each call checked, carried out and recorded.

`GuiSession` is the synchronous core under the MCP tools (server.py only adapts it to the
SDK). Every action goes through the same `SafetyPolicy` as the agent's: an address off the
allowed domains is blocked, and an action a rule wants a person to approve is refused, since
over MCP there is no one to ask. A client types secrets by name (`<secret>name</secret>`);
their values reach only the executor, and are redacted from every text returned and every
record written. Each call is a `Step` of one trajectory (runs/<id>/), so a session has a
report like any run. A refused call raises `Refused`, whose message is the reason.

All calls must come from one thread: Playwright's sync API belongs to the thread that
started it (server.py runs them all on one worker).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from agent.grounding import Grounder, act, grounded_points, grounding_records
from agent.redaction import redacting_logs
from agent.safety import SafetyPolicy
from agent.trajectory import Step, Trajectory
from agent.vault import Secrets, UnknownSecret
from tools.actions import ACTION_ADAPTER, BaseAction
from tools.coordinates import to_model_space, to_pixels
from tools.errors import AgentError, GroundingError
from tools.executor import ActionResult, Executor, Observation

if TYPE_CHECKING:
    from model.base import VisionLanguageModel

__all__ = ["GuiSession", "Refused", "Shot"]


class Refused(AgentError):
    """A call that was not carried out; the message says why (the client sees it as isError)."""


@dataclass(frozen=True)
class Shot:
    """A screenshot as PNG bytes, with its size in pixels and the page it shows."""

    png: bytes
    size: tuple[int, int]
    url: str | None


class GuiSession:
    """`executor`, grounded by `grounder` and guarded by `safety`, each call recorded under
    `runs_dir`. `model`: the planner `run_task` uses (None: no run_task)."""

    def __init__(self, executor: Executor, grounder: Grounder, *, safety: SafetyPolicy,
                 runs_dir: Path | str = "runs", secrets: Mapping[str, str] | None = None,
                 model: VisionLanguageModel | None = None, start: Mapping[str, str] | None = None) -> None:
        self.executor = executor
        self.grounder = grounder
        self.safety = safety
        self.secrets = Secrets(secrets)
        self.model = model
        self.runs_dir = Path(runs_dir)
        meta = {"kind": "mcp", "secret_names": list(self.secrets.names), "start": dict(start or {}),
                "grounder": type(grounder).__name__}
        self.trajectory = Trajectory.create(self.runs_dir, goal="mcp session", meta=meta,
                                            secret_values=self.secrets.values)
        self._logs = redacting_logs(self.trajectory.redactor)
        self._logs.__enter__()

    # -- what a client reads ---------------------------------------------------------------

    def redact(self, value: Any) -> Any:
        """`value` with every secret's value replaced: for whatever goes back to the client."""
        return self.trajectory.redactor.value(value)

    def screenshot(self) -> Shot:
        import io

        t0 = time.perf_counter()
        observation = self.executor.observe()
        self._record("screenshot", {}, observation, None, ActionResult(ok=True), None, t0)
        buffer = io.BytesIO()
        observation.image.save(buffer, format="PNG", compress_level=1)
        return Shot(buffer.getvalue(), observation.size, observation.url)

    def ground(self, description: str) -> dict[str, Any]:
        """Where `description` is: the box and point in screenshot pixels and in 0..1000, and
        which grounder answered. Refused when nothing is found."""
        t0 = time.perf_counter()
        observation = self.executor.observe()
        try:
            found = self.grounder.locate(observation, description)
        except GroundingError as exc:
            self._record("ground", {"description": description}, observation, None,
                         ActionResult.failure(exc.message), None, t0)
            raise Refused(exc.message) from None
        self._record("ground", {"description": description}, observation, None, ActionResult(ok=True),
                     {description: found}, t0)
        width, height = observation.size
        box = found.record()["box"]
        return self.redact({
            "description": description, "source": found.source, "score": round(found.score, 3),
            "box": box, "point": list(found.point),
            "box_1000": [to_model_space(box[0], width), to_model_space(box[1], height),
                         to_model_space(box[2], width), to_model_space(box[3], height)],
            "point_1000": [to_model_space(found.point[0], width), to_model_space(found.point[1], height)],
            "screenshot_size": [width, height],
        })

    # -- what a client does ----------------------------------------------------------------

    def act(self, tool: str, arguments: Mapping[str, Any]) -> str:
        """Carry out one GUI action given as the client sent it: points in 0..1000 of the
        current screenshot, or targets in words. The outcome in one line; Refused if the
        arguments are wrong, the policy says no, or the action fails."""
        t0 = time.perf_counter()
        observation = self.executor.observe()
        args = {k: v for k, v in arguments.items() if v is not None}
        try:
            action = _to_action(tool, args, observation.size)
        except (ValidationError, ValueError) as exc:
            why = _validation_message(exc)
            self._record(tool, args, observation, None, ActionResult.failure(why), None, t0)
            raise Refused(f"{tool}: {why}") from None
        verdict = self.safety.check(action, observation)
        if verdict.kind != "allow":
            why = verdict.reason if verdict.kind == "block" else (
                f"needs a person's approval ({verdict.reason}), and no one can give it over MCP: "
                "ask the user to do this step")
            self._record(tool, args, observation, action, ActionResult.failure(why), None, t0)
            raise Refused(why if why.startswith(f"{tool} refused") else f"{tool} refused: {why}")
        try:
            done = act(self.executor, self.secrets.fill_action(action), observation, self.grounder)
        except UnknownSecret as exc:
            result, found = ActionResult.failure(str(exc)), None
        except GroundingError as exc:
            result, found = ActionResult.failure(exc.message), None
        else:
            result, found = done.result, done.found
        step = self._record(tool, args, observation, action, result, found, t0)
        if not result.ok:
            raise Refused(f"{tool} failed: {self.redact(result.error)}")
        where = "".join(f"; {d!r} found at {p} by {found[d].source}" for d, p in (step.grounded or {}).items()
                        ) if found else ""
        return self.redact(f"{tool}: done{where}")

    def run_script(self, text: str) -> str:
        """Run a script's steps (YAML text, as agent/script.py reads it) on this executor, as a
        run of its own; refused before anything runs if a step's address is off the allowlist."""
        import yaml

        from agent.report import write_report
        from agent.script import Script, ScriptRunner
        from tasks.steps import Expect, ExpectText

        t0 = time.perf_counter()
        try:
            script = Script.parse(yaml.safe_load(text), source="run_script")
        except yaml.YAMLError as exc:
            raise Refused(f"run_script: the text is not YAML ({exc})") from None
        assert script.steps is not None
        observation = self.executor.observe()
        for index, step in enumerate(script.steps, start=1):
            if isinstance(step, Expect | ExpectText):
                continue
            verdict = self.safety.check(step, observation)
            if verdict.kind != "allow":
                raise Refused(f"run_script refused at step {index} ({step.name}): {verdict.reason}")
        runner = ScriptRunner(self.executor, self.grounder, runs_dir=self.runs_dir,
                              secrets=dict(zip(self.secrets.names, self.secrets.values, strict=True)))
        trajectory = runner.run(script, start={"mcp": str(self.trajectory.run_dir)})
        write_report(trajectory.run_dir)
        summary = _summary(trajectory)
        self._record("run_script", {"steps": len(script.steps)}, self.executor.observe(), None,
                     ActionResult(ok=trajectory.outcome == "finished", output=summary,
                                  error=None if trajectory.outcome == "finished" else summary), None, t0)
        if trajectory.outcome != "finished":
            raise Refused(self.redact(f"run_script failed: {summary}"))
        return self.redact(summary)

    def run_task(self, goal: str, max_steps: int) -> Iterator[str]:
        """The agent works towards `goal` with the session's model and policy: one line per step
        as it is written, then the outcome."""
        from agent.loop import Agent
        from agent.report import write_report

        if self.model is None:
            raise Refused("run_task needs a model: start the server with --model")
        t0 = time.perf_counter()
        agent = Agent(self.model, self.executor, max_steps=max_steps, runs_dir=self.runs_dir,
                      secrets=dict(zip(self.secrets.names, self.secrets.values, strict=True)),
                      safety=self.safety, grounder=self.grounder)
        for step in agent.steps(goal):
            what = step.action["action"] if step.action else "no action"
            yield self.redact(f"step {step.index}: {what} -> {'ok' if step.ok else step.feedback()}")
        trajectory = agent.trajectory
        assert trajectory is not None
        write_report(trajectory.run_dir)
        summary = _summary(trajectory)
        self._record("run_task", {"goal": goal, "max_steps": max_steps}, self.executor.observe(), None,
                     ActionResult(ok=trajectory.outcome == "finished", output=summary), None, t0)
        yield self.redact(summary)

    def close(self) -> Path:
        """End the session's trajectory and write its report; the report's path."""
        from agent.report import write_report

        try:
            if self.trajectory.outcome == "running":
                self.trajectory.end("finished", f"{len(self.trajectory)} calls")
            return write_report(self.trajectory.run_dir)
        finally:
            self._logs.__exit__(None, None, None)

    def _record(self, tool: str, args: Mapping[str, Any], observation: Observation, action: BaseAction | None,
                result: ActionResult, found: Any, t0: float) -> Step:
        """One call as a Step (secrets redacted by the trajectory before it is written)."""
        step = Step(index=len(self.trajectory) + 1, observation=observation.metadata(),
                    model_text=f"mcp {tool} {json.dumps(dict(args), sort_keys=True)}",
                    action=action.model_dump(mode="json") if action is not None else None, result=result,
                    grounded=grounded_points(found), grounding=grounding_records(found),
                    timings_ms={"step": round((time.perf_counter() - t0) * 1e3, 2)})
        return self.trajectory.append(step, observation.image)


def _to_action(tool: str, args: dict[str, Any], size: tuple[int, int]) -> BaseAction:
    """The action a tool call names, its 0..1000 points turned into pixels of `size`."""
    width, height = size
    args = dict(args)
    if "x" in args:
        args["x"] = to_pixels(args["x"], width, field="x")
    if "y" in args:
        args["y"] = to_pixels(args["y"], height, field="y")
    for end in ("start", "end"):
        value = args.get(end)
        if isinstance(value, list | tuple):
            if len(value) != 2:
                raise ValueError(f"{end} is a point [x, y] in 0..1000, or a target in words")
            args[end] = (to_pixels(value[0], width, field=f"{end}[0]"), to_pixels(value[1], height,
                                                                                   field=f"{end}[1]"))
    action = ACTION_ADAPTER.validate_python({"action": tool, **args})
    assert isinstance(action, BaseAction)
    return action


def _validation_message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in err['loc'][1:]) or 'arguments'}: {err['msg']}"
                         for err in exc.errors())
    return str(exc)


def _summary(trajectory: Trajectory) -> str:
    answer = f": {trajectory.answer}" if trajectory.answer else ""
    return f"{trajectory.outcome} after {len(trajectory)} steps{answer}; run: {trajectory.run_dir}"

