"""What the commands share: loading a model, opening an executor, following a run."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

import typer

from tools.errors import AgentError

if TYPE_CHECKING:
    from rich.console import Console

    from agent.runner import Runner
    from agent.task_run import TaskResult
    from agent.trajectory import Step
    from model.base import VisionLanguageModel
    from tasks.spec import Task
    from tools.executor import Executor

__all__ = ["MODEL_HELP", "RunsDir", "check_runs_dir", "check_url", "follow", "load_model", "open_executor",
           "print_task_result", "quiet_transformers", "run_in_browser", "run_task_live",
           "secrets_from_environment"]

MODEL_HELP = "A short name (internvl3-8b), a hub id in the local cache, a checkpoint directory, or 'tiny'."


def check_runs_dir(path: Path) -> Path:
    """`path`, once it is known that trajectories can be written there (it is a writable folder,
    or one can be made under its nearest existing parent): checked while the arguments are
    read, so that a bad one is one line before any model or browser starts. Nothing is made."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        what = "is a file, not a folder" if existing == path else f"is under {existing}, a file"
        raise AgentError(f"--runs-dir {path} {what}: give a folder for the trajectories")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == path else f" (nor is {existing}, where it would be made)"
        raise AgentError(f"--runs-dir {path} is not writable by this user{where}: give another folder")
    return path


RunsDir = Annotated[Path, typer.Option(help="Where trajectories are written (made if missing).",
                                       callback=check_runs_dir)]
BaseUrl = Annotated[str | None, typer.Option(
    help="Use a model served over an OpenAI-compatible API at this URL (e.g. http://127.0.0.1:23333/v1) "
    "instead of loading it here; --model is then the served model's name.")]


def secrets_from_environment(names: list[str]) -> dict[str, str]:
    from agent.vault import Secrets

    # Values never come from the command line, where other users can read them (ps, shell history).
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        name = missing[0]
        raise AgentError(f"--secret {name}: the environment variable {name} is empty or not set: export it")
    values = {name: os.environ[name] for name in names}
    Secrets(values)  # a name the model could not write fails now, before a model is loaded
    return values


def run_in_browser(goal: str, *, url: str, model_name: str, max_steps: int, headed: bool, runs_dir: Path,
                   base_url: str | None = None, secrets: dict[str, str] | None = None,
                   allowed_domains: list[str] | None = None, strict: bool = False, best_of: int = 1) -> None:
    from rich.console import Console

    from agent.loop import Agent
    from agent.safety import SafetyPolicy
    from tools.browser import BrowserExecutor

    check_url(url)
    if strict and not allowed_domains:
        raise AgentError("--strict applies the allowed domains to every request: give --allow-domain too")
    safety = SafetyPolicy(allowed_domains=allowed_domains, strict=strict)
    if safety.allowlist is not None and not safety.allowlist.allows(url):
        domains = ", ".join(safety.allowlist.domains)
        raise AgentError(f"--url {url} is not on the allowed domains ({domains}): start on one of them")
    console = Console(stderr=True)
    with console.status(f"loading model {model_name}"):
        vlm = load_model(model_name, base_url)
    # The policy refuses a navigate before it runs; the browser, wherever a click or a page leads.
    with BrowserExecutor(start_url=url, headless=not headed, allowed_domains=allowed_domains,
                         strict=strict) as executor:
        agent = Agent(vlm, executor, max_steps=max_steps, runs_dir=runs_dir, secrets=secrets, safety=safety,
                      best_of=best_of)
        follow(agent, agent.steps(goal, start={"url": url}), console)  # recorded, for --resume


def run_task_live(task: Task, *, grounder: str, model: VisionLanguageModel | None, runs_dir: Path,
                  secrets: dict[str, str], headed: bool, as_json: bool, best_of: int = 1,
                  configure: Callable[[Runner[Any]], None] | None = None) -> None:
    """Start a task file, run its steps (or its goal, when it has none) printing each step, then
    its success checks; `as_json` prints the result as one JSON object, the last line on stdout.
    `configure` sets up the runner before it starts. Exits with 1 unless the task succeeded (its
    run finished and its checks passed)."""
    import json

    from rich.console import Console

    from agent.task_run import TaskRun

    console = Console(stderr=True)
    with TaskRun(task, grounder=grounder, model=model, runs_dir=runs_dir, secrets=secrets,
                 headless=not headed, best_of=best_of) as run:
        assert run.runner is not None
        if configure is not None:
            configure(run.runner)
        follow(run.runner, run.steps(), console)
        result = run.result()
    print_task_result(result, console)
    if as_json:
        print(json.dumps(result.to_json()), flush=True)
    if not result.success:
        raise typer.Exit(1)  # for shell scripts and CI


def print_task_result(result: TaskResult, console: Console) -> None:
    """Each success check, then the task's verdict, on the console (stderr)."""
    for check in result.checks:
        console.print(f"check {check.check}: {'pass' if check.ok else 'FAIL'} ({check.why})", markup=False,
                      highlight=False, soft_wrap=True)
    console.print(f"task {result.task}: " + ("success" if result.success else f"failed: {result.why}"),
                  markup=False, highlight=False, soft_wrap=True)


def check_url(url: str) -> None:
    """A start URL that the browser can open, or one line saying what to give instead."""
    if not url.startswith(("http://", "https://", "file://")):
        raise AgentError(f"--url {url!r} is not a URL: give one that starts with http://, https:// or file://")
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port  # both raise ValueError on a malformed address
    except ValueError as exc:
        raise AgentError(f"--url {url!r} is not a valid URL ({exc}): check the host and port") from None
    if parts.scheme in ("http", "https") and not host:
        raise AgentError(f"--url {url!r} names no host: give one such as http://127.0.0.1:8000/")
    if parts.scheme == "file" and not parts.path:
        raise AgentError(f"--url {url!r} names no file: give file:///path/to/page.html")


def open_executor(url: str | None, headed: bool) -> Executor:
    if url is not None:
        from tools.browser import BrowserExecutor

        return BrowserExecutor(start_url=url, headless=not headed)
    from tools.desktop import DesktopExecutor

    return DesktopExecutor()


def follow(run: Runner[Any], steps: Iterator[Step], console: Console) -> None:
    """Print each step as it is written, then the outcome and where the trajectory and its
    report are. The first Ctrl-C ends the run after the step in flight (exit 130), a second
    one at once."""
    from agent.report import write_report

    try:
        with _first_ctrl_c_stops(run, console):
            for step in steps:
                console.print(_step_line(step), highlight=False)
    except KeyboardInterrupt:  # the second Ctrl-C (click alone would print "Aborted!" and exit with 1)
        stopped = True
    else:
        stopped = run.trajectory is not None and run.trajectory.outcome == "stopped"
    trajectory = run.trajectory
    if stopped:
        where = f"; the steps so far are in {trajectory.run_dir}" if trajectory is not None else ""
        print(f"internvl-agent: interrupted{where}", file=sys.stderr)
        raise typer.Exit(130)
    assert trajectory is not None
    report_path = write_report(trajectory.run_dir)
    console.print(f"{trajectory.outcome} after {len(trajectory)} steps; report: {report_path}")
    print(f"trajectory: {trajectory.run_dir}")


@contextmanager
def _first_ctrl_c_stops(run: Runner[Any], console: Console) -> Iterator[None]:
    """The first Ctrl-C ends the run after the step in flight; a second one stops at once.

    An interrupt in the middle of a browser call can leave Playwright unable to close.
    """
    def on_ctrl_c(signum: int, frame: object) -> None:
        console.print("stopping after this step (Ctrl-C again to stop at once)")
        run.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def load_model(name: str, base_url: str | None) -> VisionLanguageModel:
    if base_url is not None:
        from model.remote import OpenAICompatibleModel

        return OpenAICompatibleModel(base_url, name)
    from model.internvl import InternVLModel

    quiet_transformers()
    return InternVLModel.from_pretrained(name)


def _step_line(step: Step) -> str:
    what = step.action["action"] if step.action else "no action"
    if step.ok:
        status = "ok"
    elif step.parse_error is not None:
        status = "unusable reply: " + step.parse_error.split(".")[0]
    else:
        status = "failed: " + (step.result.error if step.result and step.result.error else "")
    ms = step.timings_ms  # an agent's step spends most in the model; a script's, in grounding
    spent = f"{ms['model']:.0f} ms in the model" if "model" in ms else f"{sum(ms.values()):.0f} ms"
    return f"step {step.index}: {what} -> {status[:90]} ({spent})"


def quiet_transformers() -> None:
    """The weight-loading progress bar and advisory logs are noise on a terminal run."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
