"""`--resume RUN_DIR` of `run` and `script`: go on with a run that was killed, crashed or stopped.

What the run needs comes from its run.json: the goal, the limits, the allowed domains, the
grounder, and where it started: a URL, or a task file, which is started again (a folder
served on a new port, a program launched again) and then checked as it would have been.
What never reaches disk comes from the command line again: the model and the secrets (by
the names the run had). The run goes on from its next step, in the same run directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import typer

from agent.cli.common import check_url, follow, load_model, print_task_result
from tools.errors import AgentError

if TYPE_CHECKING:
    from rich.console import Console

    from agent.runner import Kind
    from model.base import VisionLanguageModel
    from tasks.spec import Task

__all__ = ["resume_run", "resume_script"]

_OTHER_COMMAND = {"agent": "run", "script": "script"}


def resume_run(run_dir: Path, *, model: str, base_url: str | None, headed: bool,
               secrets: dict[str, str]) -> None:
    """Go on with a model's run (`internvl-agent run`, or `run --task`) from its next step."""
    from rich.console import Console

    record = _record(run_dir, "agent", secrets)
    start = record.get("start") or {}
    console = Console(stderr=True)
    if start.get("task"):
        task = _task(start, record, "agent")
        _resume_task(task, run_dir, grounder="model", vlm=_load(model, base_url, console), secrets=secrets,
                     headed=headed)
        return
    from agent.loop import Agent
    from agent.safety import SafetyPolicy
    from agent.trajectory import Trajectory
    from tools.browser import BrowserExecutor

    steps = Trajectory.read_steps(run_dir)
    url = start.get("url") or (steps[-1].observation.get("url") if steps else None)
    if not url:
        raise AgentError(f"{run_dir} records no page to reopen (a desktop run, or one from before --resume "
                         "existed): it cannot be resumed from the command line")
    check_url(url)
    domains = record.get("allowed_domains")
    vlm = _load(model, base_url, console)
    # Opened where the run started (a file:// start lets it open file:// pages); the resume then
    # takes it to the page of the last step.
    with BrowserExecutor(start_url=url, headless=not headed, allowed_domains=domains) as executor:
        agent = Agent(vlm, executor, max_steps=int(record.get("max_steps") or 1), runs_dir=run_dir.parent,
                      secrets=secrets, safety=SafetyPolicy(allowed_domains=domains))
        follow(agent, agent.resume(run_dir), console)


def resume_script(run_dir: Path, *, model: str, base_url: str | None, headed: bool, secrets: dict[str, str],
                  grounder: str | None = None) -> None:
    """Go on with a task file's steps (`internvl-agent script`) from the step after the last one
    done, then check the task's success. `grounder`: None for the one the run used."""
    from rich.console import Console

    record = _record(run_dir, "script", secrets)
    task = _task(record.get("start") or {}, record, "script")
    if grounder is None:
        grounder = "dom" if record.get("grounder") == "DOMGrounder" else "model"
    vlm = _load(model, base_url, Console(stderr=True)) if grounder == "model" else None
    _resume_task(task, run_dir, grounder=grounder, vlm=vlm, secrets=secrets, headed=headed)


def _record(run_dir: Path, kind: Kind, secrets: dict[str, str]) -> dict[str, Any]:
    """run.json, once it is known to be a run of `kind` that can go on with these secrets: checked
    before a model loads (the runner checks it again)."""
    from agent.trajectory import RESUMABLE, Trajectory

    record = Trajectory.read_run(run_dir)
    if record.get("kind") != kind:
        other = _OTHER_COMMAND.get(str(record.get("kind")))
        hint = f": resume it with `internvl-agent {other} --resume {run_dir}`" if other else ""
        raise AgentError(f"{run_dir} is not a run of `internvl-agent {_OTHER_COMMAND[kind]}`{hint}")
    if record.get("outcome") not in RESUMABLE:
        raise AgentError(f"{run_dir} ended as {record.get('outcome')!r}: there is nothing to resume")
    names = sorted(record.get("secret_names") or [])
    if names != sorted(secrets):
        wanted = " ".join(f"--secret {name}" for name in names) or "no --secret"
        raise AgentError(f"{run_dir} ran with {wanted}: give the same again")
    return record


def _task(start: dict[str, str], record: dict[str, Any], kind: Kind) -> Task:
    """The task file the run came from, started as the run was: a folder it serves is served
    again (on a new port); a URL the run started at (the file's, or --url) is opened again."""
    from agent.script import Script
    from tasks.spec import Task

    path = start.get("task")
    if not path:
        raise AgentError("the run records no task file to start again: it cannot be resumed from the "
                         "command line")
    task = (Script if kind == "script" else Task).load(path)
    if kind == "agent":  # what the run was given, whatever the file says now
        domains = record.get("allowed_domains")
        task = task.replace(steps=None, goal=record.get("goal") or task.goal,
                            max_steps=int(record.get("max_steps") or task.max_steps),
                            allowed_domains=tuple(domains) if domains is not None else None)
    url = start.get("url")
    served = task.start is not None and task.start.serve is not None
    if url and not (served and urlsplit(url).hostname == "127.0.0.1"):
        task = task.starting_at(url)
    return task


def _resume_task(task: Task, run_dir: Path, *, grounder: str, vlm: VisionLanguageModel | None,
                 secrets: dict[str, str], headed: bool) -> None:
    """Start `task` again, go on with its run printing each step, then check its success: exit 1
    unless it succeeded, as for a new run (`run_task_live`)."""
    from rich.console import Console

    from agent.task_run import TaskRun

    console = Console(stderr=True)
    with TaskRun(task, grounder=grounder, model=vlm, runs_dir=run_dir.parent, secrets=secrets,
                 headless=not headed) as run:
        runner: Any = run.runner
        # Where the task starts now: a folder served again has a new port, and the run's pages on
        # the old one are opened on it (Runner._reopen).
        now = runner.executor.observe().url if task.browser else None
        steps = runner.resume(task, run_dir, start_url=now) if task.steps is not None else runner.resume(
            run_dir, start_url=now)
        follow(runner, steps, console)
        result = run.result()
    print_task_result(result, console)
    if not result.success:
        raise typer.Exit(1)


def _load(model: str, base_url: str | None, console: Console) -> VisionLanguageModel:
    with console.status(f"loading model {model}"):
        return load_model(model, base_url)
