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
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from agent.grounding import ActRecord, Grounder, act
from agent.grounding.model import ModelGrounder
from agent.policy import Decision, Policy
from agent.prompts import PROMPT_VERSION
from agent.runner import Runner
from agent.safety import LoopDetector, SafetyPolicy
from agent.trajectory import Outcome, Step, Trajectory
from agent.vault import Secrets, UnknownSecret, literal_secret
from model.base import GenerationConfig, VisionLanguageModel
from tools.actions import BaseAction, Fail, Finish
from tools.errors import AgentError, GroundingError
from tools.executor import ActionResult, Executor, Observation
from tools.registry import ToolAction, ToolRegistry

__all__ = ["Agent"]

log = logging.getLogger(__name__)


class Agent(Runner[str]):
    """A model decides each step towards a goal (see the module docstring for how a run ends)."""

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
        super().__init__()
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

    def steps(self, goal: str, *, run_id: str | None = None) -> Iterator[Step]:
        meta = {"model": getattr(self.model, "name", type(self.model).__name__),
                "prompt_version": PROMPT_VERSION, "max_steps": self.max_steps}
        trajectory = self._begin(Trajectory.create(self.runs_dir, goal=goal, run_id=run_id, meta=meta,
                                                   secret_values=self.secrets.values))
        failures_in_a_row = 0
        loops = LoopDetector(self.safety.loop_limit) if self.safety.loop_limit else None
        deadline = time.monotonic() + self.max_seconds if self.max_seconds is not None else None
        with trajectory.running("max_steps") as end:  # max_steps unless a step ends the run earlier
            for index in range(1, self.max_steps + 1):
                if self.stopping:
                    end.outcome = "stopped"
                    break
                if deadline is not None and time.monotonic() >= deadline:  # checked between steps
                    end.outcome = "max_seconds"
                    break
                step, action, ending = self._step(index, goal, trajectory, loops)
                yield step
                if ending is not None:  # a loop, or an action no one approved
                    end.outcome = ending
                    break
                if step.ok and isinstance(action, Finish):
                    end.outcome, end.answer = "finished", action.answer
                    break
                if step.ok and isinstance(action, Fail):
                    end.outcome, end.answer = "failed", action.reason
                    break
                failures_in_a_row = 0 if step.ok else failures_in_a_row + 1
                if failures_in_a_row > self.max_retries:
                    end.outcome = "too_many_errors"
                    break
        log.info("run %s ended: %s after %d steps", trajectory.run_dir, end.outcome, len(trajectory))

    def _step(self, index: int, goal: str, trajectory: Trajectory,
              loops: LoopDetector | None) -> tuple[Step, BaseAction | None, Outcome | None]:
        """Observe, decide, check, act and record one step: (the step as written, the action
        the model chose, the outcome that ends the run here, if any)."""
        started = time.perf_counter()
        observation = self.executor.observe()
        observe_ms = (time.perf_counter() - started) * 1e3
        decision = self.policy.decide(goal, observation, trajectory.steps)
        attempt = self._attempt(decision.action, observation, trajectory, loops) if decision.action else None
        step = Step(
            index=index,
            observation=observation.metadata(),
            model_text=decision.text,
            action=decision.action.model_dump(mode="json") if decision.action is not None else None,
            parse_error=decision.parse_error,
            result=attempt.result if attempt is not None else None,
            grounded=(attempt.grounded or None) if attempt is not None else None,
            timings_ms=_timings(observe_ms, decision, attempt),
        )
        step = trajectory.append(step, observation.image)
        if attempt is not None and attempt.broken is not None:
            raise attempt.broken
        return step, decision.action, attempt.ending if attempt is not None else None

    def _attempt(self, action: BaseAction, observation: Observation, trajectory: Trajectory,
                 loops: LoopDetector | None) -> _Attempt:
        """Check the action, then run it unless refused."""
        if (literal := literal_secret(action)) is not None:
            trajectory.add_secret(literal)
        refusal, ending = self._refusal(action, observation, loops)
        started = time.perf_counter()
        if refusal:
            return _Attempt(ActRecord(ActionResult.failure(refusal), None, 0.0), 0.0, ending=ending)
        try:
            record = self._act(action, observation)
        except AgentError as exc:
            # The executor is gone (a second crash, no display, the fail-safe): the step that met
            # it is recorded, with the model's reply, before the run ends.
            record, broken = ActRecord(ActionResult.failure(exc.message), None, 0.0), exc
        else:
            broken = None
        return _Attempt(record, (time.perf_counter() - started) * 1e3, ending=ending, broken=broken)

    def _refusal(self, action: BaseAction, observation: Observation,
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

    def _act(self, action: BaseAction, observation: Observation) -> ActRecord:
        if isinstance(action, Finish | Fail):
            return ActRecord(ActionResult(ok=True), None, 0.0)
        if isinstance(action, ToolAction):
            return ActRecord(self.registry.call(action), None, 0.0)
        try:  # the filled copy goes to the executor only: the step records the placeholder
            action = self.secrets.fill_action(action)
        except UnknownSecret as exc:
            return ActRecord(ActionResult.failure(str(exc)), None, 0.0)
        started = time.perf_counter()
        try:
            return act(self.executor, action, observation, self.grounder)
        except GroundingError as exc:  # told to the model, which can describe it another way
            return ActRecord(ActionResult.failure(exc.message), {}, (time.perf_counter() - started) * 1e3)


@dataclass(frozen=True)
class _Attempt:
    """What came of trying to run one decided action."""

    record: ActRecord
    act_ms: float  # checking, grounding and acting
    ending: Outcome | None = None  # the run ends here: a loop, or an action no one approved
    broken: AgentError | None = None  # the executor is gone: raised once the step is on disk

    @property
    def result(self) -> ActionResult:
        return self.record.result

    @property
    def grounded(self) -> dict[str, list[int]] | None:
        return self.record.grounded


def _timings(observe_ms: float, decision: Decision, attempt: _Attempt | None) -> dict[str, float]:
    """Milliseconds per phase of a step; `ground` only when a target in words was looked for."""
    record = attempt.record if attempt is not None else None
    ground_ms = record.ground_ms if record is not None and record.grounded is not None else None
    act_ms = attempt.act_ms if attempt is not None else 0.0
    return {
        "observe": round(observe_ms, 2),
        "model": round(decision.model_ms, 2),
        "parse": round(decision.parse_ms, 2),
        **({"ground": round(ground_ms, 2)} if ground_ms is not None else {}),
        "act": round(act_ms - (ground_ms or 0.0), 2),
    }
