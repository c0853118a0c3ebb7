"""`internvl-agent script`: a task file's steps, targets in words grounded on the live screen."""

from __future__ import annotations

from collections.abc import Callable
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
    run_task_live,
    secrets_from_environment,
)
from tools.errors import AgentError, TaskError

if TYPE_CHECKING:
    from agent.runner import Runner
    from model.base import VisionLanguageModel

__all__ = ["script"]


@app.command()
def script(
    path: Annotated[Path | None, typer.Argument(help="A task file with steps (see tasks/spec.py).")] = None,
    url: Annotated[str | None, typer.Option(
        help="Run it in a browser that starts here, instead of where the file's `start` says. Without "
        "either, on this desktop (needs a display).")] = None,
    model: Annotated[str | None, typer.Option(
        help=MODEL_HELP + " It grounds the targets (with --grounder model, or last with auto).")] = None,
    grounder: Annotated[str, typer.Option(
        help="'auto' (in a browser the page's markup, then OCR, then the model if given; on a desktop OCR, "
        "then the model), 'dom' (the page's markup: role, label, text), 'ocr' (the text on the "
        "screenshot) or 'model' (the model finds each target on the screenshot).")] = "auto",
    headed: Annotated[bool, typer.Option(help="Show the browser window.")] = False,
    runs_dir: RunsDir = Path("runs"),
    base_url: BaseUrl = None,
    secret: Annotated[list[str] | None, typer.Option(
        help="The name of an environment variable holding a secret that steps type as <secret>NAME</secret>; "
        "never written to disk. Repeatable.")] = None,
    resume: Annotated[Path | None, typer.Option(
        help="Go on with the run in this directory (killed, crashed or stopped) from the step after the "
        "last one done; its task file, start and grounder come from its run.json.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help=(
        "Print the result as one JSON object on the last line of stdout: task, success, outcome, steps, "
        "run_dir, checks."))] = False,
    heal_with: Annotated[str | None, typer.Option(
        help="A model (" + MODEL_HELP + ") that finds a target when neither its words nor its recorded "
        "crop do.")] = None,
    write_back: Annotated[bool, typer.Option(
        help="Once the run has finished, rewrite each healed step in the file: its new words, crop and "
        "point, under a comment saying when and why.")] = False,
    var: Annotated[list[str] | None, typer.Option(
        help="NAME=VALUE for each {{NAME}} in the steps (see `compile --var`). Repeatable.")] = None,
) -> None:
    """Run a task file's steps, each target grounded on the live screen, then its success checks.
    Exits with 1 when a step or a check fails."""
    from agent.script import Script
    from agent.task_run import refusal

    secrets = secrets_from_environment(secret or [])
    if resume is not None:
        if path is not None:
            raise AgentError("--resume goes on with a recorded run: give no task file with it")
        if heal_with is not None or write_back:
            raise AgentError("--heal-with and --write-back replay a script file: give its PATH, "
                             "not --resume")
        from agent.cli.resume import resume_script

        resume_script(resume, model=model, base_url=base_url, headed=headed, secrets=secrets)
        return  # the grounder is the one the run used
    if path is None:
        raise AgentError("give a task file (PATH), or --resume RUN_DIR")
    from agent.cli.compile import parse_vars

    task = Script.load(path, variables=parse_vars(var))  # a bad file fails here, before a model is loaded
    if url is not None:
        check_url(url)
        task = task.starting_at(url)
    why = refusal(task, grounder=grounder, with_model=model is not None, secret_names=secrets)
    if why is not None:
        raise TaskError(why)
    vlm = None
    if model is not None and grounder in ("model", "auto"):
        from rich.console import Console

        with Console(stderr=True).status(f"loading model {model}"):
            vlm = load_model(model, base_url)
    healer = None
    if heal_with is not None:
        from rich.console import Console

        with Console(stderr=True).status(f"loading model {heal_with}"):
            healer = load_model(heal_with, base_url)
    run_task_live(task, grounder=grounder, model=vlm, runs_dir=runs_dir, secrets=secrets, headed=headed,
                  as_json=as_json, configure=_healing(healer, write_back))


def _healing(healer: VisionLanguageModel | None, write_back: bool) -> Callable[[Runner[Any]], None]:
    """What sets the replay's fallbacks on the task's ScriptRunner: the model that finds a
    target when its words and its crop do not, and whether healed steps are written back."""
    from agent.grounding.model import ModelGrounder
    from agent.script import ScriptRunner

    def configure(runner: Runner[Any]) -> None:
        assert isinstance(runner, ScriptRunner)
        runner.heal_with = ModelGrounder(healer) if healer is not None else None
        runner.write_back = write_back

    return configure
