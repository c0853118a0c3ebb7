"""The `internvl-agent` command.

A user mistake (a missing model, no browser, a bad URL) prints one line and exits
with 2; a traceback means a bug in this program.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Protocol

import typer

from tasks import EXAMPLES
from tools.errors import AgentError

if TYPE_CHECKING:
    from rich.console import Console

    from agent.trajectory import Step, Trajectory
    from model.base import VisionLanguageModel
    from tools.executor import Executor

__all__ = ["app", "main"]

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="Let a local InternVL3 model operate a browser or a desktop.",
)

DEMO_PAGE = EXAMPLES / "demo.html"
DEMO_GOAL = "Click the OK button."
MODEL_HELP = "A short name (internvl3-8b), a hub id in the local cache, a checkpoint directory, or 'tiny'."


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
    _run_in_browser(goal, url=url, model_name=model, max_steps=max_steps, headed=headed, runs_dir=runs_dir,
                    base_url=base_url, secrets=_secrets_from_environment(secret or []),
                    allowed_domains=allow_domain)


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

    steps = Script.load(path)  # a bad file fails here, before a model is loaded
    secrets = _secrets_from_environment(secret or [])
    if url is not None:
        _check_url(url)
    if grounder not in ("model", "dom"):
        raise AgentError(f"--grounder {grounder!r}: give 'model' or 'dom'")
    if grounder == "dom" and url is None:
        raise AgentError("--grounder dom reads a web page's markup: give --url (on a desktop, use the model)")
    console = Console(stderr=True)
    if grounder == "model":
        with console.status(f"loading model {model}"):
            finder: Grounder = ModelGrounder(_load_model(model, base_url))
    with _executor(url, headed) as executor:
        if grounder == "dom":
            finder = DOMGrounder(executor)  # type: ignore[arg-type]  # a BrowserExecutor: --url is given
        runner = ScriptRunner(executor, finder, runs_dir=runs_dir, secrets=secrets)
        _follow(runner, runner.steps(steps), console)
    if runner.trajectory is not None and runner.trajectory.outcome != "finished":
        raise typer.Exit(1)  # for shell scripts and CI: a step failed


@app.command()
def demo(
    model: Annotated[str, typer.Option(help="Model to use; 'tiny' needs no download.")] = "tiny",
    max_steps: Annotated[int, typer.Option(min=1)] = 3,
    runs_dir: Annotated[Path, typer.Option()] = Path("runs"),
) -> None:
    """A short run on a bundled page. With the tiny random model it shows the machinery, not skill."""
    _run_in_browser(DEMO_GOAL, url=DEMO_PAGE.as_uri(), model_name=model, max_steps=max_steps,
                    headed=False, runs_dir=runs_dir)


@app.command()
def serve(
    model: Annotated[str, typer.Option(help=MODEL_HELP)],
    host: Annotated[str, typer.Option(help="Address to listen on; the server has no authentication.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
) -> None:
    """Serve a local model over an OpenAI-compatible API (/v1/chat/completions, /v1/models)."""
    from model.internvl import InternVLModel
    from model.server import serve as serve_model

    _quiet_transformers()
    serve_model(InternVLModel.from_pretrained(model), host=host, port=port)


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory, such as runs/20261126-101500-ab12cd.")],
) -> None:
    """Write RUN_DIR/report.html: each step's screenshot, the model's reply and what ran."""
    from agent.report import write_report

    if not (run_dir / "steps.jsonl").is_file():
        raise AgentError(f"{run_dir} holds no run (no steps.jsonl): give a directory under runs/")
    print(write_report(run_dir))


@app.command()
def models() -> None:
    """List the InternVL3 checkpoints: parameters, and the memory their weights need."""
    from model.catalog import describe_models

    rows = [("name", "checkpoint", "params", "bf16 GiB", "8-bit GiB", "4-bit GiB", "here")]
    for info in describe_models():
        here = "yes" if _is_cached(info.name) else "no"
        rows.append((info.name, info.hub_id or "-", f"{info.params / 1e9:.2f}B", f"{info.gib_bf16:.1f}",
                     f"{info.gib_8bit:.1f}", f"{info.gib_4bit:.1f}", here))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:  # plain text: it has to survive pipes and narrow terminals
        pairs = enumerate(zip(row, widths, strict=True))
        cells = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in pairs]
        print("  ".join(cells))
    print("Memory is for the weights alone; the KV cache and activations come on top.")


def _is_cached(name: str) -> bool:
    from model.catalog import resolve_model

    try:
        resolve_model(name)
    except AgentError:
        return False
    return True


def _secrets_from_environment(names: list[str]) -> dict[str, str]:
    from agent.secrets import Secrets

    # Values never come from the command line, where other users can read them (ps, shell history).
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        name = missing[0]
        raise AgentError(f"--secret {name}: the environment variable {name} is empty or not set: export it")
    values = {name: os.environ[name] for name in names}
    Secrets(values)  # a name the model could not write fails now, before a model is loaded
    return values


def _run_in_browser(goal: str, *, url: str, model_name: str, max_steps: int, headed: bool, runs_dir: Path,
                    base_url: str | None = None, secrets: dict[str, str] | None = None,
                    allowed_domains: list[str] | None = None) -> None:
    from rich.console import Console

    from agent.loop import Agent
    from agent.safety import SafetyPolicy
    from tools.browser import BrowserExecutor

    _check_url(url)
    safety = SafetyPolicy(allowed_domains=allowed_domains)
    if safety.allowlist is not None and not safety.allowlist.allows(url):
        domains = ", ".join(safety.allowlist.domains)
        raise AgentError(f"--url {url} is not on the allowed domains ({domains}): start on one of them")
    console = Console(stderr=True)
    with console.status(f"loading model {model_name}"):
        vlm = _load_model(model_name, base_url)
    # The policy refuses a navigate before it runs; the browser, wherever a click or a page leads.
    with BrowserExecutor(start_url=url, headless=not headed, allowed_domains=allowed_domains) as executor:
        agent = Agent(vlm, executor, max_steps=max_steps, runs_dir=runs_dir, secrets=secrets, safety=safety)
        _follow(agent, agent.steps(goal), console)


def _check_url(url: str) -> None:
    if not url.startswith(("http://", "https://", "file://")):
        raise AgentError(f"--url {url!r} is not a URL: give one that starts with http://, https:// or file://")


def _executor(url: str | None, headed: bool) -> Executor:
    if url is not None:
        from tools.browser import BrowserExecutor

        return BrowserExecutor(start_url=url, headless=not headed)
    from tools.desktop import DesktopExecutor

    return DesktopExecutor()


class _Stoppable(Protocol):
    trajectory: Trajectory | None

    def stop(self) -> None: ...


def _follow(run: _Stoppable, steps: Iterator[Step], console: Console) -> None:
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
def _first_ctrl_c_stops(run: _Stoppable, console: Console) -> Iterator[None]:
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


def _load_model(name: str, base_url: str | None) -> VisionLanguageModel:
    if base_url is not None:
        from model.remote import OpenAICompatibleModel

        return OpenAICompatibleModel(base_url, name)
    from model.internvl import InternVLModel

    _quiet_transformers()
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
