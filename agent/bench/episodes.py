"""One MiniWoB++ episode under each policy, timed stage by stage, as an `EpisodeRecord`.

    reference  tasks/miniwob/reference.py reads the page and yields pixel actions
    grounded   agent/bench/instructions.py turns the utterance into actions with targets in
               words, and the grounders (the cascade where it exists: DOM, then OCR) find them
    model      the Agent, with the utterance as its goal (a MiniWoB episode is a task like any other)

Every policy acts through the executor's actions only. An episode ends when the page says
so (`WOB_DONE_GLOBAL`), when the policy has nothing more to do, or at `max_steps`. Stages
(milliseconds, summed over the episode): reset (load, seed, start), observe, model, parse,
ground, act (with reading the reward after it), record (the trajectory on disk).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.bench.instructions import NoRule, instruction_actions
from agent.grounding import Grounder, act
from agent.safety import SafetyPolicy, Verdict
from tasks.checks import CheckResult
from tasks.miniwob import (
    Episode,
    MiniWoBEnv,
    PageReader,
    ReferenceFailed,
    Reward,
    TimeLimit,
    reference_actions,
)
from tools.actions import Back, BaseAction, Navigate, is_ungrounded
from tools.errors import AgentError

if TYPE_CHECKING:
    from agent.task_run import TaskResult
    from agent.trajectory import Trajectory
    from model.base import VisionLanguageModel
    from tools.executor import Observation

__all__ = ["POLICIES", "STAGES", "EpisodeRecord", "run_episode"]

POLICIES = ("reference", "grounded", "model")
STAGES = ("reset", "observe", "model", "parse", "ground", "act", "record")


@dataclass(frozen=True)
class EpisodeRecord:
    """How one episode went. Shaped like agent.task_run.TaskResult (task, success, outcome,
    steps, run_dir, checks, seconds, to_json), so reports and tables take either.

    outcome: "done" (the page ended the episode), "gave_up" (the policy had nothing more to
    do: `note` says why), "max_steps", "error" (the browser failed: `note`), or for the model
    policy the run's own outcome ("stopped" once the page ended the episode)."""

    task: str
    seed: int | str
    policy: str
    utterance: str
    success: bool
    reward: float
    raw_reward: float
    outcome: str
    steps: int
    seconds: float
    timings_ms: dict[str, float] = field(default_factory=dict)
    run_dir: Path | None = None
    checks: tuple[CheckResult, ...] = ()
    reason: str | None = None  # the page's reason for the reward, if it gave one
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task, "seed": self.seed, "policy": self.policy, "utterance": self.utterance,
            "success": self.success, "reward": self.reward, "raw_reward": self.raw_reward,
            "reason": self.reason,
            "outcome": self.outcome, "steps": self.steps, "seconds": round(self.seconds, 4),
            "timings_ms": {stage: round(ms, 2) for stage, ms in self.timings_ms.items()},
            "run_dir": str(self.run_dir) if self.run_dir is not None else None,
            "checks": [check.to_json() for check in self.checks], "note": self.note,
        }

    def as_task_result(self) -> TaskResult:
        """The same verdict as a TaskResult (a run directory is required: record the episode)."""
        from agent.task_run import TaskResult

        if self.run_dir is None:
            raise AgentError(f"{self.task} seed {self.seed} was not recorded: give runs_dir to keep it")
        return TaskResult(self.task, self.success, self.outcome, self.steps, self.run_dir, self.checks,
                          self.seconds)


class _Clock:
    """Milliseconds per stage, summed."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}
        self.t0 = time.perf_counter()

    def add(self, stage: str, since: float) -> float:
        now = time.perf_counter()
        self.ms[stage] = self.ms.get(stage, 0.0) + (now - since) * 1e3
        return now


def run_episode(env: MiniWoBEnv, task: str, seed: int | str, *, policy: str, time_limit: TimeLimit = "task",
                model: VisionLanguageModel | None = None, grounder: Grounder | None = None,
                runs_dir: Path | str | None = None, max_steps: int = 12,
                observe: bool = False) -> EpisodeRecord:
    """Play one episode of `task` with `policy`. A browser failure is an "error" record, not an
    exception (the next episode starts afresh); a bug still raises. `observe`: take a screenshot
    before every action even where nothing needs one (the reference policy reads the page; an
    agent's loop looks at the screen each step)."""
    clock = _Clock()
    start = time.perf_counter()
    try:
        episode = env.reset(task, seed, time_limit=time_limit)
    except AgentError as exc:
        return _record(task, seed, policy, "", None, "error", 0, clock, note=exc.message)
    clock.add("reset", start)
    try:
        if policy == "model":
            if model is None:
                raise AgentError("the model policy needs a model")
            return _model_episode(episode, policy, clock, model, grounder, runs_dir, max_steps)
        plan = _reference_plan(episode) if policy == "reference" else _grounded_plan(episode)
        return _scripted_episode(episode, policy, clock, plan, grounder, runs_dir, max_steps, observe)
    except AgentError as exc:
        return _record(task, seed, policy, episode.utterance, episode.reward(), "error", 0, clock,
                       note=exc.message)


def _reference_plan(episode: Episode) -> Iterator[BaseAction]:
    return reference_actions(episode.task, PageReader(episode.page, episode.geometry), episode.utterance)


def _grounded_plan(episode: Episode) -> Iterator[BaseAction]:
    yield from instruction_actions(episode.utterance)  # NoRule comes out of the first next()


def _scripted_episode(episode: Episode, policy: str, clock: _Clock, plan: Iterator[BaseAction],
                      grounder: Grounder | None, runs_dir: Path | str | None, max_steps: int,
                      observe: bool) -> EpisodeRecord:
    """Run the plan's actions one at a time until the page ends the episode."""
    from agent.trajectory import Step

    executor = episode.executor
    trajectory = _trajectory(runs_dir, episode, policy)
    outcome, note, steps = "max_steps", None, 0
    reward: Reward | None = None
    try:
        for index in range(1, max_steps + 1):
            mark = time.perf_counter()
            try:
                action = next(plan)  # the reference policy reads the page here: its grounding
            except StopIteration:
                outcome, note = "gave_up", "the policy had no more actions"
                break
            except (ReferenceFailed, NoRule) as exc:
                outcome, note = "gave_up", str(exc)
                break
            finally:
                mark = clock.add("ground" if policy == "reference" else "parse", mark)
            observation = None
            if observe or trajectory is not None or is_ungrounded(action):
                observation = executor.observe()
                mark = clock.add("observe", mark)
            if is_ungrounded(action):
                assert observation is not None and grounder is not None
                try:
                    done = act(executor, action, observation, grounder)
                except AgentError as exc:  # a GroundingError: nothing on the screen matches
                    outcome, note = "gave_up", exc.message
                    break
                result, grounded, grounding = done.result, done.grounded, done.grounding
                clock.ms["ground"] = clock.ms.get("ground", 0.0) + done.ground_ms
                mark = clock.add("act", mark)
                clock.ms["act"] -= done.ground_ms
            else:
                result, grounded, grounding = executor.execute(action), None, None
            steps = index
            reward = episode.reward()
            mark = clock.add("act", mark)
            if trajectory is not None and observation is not None:
                trajectory.append(Step(index=index, observation=observation.metadata(), model_text="",
                                       action=action.model_dump(mode="json"), result=result,
                                       grounded=grounded, grounding=grounding), observation.image)
                clock.add("record", mark)
            if reward.done:
                outcome = "done"
                break
    finally:
        if reward is None or not reward.done:  # the page may have ended it since (its time limit)
            reward = episode.reward()
        if trajectory is not None:
            _close(trajectory, outcome, reward, episode, note)
    return _record(episode.task, episode.seed, policy, episode.utterance, reward, outcome, steps, clock,
                   run_dir=trajectory.run_dir if trajectory is not None else None, note=note)


def _model_episode(episode: Episode, policy: str, clock: _Clock, model: VisionLanguageModel,
                   grounder: Grounder | None, runs_dir: Path | str | None, max_steps: int) -> EpisodeRecord:
    """The Agent on the episode, stopped once the page has given its reward."""
    from agent.loop import Agent

    agent = Agent(model, episode.executor, max_steps=max_steps, runs_dir=runs_dir or "runs",
                  grounder=grounder, safety=_StayOnPage())
    mark = time.perf_counter()
    for step in agent.steps(episode.utterance):
        for stage, ms in step.timings_ms.items():
            clock.ms[stage] = clock.ms.get(stage, 0.0) + ms
        wall = (time.perf_counter() - mark) * 1e3
        clock.ms["record"] = clock.ms.get("record", 0.0) + max(0.0, wall - sum(step.timings_ms.values()))
        mark = time.perf_counter()
        if episode.reward().done:
            agent.stop()  # the run ends after this step, as "stopped"
        mark = clock.add("act", mark)
    trajectory = agent.trajectory
    assert trajectory is not None
    reward = episode.reward()
    _note_reward(trajectory, reward, episode)
    return _record(episode.task, episode.seed, policy, episode.utterance, reward, trajectory.outcome,
                   len(trajectory.steps), clock, run_dir=trajectory.run_dir)


class _StayOnPage(SafetyPolicy):
    """The default policy, and no `navigate` or `back`: an episode is its one page (the model is
    told so, and the run goes on)."""

    def check(self, action: BaseAction, observation: Observation) -> Verdict:
        if isinstance(action, Navigate | Back):
            return Verdict("block", "this task is done on the page shown: act on it instead of leaving it")
        return super().check(action, observation)


def _trajectory(runs_dir: Path | str | None, episode: Episode, policy: str) -> Trajectory | None:
    if runs_dir is None:
        return None
    from agent.trajectory import Trajectory

    return Trajectory.create(runs_dir, goal=episode.utterance, meta={
        "kind": f"miniwob-{policy}", "task": episode.task, "seed": episode.seed})


def _close(trajectory: Trajectory, outcome: str, reward: Reward, episode: Episode, note: str | None) -> None:
    ends = {"done": "finished", "gave_up": "failed", "max_steps": "max_steps"}
    trajectory.end(ends.get(outcome, "error"), note)  # type: ignore[arg-type]
    _note_reward(trajectory, reward, episode)


def _note_reward(trajectory: Trajectory, reward: Reward, episode: Episode) -> None:
    trajectory.record(miniwob={"task": episode.task, "seed": episode.seed, "reward": reward.reward,
                               "raw_reward": reward.raw_reward, "reason": reward.reason},
                      checks=[reward.check().to_json()], success=reward.success)


def _record(task: str, seed: int | str, policy: str, utterance: str, reward: Reward | None, outcome: str,
            steps: int, clock: _Clock, *, run_dir: Path | None = None,
            note: str | None = None) -> EpisodeRecord:
    reward = reward if reward is not None else Reward(False, 0.0, 0.0)
    return EpisodeRecord(
        task=task, seed=seed, policy=policy, utterance=utterance, success=reward.success,
        reward=reward.reward, raw_reward=reward.raw_reward, outcome=outcome, steps=steps,
        seconds=time.perf_counter() - clock.t0,
        timings_ms=dict(clock.ms), run_dir=run_dir, checks=(reward.check(),), reason=reward.reason, note=note,
    )
