"""The `internvl-agent` command.

A user mistake (a missing model, no browser, a bad URL) prints one line and exits
with 2; a traceback means a bug in this program.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tools.errors import AgentError

if TYPE_CHECKING:
    from agent.trajectory import Step

__all__ = ["app", "main"]

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="Let a local InternVL3 model operate a browser or a desktop.",
)

DEMO_PAGE = Path(__file__).resolve().parent.parent / "tasks" / "examples" / "demo.html"
DEMO_GOAL = "Click the OK button."


@app.command()
def run(
    goal: Annotated[str, typer.Argument(help="What the agent should do, in words.")],
    url: Annotated[str, typer.Option(help="The page to start on (http://, https:// or file://).")],
    model: Annotated[str, typer.Option(help="A short name (internvl3-8b), a hub id, a local "
                                       "checkpoint directory, or 'tiny'.")] = "internvl3-2b",
    max_steps: Annotated[int, typer.Option(min=1, help="Every model call counts as a step.")] = 15,
    headed: Annotated[bool, typer.Option(help="Show the browser window.")] = False,
    runs_dir: Annotated[Path, typer.Option(help="Where trajectories are written.")] = Path("runs"),
) -> None:
    """Run the agent on GOAL in a browser that starts at URL."""
    _run_in_browser(goal, url=url, model_name=model, max_steps=max_steps, headed=headed, runs_dir=runs_dir)


@app.command()
def demo(
    model: Annotated[str, typer.Option(help="Model to use; 'tiny' needs no download.")] = "tiny",
    max_steps: Annotated[int, typer.Option(min=1)] = 3,
    runs_dir: Annotated[Path, typer.Option()] = Path("runs"),
) -> None:
    """A short run on a bundled page. With the tiny random model it shows the machinery, not skill."""
    _run_in_browser(DEMO_GOAL, url=DEMO_PAGE.as_uri(), model_name=model, max_steps=max_steps,
                    headed=False, runs_dir=runs_dir)


def _run_in_browser(goal: str, *, url: str, model_name: str, max_steps: int, headed: bool,
                    runs_dir: Path) -> None:
    from rich.console import Console

    from agent.loop import Agent
    from model.internvl import InternVLModel
    from tools.browser import BrowserExecutor

    if not url.startswith(("http://", "https://", "file://")):
        raise AgentError(f"--url {url!r} is not a URL: give one that starts with http://, https:// or file://")
    console = Console(stderr=True)
    _quiet_transformers()
    with console.status(f"loading model {model_name}"):
        vlm = InternVLModel.from_pretrained(model_name)
    with BrowserExecutor(start_url=url, headless=not headed) as executor:
        agent = Agent(vlm, executor, max_steps=max_steps, runs_dir=runs_dir)
        for step in agent.steps(goal):
            console.print(_step_line(step), highlight=False)
    trajectory = agent.trajectory
    assert trajectory is not None
    console.print(f"{trajectory.outcome} after {len(trajectory)} steps")
    print(f"trajectory: {trajectory.run_dir}")


def _step_line(step: Step) -> str:
    what = step.action["action"] if step.action else "no action"
    if step.ok:
        status = "ok"
    elif step.parse_error is not None:
        status = "unusable reply: " + step.parse_error.split(".")[0]
    else:
        status = "failed: " + (step.result.error if step.result and step.result.error else "")
    return f"step {step.index}: {what} -> {status[:90]} ({step.timings_ms['model']:.0f} ms in the model)"


def _quiet_transformers() -> None:
    """The weight-loading progress bar and advisory logs are noise on a terminal run."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def main() -> None:
    try:
        app()
    except AgentError as exc:
        print(f"internvl-agent: {exc.message}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("internvl-agent: interrupted", file=sys.stderr)
        sys.exit(130)
