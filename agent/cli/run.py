"""`internvl-agent run`: a model works towards a goal in a browser; `demo`: a bundled task, checked."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agent.cli.app import app
from agent.cli.common import (
    MODEL_HELP,
    BaseUrl,
    RunsDir,
    check_url,
    load_model,
    run_in_browser,
    run_task_live,
    secrets_from_environment,
)
from model.catalog import CHECKPOINTS, hub_id
from tasks import EXAMPLES
from tools.errors import AgentError, ModelUnavailable, TaskError

if TYPE_CHECKING:
    from rich.console import Console

    from agent.task_run import TaskResult
    from model.base import VisionLanguageModel
    from tasks.spec import Task

__all__ = ["DEMO_GOAL", "DEMO_PAGE", "DEMO_TASK", "demo", "run"]

# What `demo` runs: a small web app (tasks/examples/app/) and a task on it, with success checks.
DEMO_TASK = EXAMPLES / "demo.yaml"
# A one-button page and a goal for it: the smallest episode, which tests of `run` use.
DEMO_PAGE = EXAMPLES / "demo.html"
DEMO_GOAL = "Click the OK button."


@app.command()
def run(
    goal: Annotated[str | None, typer.Argument(
        help="What the agent should do, in words (with --task: instead of the task's goal).")] = None,
    url: Annotated[str | None, typer.Option(
        help="The page to start on (http://, https:// or file://); with --task, instead of its start.",
    )] = None,
    task: Annotated[Path | None, typer.Option(
        help="A task file (tasks/spec.py): its goal, start, allowed domains, max_steps and success checks. "
        "Exits with 1 unless the run finishes and the checks pass.")] = None,
    model: Annotated[str, typer.Option(help=MODEL_HELP)] = "internvl3-2b",
    max_steps: Annotated[int | None, typer.Option(
        min=1, help="Every model call counts as a step. Default: 15, or the task's max_steps.")] = None,
    headed: Annotated[bool, typer.Option(help="Show the browser window.")] = False,
    runs_dir: RunsDir = Path("runs"),
    base_url: BaseUrl = None,
    secret: Annotated[list[str] | None, typer.Option(
        help="The name of an environment variable holding a secret (a password, say): the model may "
        "type it as <secret>NAME</secret> without seeing it, and it is never written to disk. Repeatable.",
    )] = None,
    allow_domain: Annotated[list[str] | None, typer.Option(
        help="Keep the run on this domain and its subdomains (example.org); repeatable. Default: any site "
        "(or the task's allowed_domains).",
    )] = None,
    strict: Annotated[bool, typer.Option(
        help="Hold every request of the page to --allow-domain (images, scripts, fetch, iframes, "
        "websockets), not only where its tabs go.")] = False,
    resume: Annotated[Path | None, typer.Option(
        help="Go on with the run in this directory (killed, crashed or stopped) from its next step; its "
        "goal, start and limits come from its run.json. Give --model and the same --secret names again.",
    )] = None,
    best_of: Annotated[int, typer.Option(
        "--best-of", min=1, max=16, help="Sample N replies at each step in one batch and act on the one "
        "most of them agree on (grouped by where they click and what they type); 1 (default): one reply.",
    )] = 1,
    as_json: Annotated[bool, typer.Option("--json", help=(
        "With --task: print the result as one JSON object on the last line of stdout (task, success, "
        "outcome, steps, run_dir, checks)."))] = False,
) -> None:
    """Run the agent on GOAL in a browser that starts at URL, or on a task file's goal (--task)."""
    secrets = secrets_from_environment(secret or [])
    if resume is not None:
        if goal is not None or url is not None or task is not None or best_of != 1:
            raise AgentError("--resume goes on with a recorded run: give no GOAL, --url, --task or --best-of "
                             "with it")
        from agent.cli.resume import resume_run

        resume_run(resume, model=model, base_url=base_url, headed=headed, secrets=secrets)
        return
    if task is None:
        if goal is None or url is None:
            raise AgentError("give GOAL (what the agent should do, in words) and --url (where it starts), "
                             "or --task FILE")
        if as_json:
            raise AgentError("--json reports a task's result and checks: give --task FILE")
        run_in_browser(goal, url=url, model_name=model, max_steps=max_steps or 15, headed=headed,
                       runs_dir=runs_dir, base_url=base_url, secrets=secrets, allowed_domains=allow_domain,
                       strict=strict, best_of=best_of)
        return
    from rich.console import Console

    loaded = _goal_task(task, goal=goal, url=url, max_steps=max_steps, allow_domain=allow_domain,
                        strict=strict)
    with Console(stderr=True).status(f"loading model {model}"):
        vlm = load_model(model, base_url)
    run_task_live(loaded, grounder="model", model=vlm, runs_dir=runs_dir, secrets=secrets, headed=headed,
                  as_json=as_json, best_of=best_of)


def _goal_task(path: Path, *, goal: str | None, url: str | None, max_steps: int | None,
               allow_domain: list[str] | None, strict: bool) -> Task:
    """The task file at `path` for a model's run: its steps left out, the options applied."""
    from tasks.spec import Task

    loaded = Task.load(path)
    if goal is None and loaded.goal is None:
        raise TaskError(f"{path} has no goal: give GOAL, add `goal:` to it, or run its steps with "
                        f"`internvl-agent script {path}`")
    changes: dict[str, Any] = {"steps": None}
    if goal is not None:
        changes["goal"] = goal
    if max_steps is not None:
        changes["max_steps"] = max_steps
    if allow_domain:
        changes["allowed_domains"] = tuple(allow_domain)
    if strict:
        changes["strict"] = True
    if url is not None:
        check_url(url)
    loaded = loaded.replace(**changes)
    return loaded.starting_at(url) if url is not None else loaded


@app.command()
def demo(
    model: Annotated[str | None, typer.Option(
        help="Give the task's goal to this model (internvl3-2b, a checkpoint folder, or 'tiny', whose random "
        "weights fail) instead of running its written steps.")] = None,
    headed: Annotated[bool, typer.Option(help="Show the browser window.")] = False,
    runs_dir: RunsDir = Path("runs"),
) -> None:
    """Sign in, find an item and change a setting in a bundled web app, then check it was done.

    Without --model, the task's written steps run with the DOM grounder: no GPU, no weights.
    Exits with 0 when every success check passes, 1 when one fails."""
    from rich.console import Console
    from rich.markup import escape

    from agent.task_run import TaskRun
    from tasks.spec import Task

    task = Task.load(DEMO_TASK)
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)  # a log: not 80
    vlm = None
    if model is not None:
        with Console(stderr=True).status(f"loading model {model}"):
            vlm = _demo_model(model)
        task = task.replace(steps=None)  # the model finds its own way to the goal
    doing = f"{model} works towards the goal" if vlm is not None else "its steps, with the DOM grounder"
    with Console(stderr=True).status(f"{task.name}: {doing}") as status, \
            TaskRun(task, grounder="dom", model=vlm, runs_dir=runs_dir, headless=not headed) as run:
        for step in run.steps():
            action = step.action or {}
            status.update(escape(f"{task.name}: {doing}; step {step.index}: "
                                 f"{action.get('action', 'no action')} {_target(action)}"))
        result = run.result()
    _show_result(result, console, goal=task.goal if vlm is not None else None)
    if result.success:
        return
    if model == "tiny":
        console.print("As expected: the tiny model has random weights, so it cannot do the task. "
                      "`internvl-agent demo` alone shows the task done; --model internvl3-2b "
                      "tries a real model.")
    raise typer.Exit(1)


def _demo_model(name: str) -> VisionLanguageModel:
    """The model, or ModelUnavailable in one line that says how to get one."""
    try:
        return load_model(name, None)
    except ModelUnavailable as exc:
        what = exc.message.split(": pass --model")[0]  # that advice is for `run`; the demo's follows
        repo = hub_id(name)
        get = (f"To get it: `hf download {repo}`" if repo is not None else
               f"To get one: `hf download {CHECKPOINTS['internvl3-2b']}` (about 4 GB)")
        raise ModelUnavailable(
            f"{what}. {get}, then `internvl-agent demo --model {name if repo else 'internvl3-2b'}`; "
            "`internvl-agent demo` alone needs no model"
        ) from None


def _show_result(result: TaskResult, console: Console, *, goal: str | None) -> None:
    """A table of the steps, the success checks, and where the report is."""
    from rich.markup import escape
    from rich.table import Table

    from agent.report import write_report
    from agent.trajectory import Trajectory

    if goal is not None:
        console.print(f"goal: {escape(goal)}")
    table = Table("step", "action", "target", "ok", "ms", title=f"{result.task}: {result.outcome}")
    for step in Trajectory.read_steps(result.run_dir):
        action = step.action or {}
        kind = str(action.get("action", "no action"))
        if kind == "type":
            kind += f" {str(action.get('text', ''))[:24]!r}"
        ms = step.timings_ms.get("step", sum(step.timings_ms.values()))
        why = (step.feedback() or "failed").split(". ")[0]  # its first sentence
        ok = "[green]ok[/]" if step.ok else f"[red]{escape(why[:70])}[/]"
        table.add_row(str(step.index), escape(kind), escape(_target(action)), ok, f"{ms:.0f}")
    console.print(table)
    checks = Table("check", "ok", "what was seen", title="success checks")
    for check in result.checks:  # each `all`/`any` after its members
        ok = "[green]pass[/]" if check.ok else "[red]fail[/]"
        seen = check.why.split(";")[0] if _GROUP.match(check.check) else check.why  # not its members again
        checks.add_row(escape(check.check), ok, escape(seen))
    console.print(checks)
    leaves = [check for check in result.checks if not _GROUP.match(check.check)]
    passed = f"{sum(check.ok for check in leaves)} of {len(leaves)} checks passed"
    verdict = "[green]done[/]" if result.success else "[red]not done[/]"
    ended = f"; the run ended {result.outcome}" if result.outcome != "finished" else ""
    console.print(f"{verdict}: {passed}, {len(table.rows)} steps in {result.seconds:.1f} s{ended}")
    console.print(f"report: {write_report(result.run_dir)}")


def _target(action: dict[str, Any]) -> str:
    """What a step acted on, in words where it has them."""
    for field in ("target", "text", "url"):
        if action.get(field) and (field != "text" or action.get("action") == "expect_text"):
            return str(action[field])
    if action.get("x") is not None:
        return f"({action['x']}, {action['y']})"
    return ""


_GROUP = re.compile(r"(all|any) of \d+")  # how tasks.checks labels a group
