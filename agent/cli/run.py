"""`internvl-agent run` and `demo`: a model works towards a goal in a browser."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agent.cli.app import app
from agent.cli.common import MODEL_HELP, run_in_browser, secrets_from_environment
from tasks import EXAMPLES

__all__ = ["DEMO_GOAL", "DEMO_PAGE", "demo", "run"]

DEMO_PAGE = EXAMPLES / "demo.html"
DEMO_GOAL = "Click the OK button."


@app.command()
def run(
    goal: Annotated[str, typer.Argument(help="What the agent should do, in words.")],
    url: Annotated[str, typer.Option(help="The page to start on (http://, https:// or file://).")],
    model: Annotated[str, typer.Option(help=MODEL_HELP)] = "internvl3-2b",
    max_steps: Annotated[int, typer.Option(min=1, help="Every model call counts as a step.")] = 15,
    headed: Annotated[bool, typer.Option(help="Show the browser window.")] = False,
    runs_dir: Annotated[Path, typer.Option(help="Where trajectories are written.")] = Path("runs"),
    base_url: Annotated[str | None, typer.Option(
        help="Use a model served over an OpenAI-compatible API at this URL (e.g. http://127.0.0.1:23333/v1) "
        "instead of loading it here; --model is then the served model's name.")] = None,
    secret: Annotated[list[str] | None, typer.Option(
        help="The name of an environment variable holding a secret (a password, say): the model may "
        "type it as <secret>NAME</secret> without seeing it, and it is never written to disk. Repeatable.",
    )] = None,
    allow_domain: Annotated[list[str] | None, typer.Option(
        help="Keep the run on this domain and its subdomains (example.org); repeatable. Default: any site.",
    )] = None,
) -> None:
    """Run the agent on GOAL in a browser that starts at URL."""
    run_in_browser(goal, url=url, model_name=model, max_steps=max_steps, headed=headed, runs_dir=runs_dir,
                   base_url=base_url, secrets=secrets_from_environment(secret or []),
                   allowed_domains=allow_domain)


@app.command()
def demo(
    model: Annotated[str, typer.Option(help="Model to use; 'tiny' needs no download.")] = "tiny",
    max_steps: Annotated[int, typer.Option(min=1)] = 3,
    runs_dir: Annotated[Path, typer.Option()] = Path("runs"),
) -> None:
    """A short run on a bundled page. With the tiny random model it shows the machinery, not skill."""
    run_in_browser(DEMO_GOAL, url=DEMO_PAGE.as_uri(), model_name=model, max_steps=max_steps,
                   headed=False, runs_dir=runs_dir)
