"""`internvl-agent script`: steps with targets in words, grounded on the live screen."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agent.cli.app import app
from agent.cli.common import (
    MODEL_HELP,
    check_url,
    follow,
    load_model,
    open_executor,
    secrets_from_environment,
)
from tools.errors import AgentError

__all__ = ["script"]


@app.command()
def script(
    path: Annotated[Path, typer.Argument(help="The script: a YAML list of steps (see agent/script.py).")],
    url: Annotated[str | None, typer.Option(
        help="Run it in a browser that starts here. Without it, on this desktop (needs a display).")] = None,
    model: Annotated[str, typer.Option(help=MODEL_HELP + " It grounds the targets.")] = "internvl3-2b",
    grounder: Annotated[str, typer.Option(
        help="'model' (the model finds each target on the screenshot) or 'dom' (in the page's markup, by "
        "role, label and text: no model is loaded; needs --url).")] = "model",
    headed: Annotated[bool, typer.Option(help="Show the browser window.")] = False,
    runs_dir: Annotated[Path, typer.Option(help="Where trajectories are written.")] = Path("runs"),
    base_url: Annotated[str | None, typer.Option(
        help="Ground with a model served over an OpenAI-compatible API at this URL.")] = None,
    secret: Annotated[list[str] | None, typer.Option(
        help="The name of an environment variable holding a secret that steps type as <secret>NAME</secret>; "
        "never written to disk. Repeatable.")] = None,
) -> None:
    """Run a script whose targets are described in words, each grounded on the live screen.
    Exits with 1 when a step fails."""
    from rich.console import Console

    from agent.grounding import Grounder
    from agent.grounding.dom import DOMGrounder
    from agent.grounding.model import ModelGrounder
    from agent.script import Script, ScriptRunner

    loaded = Script.load(path)  # a bad file fails here, before a model is loaded
    secrets = secrets_from_environment(secret or [])
    if url is not None:
        check_url(url)
    if grounder not in ("model", "dom"):
        raise AgentError(f"--grounder {grounder!r}: give 'model' or 'dom'")
    if grounder == "dom" and url is None:
        raise AgentError("--grounder dom reads a web page's markup: give --url (on a desktop, use the model)")
    console = Console(stderr=True)
    if grounder == "model":
        with console.status(f"loading model {model}"):
            locator: Grounder = ModelGrounder(load_model(model, base_url))
    with open_executor(url, headed) as executor:
        if grounder == "dom":
            locator = DOMGrounder(executor)  # type: ignore[arg-type]  # a BrowserExecutor: --url is given
        runner = ScriptRunner(executor, locator, runs_dir=runs_dir, secrets=secrets)
        follow(runner, runner.steps(loaded), console)
    if runner.trajectory is not None and runner.trajectory.outcome != "finished":
        raise typer.Exit(1)  # for shell scripts and CI: a step failed
