"""The agent: observe -> decide -> (ground) -> act -> record, one step per model call.

`Agent.steps(goal)` yields each `Step` as soon as it is on disk, so callers can watch a
run live; `Agent.run(goal)` drives it to the end and returns the `Trajectory`.
The run ends at `finish` or `fail`; at `max_steps` (every model call counts, parsed or
not) or `max_seconds` (checked between steps); after more than `max_retries` unusable
replies or failed actions in a row; when the model repeats itself on an unchanged screen
(`looping`); at an action that needed a person's approval and did not get it (`blocked`);
or after `stop()` (`stopped`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from agent.grounding import Acted, Grounder, act
from agent.grounding.model import ModelGrounder
from agent.policy import Decision, Policy
from agent.prompts import PROMPT_VERSION
from agent.safety import LoopDetector, SafetyPolicy
from agent.secrets import Secrets, UnknownSecret, literal_secret
from agent.trajectory import Outcome, Step, Trajectory
from model.base import GenerationConfig, VisionLanguageModel
from tools.actions import BaseAction, Fail, Finish
from tools.errors import AgentError, GroundingError
from tools.executor import ActionResult, Executor, Observation
from tools.registry import ToolAction, ToolRegistry

__all__ = ["Agent"]

log = logging.getLogger(__name__)


class Agent:
    def __init__(
        self,
        model: VisionLanguageModel,
        executor: Executor,
        *,
        max_steps: int,
        max_seconds: float | None = None,
        max_retries: int = 3,
        registry: ToolRegistry | None = None,
        generation: GenerationConfig | None = None,
        runs_dir: Path | str = "runs",
        surface: str = "web browser",
        secrets: Mapping[str, str] | None = None,
        safety: SafetyPolicy | None = None,
        confirm: Callable[[BaseAction, str], bool] | None = None,
        grounder: Grounder | None = None,
    ) -> None:
        """`secrets` maps names to values the model can type as <secret>name</secret>
        without seeing them; no value is ever written to the run directory. `safety` checks
        each action before it runs (by default: the loop detector alone); `confirm(action,
        reason)` is asked about the actions it wants a person to approve. `grounder` finds
        targets described in words (default: the model itself, with InternVL's grounding prompt)."""
        if max_steps < 1:
            raise ValueError("max_steps must be at least 1")
        if max_seconds is not None and max_seconds <= 0:
            raise ValueError("max_seconds must be positive (or None for no time limit)")
        self.model = model
        self.executor = executor
        self.max_steps = max_steps
        self.max_seconds = max_seconds
        self.max_retries = max_retries
        self.registry = registry if registry is not None else ToolRegistry()
        self.secrets = Secrets(secrets)
        self.policy = Policy(model, registry=self.registry, generation=generation, surface=surface,
                             secret_names=self.secrets.names)
        self.safety = safety if safety is not None else SafetyPolicy()
        self.confirm = confirm
        self.grounder = grounder if grounder is not None else ModelGrounder(model)
        self.runs_dir = Path(runs_dir)
        self.trajectory: Trajectory | None = None
        self._stop = threading.Event()

    def stop(self) -> None:
        """End the run after the step in flight, as outcome `stopped`. Safe to call from another
        thread or a signal handler: unlike an exception, it never cuts a browser call in half."""
        self._stop.set()

    def run(self, goal: str, *, run_id: str | None = None) -> Trajectory:
        for _ in self.steps(goal, run_id=run_id):
            pass
        assert self.trajectory is not None
        return self.trajectory

    def steps(self, goal: str, *, run_id: str | None = None) -> Iterator[Step]:
        meta = {"model": getattr(self.model, "name", type(self.model).__name__),
                "prompt_version": PROMPT_VERSION, "max_steps": self.max_steps}
        trajectory = Trajectory.create(self.runs_dir, goal=goal, run_id=run_id, meta=meta,
                                       secrets=self.secrets.values)
        self.trajectory = trajectory
        self._stop.clear()
        failures_in_a_row = 0
        loops = LoopDetector(self.safety.loop_limit) if self.safety.loop_limit else None
        deadline = time.monotonic() + self.max_seconds if self.max_seconds is not None else None
        with trajectory.running("max_steps") as end:  # max_steps unless a step ends the run earlier
            for index in range(1, self.max_steps + 1):
                if self._stop.is_set():
                    end.outcome = "stopped"
                    break
                if deadline is not None and time.monotonic() >= deadline:  # checked between steps
                    end.outcome = "max_seconds"
                    break
                step, ending = self._step(index, goal, trajectory, loops)
                yield step
                if ending is not None:  # a loop, or an action no one approved
                    end.outcome = ending
                    break
                done = step.action if step.ok and step.action else {}
                if done.get("action") in ("finish", "fail"):
                    end.outcome = "finished" if done["action"] == "finish" else "failed"
                    end.answer = done.get("answer", done.get("reason"))
                    break
                failures_in_a_row = 0 if step.ok else failures_in_a_row + 1
                if failures_in_a_row > self.max_retries:
                    end.outcome = "too_many_errors"
                    break
        log.info("run %s ended: %s after %d steps", trajectory.run_dir, end.outcome, len(trajectory))

    def _step(self, index: int, goal: str, trajectory: Trajectory,
              loops: LoopDetector | None) -> tuple[Step, Outcome | None]:
        t0 = time.perf_counter()
        observation = self.executor.observe()
        observe_ms = (time.perf_counter() - t0) * 1e3
        decision = self.policy.decide(goal, observation, trajectory.steps)
        result: ActionResult | None = None
        broken: AgentError | None = None
        ending: Outcome | None = None
        act_ms = 0.0
        acted: Acted | None = None
        if decision.action is not None:
            if (literal := literal_secret(decision.action)) is not None:
                trajectory.add_secret(literal)
            refusal, ending = self._vet(decision.action, observation, loops)
            t1 = time.perf_counter()
            try:
                if refusal:
                    result = ActionResult.failure(refusal)
                else:
                    acted = self._act(decision.action, observation)
                    result = acted.result
            except AgentError as exc:
                # The executor is gone (a second crash, no display, the fail-safe): record the
                # step that met it, with the model's reply, before the run ends.
                result = ActionResult.failure(exc.message)
                broken = exc
            act_ms = (time.perf_counter() - t1) * 1e3
        step = Step(
            index=index,
            observation=observation.metadata(),
            model_text=decision.text,
            action=decision.action.model_dump(mode="json") if decision.action is not None else None,
            parse_error=decision.parse_error,
            result=result,
            grounded=(acted.grounded or None) if acted is not None else None,
            timings_ms=_timings(observe_ms, decision, act_ms, acted),
        )
        step = trajectory.append(step, observation.image)
        if broken is not None:
            raise broken
        return step, ending

    def _vet(self, action: BaseAction, observation: Observation,
             loops: LoopDetector | None) -> tuple[str | None, Outcome | None]:
        """(why the action must not run, or None; the outcome that ends the run, or None)."""
        if loops is not None and (loop := loops.see(action, observation)):
            return f"not run: {loop}", "looping"
        verdict = self.safety.check(action, observation)
        if verdict.kind == "block":
            return verdict.reason, None
        if verdict.kind == "confirm":
            if self.confirm is None:
                return f"not run: it needs approval ({verdict.reason}) and no one is asked", "blocked"
            if not self.confirm(action, verdict.reason):
                return f"not run: the person asked refused it ({verdict.reason})", "blocked"
        return None, None

    def _act(self, action: BaseAction, observation: Observation) -> Acted:
        if isinstance(action, Finish | Fail):
            return Acted(ActionResult(ok=True), None, 0.0)
        if isinstance(action, ToolAction):
            return Acted(self.registry.call(action), None, 0.0)
        try:  # the filled copy goes to the executor only: the step records the placeholder
            action = self.secrets.fill_action(action)
        except UnknownSecret as exc:
            return Acted(ActionResult.failure(str(exc)), None, 0.0)
        t0 = time.perf_counter()
        try:
            return act(self.executor, action, observation, self.grounder)
        except GroundingError as exc:  # told to the model, which can describe it another way
            return Acted(ActionResult.failure(exc.message), {}, (time.perf_counter() - t0) * 1e3)


def _timings(observe_ms: float, decision: Decision, act_ms: float, acted: Acted | None) -> dict[str, float]:
    """Milliseconds per phase of a step; `ground` only when a target in words was looked for."""
    ground_ms = acted.ground_ms if acted is not None and acted.grounded is not None else None
    return {
        "observe": round(observe_ms, 2),
        "model": round(decision.model_ms, 2),
        "parse": round(decision.parse_ms, 2),
        **({"ground": round(ground_ms, 2)} if ground_ms is not None else {}),
        "act": round(act_ms - (ground_ms or 0.0), 2),
    }
