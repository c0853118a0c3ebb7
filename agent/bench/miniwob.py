"""`internvl-agent bench miniwob`: MiniWoB++ tasks x seeds under one policy, as records, a JSON
file and a table.

    records = run_miniwob(["click-button", "enter-text"], seeds=5, policy="reference")
    records = run_miniwob("all", seeds=5, workers=2)           # two processes, a Chromium each
    records = run_miniwob("all", seeds=5, workers=8, ray="auto")
    print_table(records)

Each worker (agent/parallel.py) has one Chromium for its episodes (a second one for FlightWoB
tasks); one worker runs in this process. The model policy starts every episode on a fresh load
of its page; the reference and grounded policies reset the page in place, as the miniwob
package's Selenium environment does, unless `reload=True` (tasks/miniwob/env.py says what that
changes). Either way a seed gives the same utterance, whichever worker plays it, and the
records come back in the same order. `--policy model` lifts the tasks' time limits (a model is
slower than the people they were set for); `time_limit="task"` (`--time-limit task`) keeps
them, and a number of seconds sets one. With more than one worker, the model must be served
once (an OpenAICompatibleModel): no worker loads one of its own.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from agent.bench.episodes import POLICIES, EpisodeRecord, run_episode
from agent.bench.table import episode_progress, print_table
from agent.parallel import Batch, run_jobs
from tasks.miniwob import REFERENCE_TASKS, MiniWoBEnv, TimeLimit, resolve_tasks
from tools.errors import TaskError

if TYPE_CHECKING:
    from agent.grounding import Grounder
    from model.base import VisionLanguageModel
    from tools.executor import Executor

__all__ = ["POLICIES", "EpisodeRecord", "MiniWoBWorker", "miniwob_batch", "miniwob_tasks", "parse_time_limit",
           "print_table", "run_miniwob", "write_json"]

log = logging.getLogger(__name__)

Policy = Literal["reference", "grounded", "model"]
DEFAULT_MAX_STEPS = {"reference": 30, "grounded": 12, "model": 12}
LOCAL_MODEL_IN_WORKERS = ("{workers} workers would each load the model: serve it once (internvl-agent serve, "
                          "vLLM or LMDeploy) and give its address with --base-url")

Job = tuple[str, int]  # (task, seed)


def run_miniwob(
    tasks: str | Iterable[str] = "all",
    seeds: int = 1,
    policy: Policy | str = "reference",
    model: VisionLanguageModel | None = None,
    json_path: Path | str | None = None,
    progress: bool = True,
    *,
    time_limit: TimeLimit | Literal["auto"] = "auto",
    first_seed: int = 0,
    max_steps: int | None = None,
    runs_dir: Path | str | None = None,
    scale: float = 3,
    headless: bool = True,
    reload: bool | None = None,
    grounder: Callable[[Executor], Grounder] | None = None,
    workers: int = 1,
    ray: str | None = None,
) -> list[EpisodeRecord]:
    """Run every task in `tasks` ("all", a comma-separated string, or names) on seeds
    `first_seed` .. `first_seed + seeds - 1` under `policy`; one record per episode, in order.

    TaskError (before any browser starts) for an unknown task or policy, a model policy with no
    model, or a task the reference policy does not solve; with "all", the reference policy runs
    the tasks it solves. `runs_dir` keeps a trajectory per episode (the model policy always
    keeps one, under runs/ by default). `grounder(executor)` overrides the grounders of the
    grounded and model policies (default: the cascade, DOM then OCR, where it is installed;
    else the DOM grounder for `grounded` and the model's own grounding for `model`); with local
    workers it must pickle (a module-level function). `reload`: a fresh page load for every
    episode (default: for the model policy only). `workers`, `ray`: as agent.parallel.run_jobs.
    A Ctrl-C writes what finished to `json_path`, then goes on up as KeyboardInterrupt."""
    batch = miniwob_batch(tasks, seeds, policy, model, progress, time_limit=time_limit,
                          first_seed=first_seed, max_steps=max_steps, runs_dir=runs_dir, scale=scale,
                          headless=headless, reload=reload, grounder=grounder, workers=workers, ray=ray)
    if json_path is not None:
        write_json(batch.results, json_path)
    if batch.interrupted:
        raise KeyboardInterrupt
    return batch.results


def miniwob_batch(tasks: str | Iterable[str], seeds: int = 1, policy: Policy | str = "reference",
                  model: VisionLanguageModel | None = None, progress: bool = True, *,
                  time_limit: TimeLimit | Literal["auto"] = "auto", first_seed: int = 0,
                  max_steps: int | None = None, runs_dir: Path | str | None = None, scale: float = 3,
                  headless: bool = True, reload: bool | None = None,
                  grounder: Callable[[Executor], Grounder] | None = None, workers: int = 1,
                  ray: str | None = None) -> Batch[EpisodeRecord]:
    """run_miniwob's episodes as a Batch: what finished, and whether a Ctrl-C cut the run short."""
    names = miniwob_tasks(tasks, policy, seeds=seeds, with_model=model is not None)
    limit: TimeLimit = (None if policy == "model" else "task") if time_limit == "auto" else time_limit
    if policy == "model" and runs_dir is None:
        runs_dir = Path("runs") / "miniwob"
    worker = MiniWoBWorker(
        policy, limit, max_steps if max_steps is not None else DEFAULT_MAX_STEPS[policy],
        runs_dir=Path(runs_dir).resolve() if runs_dir is not None else None, scale=scale, headless=headless,
        reload=reload if reload is not None else policy == "model", grounder=grounder)
    if model is not None:
        worker = _with_model(worker, model, workers, ray)
    jobs = [(task, seed) for task in names for seed in range(first_seed, first_seed + seeds)]
    with episode_progress(len(jobs), enabled=progress) as advance:
        return run_jobs(worker, jobs, workers=workers, ray=ray, on_result=advance)


def _with_model(worker: MiniWoBWorker, model: VisionLanguageModel, workers: int,
                ray: str | None) -> MiniWoBWorker:
    """The model in this process for one worker; else the address of the server they share."""
    if workers == 1 and ray is None:
        worker.model = model
        return worker
    from model.remote import OpenAICompatibleModel

    if not isinstance(model, OpenAICompatibleModel):
        raise TaskError(LOCAL_MODEL_IN_WORKERS.format(workers=workers))
    worker.endpoint = (model.base_url, model.name)
    return worker


@dataclass
class MiniWoBWorker:
    """One worker's episodes (jobs: (task, seed)) in its own MiniWoBEnv: one Chromium, reused.
    A picklable recipe until `open()`; agent.parallel runs it here, in a process or in Ray."""

    policy: str
    time_limit: TimeLimit
    max_steps: int
    runs_dir: Path | None = None
    scale: float = 3
    headless: bool = True
    reload: bool = False
    grounder: Callable[[Executor], Grounder] | None = None
    model: VisionLanguageModel | None = None  # in this process only
    endpoint: tuple[str, str] | None = None  # (base_url, model name) of the server the workers share
    cpus: float = 1.0  # a Chromium and the page's scripts
    _env: MiniWoBEnv | None = field(default=None, init=False, repr=False)
    _grounders: dict[int, Any] = field(default_factory=dict, init=False, repr=False)

    def open(self) -> None:
        if self.endpoint is not None:
            from model.remote import OpenAICompatibleModel

            self.model = OpenAICompatibleModel(*self.endpoint)
        self._env = MiniWoBEnv(scale=self.scale, headless=self.headless, reload=self.reload,
                               settle=self.policy != "reference")

    def run(self, job: Job) -> EpisodeRecord:
        task, seed = job
        assert self._env is not None, "open() first"
        executor = self._env.executor(task)
        if id(executor) not in self._grounders:
            self._grounders[id(executor)] = _grounder(self.policy, executor, self.model, self.grounder)
        record = run_episode(self._env, task, seed, policy=self.policy, time_limit=self.time_limit,
                             model=self.model, grounder=self._grounders[id(executor)], runs_dir=self.runs_dir,
                             max_steps=self.max_steps)
        log.info("%s seed %d: %s (%s)", task, seed, "success" if record.success else "failure",
                 record.outcome)
        return record

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None
        self._grounders.clear()

    def failed(self, job: Job, why: str) -> EpisodeRecord:
        task, seed = job
        return EpisodeRecord(task=task, seed=seed, policy=self.policy, utterance="", success=False,
                             reward=0.0, raw_reward=0.0, outcome="error", steps=0, seconds=0.0, note=why)

    def label(self, job: Job) -> str:
        return f"{job[0]} seed {job[1]}"


def miniwob_tasks(tasks: str | Iterable[str], policy: str, *, seeds: int = 1,
                  with_model: bool = False) -> list[str]:
    """The tasks a run would play, checked as run_miniwob checks them (TaskError for an unknown
    task or policy, a model policy with no model, or a task the reference policy does not
    solve). Nothing starts: the CLI calls it before it loads a model."""
    if policy not in POLICIES:
        raise TaskError(f"unknown policy {policy!r}: give one of {', '.join(POLICIES)}")
    if seeds < 1:
        raise TaskError(f"seeds must be at least 1, not {seeds}")
    if policy == "model" and not with_model:
        raise TaskError("the model policy needs a model: give --model (a name, a checkpoint or 'tiny')")
    every = tasks == "all" or (not isinstance(tasks, str) and list(tasks) == ["all"])
    if policy == "reference" and every:
        return list(REFERENCE_TASKS)
    names = resolve_tasks(tasks)
    if policy == "reference" and (unsolved := [name for name in names if name not in REFERENCE_TASKS]):
        raise TaskError(f"the reference policy does not solve {', '.join(unsolved)}: it solves "
                        f"{', '.join(REFERENCE_TASKS)} (or use --policy grounded or model)")
    return names


def _grounder(policy: str, executor: Executor, model: VisionLanguageModel | None,
              factory: Callable[[Executor], Grounder] | None) -> Grounder | None:
    """The grounders the policy uses on `executor` (None: the Agent's default, the model's own)."""
    if policy == "reference":
        return None
    if factory is not None:
        return factory(executor)
    try:
        from agent.grounding.cascade import auto_grounder  # type: ignore[import-not-found,unused-ignore]
    except ImportError:  # not built yet: the page's markup alone
        if policy == "model":
            return None
        from agent.grounding.dom import DOMGrounder

        return DOMGrounder(executor)  # type: ignore[arg-type]
    found: Grounder | None = auto_grounder(executor, model=model)
    return found


def write_json(records: list[EpisodeRecord], path: Path | str) -> Path:
    """Every episode to `path` as {"episodes": [...], "summary": {...}}."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    done = [r for r in records]
    summary = {
        "episodes": len(done),
        "success_rate": sum(r.success for r in done) / len(done) if done else 0.0,
        "mean_reward": sum(r.reward for r in done) / len(done) if done else 0.0,
        "policies": sorted({r.policy for r in done}),
    }
    path.write_text(json.dumps({"summary": summary, "episodes": [r.to_json() for r in done]}, indent=1)
                    + "\n")
    return path


def parse_time_limit(text: str | None) -> TimeLimit | Literal["auto"]:
    """The CLI's --time-limit: absent -> the policy's default; "task" -> the task's own; "none"
    -> no limit; a number -> that many seconds. TaskError otherwise."""
    if text is None or text.strip().lower() == "auto":
        return "auto"
    word = text.strip().lower()
    if word == "task":
        return "task"
    if word in ("none", "off", "0"):
        return None
    try:
        seconds = float(word)
    except ValueError:
        raise TaskError(f"--time-limit {text!r}: give seconds (such as 10), 'task' or 'none'") from None
    if seconds <= 0:
        raise TaskError(f"--time-limit {text!r}: give a positive number of seconds, 'task' or 'none'")
    return seconds
