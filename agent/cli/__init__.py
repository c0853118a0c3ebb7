"""The `internvl-agent` command: one module per group of commands, all on one Typer app.

A user mistake (a missing model, no browser, a bad URL) prints one line and exits
with 2; a traceback means a bug in this program.

    app     the Typer application
    common  loading a model, opening an executor, following a run live, Ctrl-C
    run     `run` and `demo`: a model works towards a goal
    script  `script`: steps with targets in words
    info    `serve`, `report` and `models`
"""

from __future__ import annotations

import sys

from agent.cli.app import app
from agent.cli.run import DEMO_GOAL, DEMO_PAGE
from tools.errors import AgentError

# Each module registers its commands on `app`; `--help` lists them in import order.
# isort: off
from agent.cli import run, script, info  # noqa: F401
# isort: on

__all__ = ["DEMO_GOAL", "DEMO_PAGE", "app", "main"]


def main() -> None:
    try:
        app()
    except AgentError as exc:
        print(f"internvl-agent: {exc.message}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("internvl-agent: interrupted", file=sys.stderr)
        sys.exit(130)
