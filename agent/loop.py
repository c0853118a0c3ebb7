"""The agent: observe -> decide -> (ground) -> act -> record, one step per model call.

`Agent.steps(goal)` yields each `Step` as soon as it is recorded (written to disk by the
trajectory's writer before the next step acts), so callers can watch a run live;
`Agent.run(goal)` drives it to the end and returns the `Trajectory`;
`Agent.resume(run_dir)` goes on with a run that a kill, a crash or a stop cut short.
The run ends at `finish` or `fail`; at `max_steps` (every model call counts, parsed or
not) or `max_seconds` (checked between steps); after more than `max_retries` unusable
replies or failed actions in a row; when the model repeats itself on an unchanged screen
(`looping`); at an action that needed a person's approval and did not get it (`blocked`);
or after `stop()` (`stopped`).

With no executor the same loop drives Python tools alone: an observation is what the tools
returned (text, no screenshot and no PNG), and a reply may hold several calls
(agent.tool_calls). `output_type` types finish's answer (agent.outputs): `trajectory.output`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from agent.as_tool import agent_tool, child_recorder
from agent.critic import Critic
from agent.grounding import ActRecord, Grounder, act
from agent.grounding.model import ModelGrounder
from agent.outputs import OutputSpec, finish_answer, recorded_answer
from agent.parse_many import MAX_CALLS_PER_STEP
from agent.policy import Decision, Policy
from agent.prompts import PROMPT_VERSION
from agent.redaction import redacting_logs
from agent.replay.hook import write_run_script
from agent.replay.targets import note_target
from agent.run_limits import Limits, ended_by, failures_at_end
from agent.runner import Runner, Start
from agent.safety import LoopDetector, SafetyPolicy
from agent.selection import BestOfN, RememberedGrounder
from agent.tool_calls import NOT_APPROVED, Batch, call_tool, call_tools
from agent.tool_images import ToolImages
from agent.trajectory import Outcome, Step, Trajectory
from agent.vault import Secrets, UnknownSecret, literal_secret
from model.base import GenerationConfig, VisionLanguageModel
from tools.actions import BaseAction, Fail, Finish
from tools.context import RunContext
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
        executor: Executor | None = None,
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
        tools: Iterable[Callable[..., Any]] = (),
        deps: Any = None,
        output_type: Any = None,
        max_calls_per_step: int = MAX_CALLS_PER_STEP,
        best_of: int = 1,
        critic: Critic | None = None,
    ) -> None:
        """`secrets` maps names to values the model can type as <secret>name</secret>
        without seeing them; no value is ever written to the run directory. `safety` checks
        each action before it runs (by default: the loop detector alone); `confirm(action,
        reason)` is asked about the actions it wants a person to approve. `grounder` finds
        targets described in words (default: the model itself, with InternVL's grounding prompt).
        `executor=None`: no screen, only `tools` (@tool functions, added to `registry`'s). `deps`:
        given to tools that take a `RunContext`. `output_type`: the type of finish's answer (a
        pydantic model, list[...], Literal[...], a union). `max_calls_per_step`: calls per reply.
        `best_of`: replies sampled per step, grouped and one picked (agent.selection): by votes, or by
        `critic` (agent.critic.VLMCritic) when given."""
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
        self.output = OutputSpec(output_type) if output_type is not None else None
        # a copy: the output type and these tools are this agent's, not the caller's registry's
        self.registry = (registry or ToolRegistry()).derive(finish=self.output and self.output.finish)
        for fn in tools:
            self.registry.add(fn)
        self.deps = deps
        self.secrets = Secrets(secrets)
        self._tool_images = ToolImages()  # what tools returned, saved beside each step and shown after
        self.policy = Policy(model, registry=self.registry, generation=generation, surface=surface,
                             secret_names=self.secrets.names, redactor=self.secrets.redactor(),
                             screen=executor is not None, max_calls=max_calls_per_step,
                             tool_image=lambda name: self._tool_images.load(self.trajectory, name))
        self.safety = safety if safety is not None else SafetyPolicy()
        self.confirm = confirm
        self.grounder = grounder if grounder is not None else ModelGrounder(model)
        if best_of > 1 or critic is not None:  # the candidates' targets are found once, then acted on
            self.grounder = RememberedGrounder(self.grounder)
            self.policy.best_of = BestOfN(best_of, critic=critic, grounder=self.grounder)
        self.runs_dir = Path(runs_dir)

    as_tool = agent_tool  # agent.as_tool(name, description): this agent as a tool of another (agent.as_tool)

    def steps(self, goal: str, *, run_id: str | None = None, start: Start | None = None,
              runs_dir: Path | None = None) -> Iterator[Step]:
        """`start`: where the executor was opened ({"url": ...}), kept in run.json for a resume.
        `runs_dir`: where this run's directory goes, if not under the agent's `runs_dir`."""
        limits = Limits(self.max_steps, self.max_seconds, self.max_retries)
        meta = {"kind": "agent", "model": getattr(self.model, "name", type(self.model).__name__),
                "prompt_version": PROMPT_VERSION, **limits.record(), "secret_names": list(self.secrets.names),
                "start": dict(start or {}), "allowed_domains": _domains(self.safety),
                "screen": self.executor is not None}
        # The goal is recorded as the model sees it, placeholders for values: what a resume shows it.
        shown_goal = self.policy.redactor.text(goal)
        trajectory = self._begin(Trajectory.create(runs_dir or self.runs_dir, goal=shown_goal, run_id=run_id,
                                                   meta=meta, secret_values=self.secrets.values))
        yield from self._loop(goal, trajectory, limits)

    def resume(self, run_dir: Path | str, *, start_url: str | None = None) -> Iterator[Step]:
        """Go on with the run in `run_dir` (killed, crashed or stopped) from its next step.

        The run keeps what run.json recorded: its goal and its limits (max_steps counts the
        steps done; max_seconds, the time spent), not this agent's. Give this agent the same
        secrets (checked by name). The model is shown the earlier steps as its history, and the
        executor (a browser) is first taken to the page of the last step (see Runner._reopen,
        and there `start_url`, for a start that moved).
        A run whose last step on disk ended it (finish, fail, too many errors) just ends. Not
        carried over: the loop detector's count, and text typed with secret=True before the
        kill (it is redacted on disk, so the resumed run cannot redact it again)."""
        def check(record: dict[str, Any]) -> None:
            Limits.of(record)
            if not _same_domains(record.get("allowed_domains"), _domains(self.safety)):
                domains = record.get("allowed_domains")
                raise AgentError(f"{run_dir} ran on the allowed domains {domains}: give this agent "
                                 f"SafetyPolicy(allowed_domains={domains!r}) to resume it")

        trajectory = self._resumed(run_dir, "agent", self.secrets, check)
        limits = Limits.of(trajectory.meta)
        allows = self.safety.allowlist.allows if self.safety.allowlist is not None else None
        executor = self.executor
        yield from self._loop(trajectory.goal, trajectory, limits, reopen=None if executor is None else
                              lambda: self._reopen(executor, trajectory, allows, start_url))

    def _loop(self, goal: str, trajectory: Trajectory, limits: Limits,
              reopen: Callable[[], object] | None = None) -> Iterator[Step]:
        """The steps from the one after those in `trajectory` (none, unless it is resumed, when
        `reopen` first takes the executor back to where the run was)."""
        done = trajectory.steps
        failures_in_a_row = failures_at_end(done)
        loops = LoopDetector(self.safety.loop_limit) if self.safety.loop_limit else None
        deadline = (time.monotonic() + limits.max_seconds - trajectory.elapsed_s
                    if limits.max_seconds is not None else None)
        # max_steps unless a step ends the run earlier; no log record of the run holds a secret
        with redacting_logs(trajectory.redactor), trajectory.running("max_steps") as end:
            if (ended := ended_by(done, limits)) is not None:  # a resume after the run's last step
                end.outcome, end.answer = ended
                if ended[0] == "finished" and self.output is not None:  # a typed answer: validated again
                    end.answer = recorded_answer(self.output, done[-1], trajectory)
                return
            if reopen is not None and len(done) < limits.max_steps:
                reopen()
            for index in range(len(done) + 1, limits.max_steps + 1):
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
                    end.outcome, end.answer = "finished", finish_answer(self.output, action, trajectory)
                    break
                if step.ok and isinstance(action, Fail):
                    end.outcome, end.answer = "failed", action.reason
                    break
                failures_in_a_row = 0 if step.ok else failures_in_a_row + 1
                if failures_in_a_row > limits.max_retries:
                    end.outcome = "too_many_errors"
                    break
        log.info("run %s ended: %s after %d steps", trajectory.run_dir, end.outcome, len(trajectory))
        if end.outcome == "finished" and self.executor is not None:  # its replay without the model
            write_run_script(trajectory)

    def _step(self, index: int, goal: str, trajectory: Trajectory,
              loops: LoopDetector | None) -> tuple[Step, BaseAction | None, Outcome | None]:
        """Observe, decide, check, act and record one step: (the step as written, the action
        the model chose, the outcome that ends the run here, if any)."""
        started = time.perf_counter()
        observation = self.executor.observe() if self.executor is not None else None
        observe_ms = (time.perf_counter() - started) * 1e3
        decision = self.policy.decide(goal, observation, trajectory.steps)
        trajectory.flush()  # the last step is on disk before this one acts: no kill loses an action
        self._context = RunContext(self.deps, trajectory.run_dir.name, index, trajectory.run_dir,
                                   child_recorder(trajectory, index), stopping=lambda: self.stopping)
        calls, noted = None, note_target(self.executor, decision.action, observation)  # for compile
        if len(decision.actions) > 1:  # several calls: tools first, then the action that ends them
            calls, attempt, action, results = self._batch(decision.actions, observation, trajectory, loops)
        else:
            action = decision.action
            attempt = self._attempt(action, observation, trajectory, loops) if action is not None else None
            results = (attempt.result,) if attempt is not None else ()
        step = Step(
            index=index,
            observation=observation.metadata() if observation is not None else {},
            model_text=decision.text,
            action=action.model_dump(mode="json") if action is not None else None,
            parse_error=decision.parse_error,
            result=attempt.result if attempt is not None else None,
            grounded=(attempt.grounded or None) if attempt is not None else None,
            grounding=(attempt.record.grounding or None) if attempt is not None else None,
            timings_ms=_timings(observe_ms, decision, attempt),
            calls=calls,
            tool_images=self._tool_images.save(trajectory.run_dir, index, results, calls),  # on disk now
            candidates=decision.candidates,
            replay=noted,
        )
        step = trajectory.append(step, observation.image if observation is not None else None)
        if attempt is not None and attempt.broken is not None:
            raise attempt.broken
        return step, action, attempt.ending if attempt is not None else None

    def _batch(self, actions: Sequence[BaseAction], observation: Observation | None, trajectory: Trajectory,
               loops: LoopDetector | None
               ) -> tuple[list[dict[str, Any]], _Attempt, BaseAction | None, tuple[ActionResult, ...]]:
        """A reply of several calls (agent.tool_calls): (each call and its result, the step's
        attempt, the action it records: the one that ended the batch, or the last tool call;
        each tool call's result). A call no one approved ends the run, as it does alone."""
        started, batch = time.perf_counter(), Batch.of(actions)
        done = call_tools(self.registry, batch, self._context, self.secrets,
                          lambda action: self._refusal(action, observation, None))
        calls, attempt = done.calls, _Attempt(ActRecord(done.result, None, 0.0), 0.0, done.ending)
        if batch.last is not None and done.ending is not None:
            attempt = _Attempt(ActRecord(ActionResult.failure(NOT_APPROVED), None, 0.0), 0.0, attempt.ending)
        elif batch.last is not None and done.ok:
            attempt = self._attempt(batch.last, observation, trajectory, loops)
        elif batch.last is not None:
            attempt = _Attempt(ActRecord(ActionResult.failure(f"{done.result.error}; so {batch.last.name} "
                                                              "was not run"), None, 0.0), 0.0)
        if batch.last is not None:  # recorded after the tools, before the calls it cut off
            calls.insert(len(batch.tools), {"action": batch.last.model_dump(mode="json"),
                                            "result": attempt.result.model_dump(mode="json")})
            if done.result.output and attempt.result.ok:
                attempt = _Attempt(ActRecord(attempt.result.model_copy(update={"output": done.result.output}),
                                             attempt.record.found, attempt.record.ground_ms),
                                   attempt.act_ms, attempt.ending, attempt.broken)
        act_ms = (time.perf_counter() - started) * 1e3
        attempt = _Attempt(attempt.record, act_ms, attempt.ending, attempt.broken)
        return calls, attempt, batch.last or batch.tools[-1], done.results

    def _attempt(self, action: BaseAction, observation: Observation | None, trajectory: Trajectory,
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

    def _refusal(self, action: BaseAction, observation: Observation | None,
                 loops: LoopDetector | None) -> tuple[str | None, Outcome | None]:
        """(why the action must not run, or None; the outcome that ends the run, or None)."""
        if loops is not None and observation is not None and (loop := loops.see(action, observation)):
            return f"not run: {loop}", "looping"
        verdict = self.safety.check(action, observation if observation is not None else _NO_SCREEN)
        if verdict.kind == "block":
            return verdict.reason, None
        if verdict.kind == "confirm":
            if self.confirm is None:
                return f"not run: it needs approval ({verdict.reason}) and no one is asked", "blocked"
            if not self.confirm(action, verdict.reason):
                return f"not run: the person asked refused it ({verdict.reason})", "blocked"
        return None, None

    def _act(self, action: BaseAction, observation: Observation | None) -> ActRecord:
        if isinstance(action, Finish | Fail):
            return ActRecord(ActionResult(ok=True), None, 0.0)
        if isinstance(action, ToolAction):  # the filled copy goes to the tool only
            return ActRecord(call_tool(self.registry, action, self.secrets, self._context), None, 0.0)
        if self.executor is None or observation is None:
            return ActRecord(ActionResult.failure(f"there is no screen to {action.name} on: call a tool, "
                                                  "finish or fail"), None, 0.0)
        try:  # the filled copy goes to the executor only: the step records the placeholder
            action = self.secrets.fill_action(action)
        except UnknownSecret as exc:
            return ActRecord(ActionResult.failure(str(exc)), None, 0.0)
        started = time.perf_counter()
        try:
            return act(self.executor, action, observation, self.grounder)
        except GroundingError as exc:  # told to the model, which can describe it another way
            return ActRecord(ActionResult.failure(exc.message), {}, (time.perf_counter() - started) * 1e3)


# What the safety policy sees of an agent with no screen: no page, so no address to check.
_NO_SCREEN = cast(Observation, SimpleNamespace(url=None, title=None, window=None, image=None))


def _domains(safety: SafetyPolicy) -> list[str] | None:
    return list(safety.allowlist.domains) if safety.allowlist is not None else None


def _same_domains(recorded: object, given: list[str] | None) -> bool:
    """Whether a resume keeps the run's allowlist: the same domains, or none on both sides."""
    if recorded is None or given is None:
        return recorded is None and given is None
    return isinstance(recorded, list) and sorted(map(str, recorded)) == sorted(given)


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
