"""`internvl-agent bench miniwob`: MiniWoB++ tasks x seeds under one policy, as records, a JSON
file and a table.

    records = run_miniwob(["click-button", "enter-text"], seeds=5, policy="reference")
    print_table(records)

One Chromium serves the whole run (a second one for FlightWoB tasks). The model policy starts
every episode on a fresh load of its page; the reference and grounded policies reset the page
in place, as the miniwob package's Selenium environment does, unless `reload=True`
(tasks/miniwob/env.py says what that changes). Either way a seed gives the same utterance. `--policy model`
lifts the tasks' time limits (a model is slower than the people they were set for);
`time_limit="task"` (`--time-limit task`) keeps them, and a number of seconds sets one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from agent.bench.episodes import POLICIES, EpisodeRecord, run_episode
from agent.bench.table import episode_progress, print_table
from tasks.miniwob import REFERENCE_TASKS, MiniWoBEnv, TimeLimit, resolve_tasks
from tools.errors import TaskError

if TYPE_CHECKING:
    from agent.grounding import Grounder
    from model.base import VisionLanguageModel
    from tools.executor import Executor

__all__ = ["POLICIES", "EpisodeRecord", "miniwob_tasks", "parse_time_limit", "print_table", "run_miniwob",
           "write_json"]

log = logging.getLogger(__name__)

Policy = Literal["reference", "grounded", "model"]
DEFAULT_MAX_STEPS = {"reference": 30, "grounded": 12, "model": 12}


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
) -> list[EpisodeRecord]:
    """Run every task in `tasks` ("all", a comma-separated string, or names) on seeds
    `first_seed` .. `first_seed + seeds - 1` under `policy`; one record per episode, in order.

    TaskError (before any browser starts) for an unknown task or policy, a model policy with no
    model, or a task the reference policy does not solve; with "all", the reference policy runs
    the tasks it solves. `runs_dir` keeps a trajectory per episode (the model policy always
    keeps one, under runs/ by default). `grounder(executor)` overrides the grounders of the
    grounded and model policies (default: the cascade, DOM then OCR, where it is installed;
    else the DOM grounder for `grounded` and the model's own grounding for `model`). `reload`:
    a fresh page load for every episode (default: for the model policy only)."""
    names = miniwob_tasks(tasks, policy, seeds=seeds, with_model=model is not None)
    limit: TimeLimit = (None if policy == "model" else "task") if time_limit == "auto" else time_limit
    steps = max_steps if max_steps is not None else DEFAULT_MAX_STEPS[policy]
    if policy == "model" and runs_dir is None:
        runs_dir = Path("runs") / "miniwob"
    records: list[EpisodeRecord] = []
    grounders: dict[int, Grounder | None] = {}
    fresh = reload if reload is not None else policy == "model"
    with MiniWoBEnv(scale=scale, headless=headless, reload=fresh, settle=policy != "reference") as env, \
            episode_progress(len(names) * seeds, enabled=progress) as advance:
        for task in names:
            executor = env.executor(task)
            if id(executor) not in grounders:
                grounders[id(executor)] = _grounder(policy, executor, model, grounder)
            for seed in range(first_seed, first_seed + seeds):
                record = run_episode(env, task, seed, policy=policy, time_limit=limit, model=model,
                                     grounder=grounders[id(executor)], runs_dir=runs_dir, max_steps=steps)
                records.append(record)
                log.info("%s seed %d: %s (%s)", task, seed, "success" if record.success else "failure",
                         record.outcome)
                advance(record)
    if json_path is not None:
        write_json(records, json_path)
    return records


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
