"""The `internvl-agent` command: one module per group of commands, all on one Typer app.

A user mistake (a missing model, no browser, a bad URL) prints one line and exits
with 2; a traceback means a bug in this program.

    app     the Typer application
    common  loading a model, opening an executor, following a run live, Ctrl-C
    run     `run` and `demo`: a model works towards a goal (or a task file's)
    script  `script`: a task file's steps, targets in words (healing a compiled one)
    compile `compile`: a recorded run into a script that replays without the model
    tasks   `tasks`: every task file in a folder, run and checked
    bench   `bench miniwob`: suites through the agent's own path
    ground  `ground`: where a target in words is, on a screenshot or a page
    info    `serve`, `report` and `models`
    mcp     `mcp`: one executor offered to MCP clients as tools
"""

from __future__ import annotations

import sys

from agent.cli.app import app
from agent.cli.run import DEMO_GOAL, DEMO_PAGE
from tools.errors import AgentError

# Each module registers its commands on `app`; `--help` lists them in import order.
# isort: off
from agent.cli import run, script, compile, tasks, bench, ground, info, mcp  # noqa: F401
# isort: on

__all__ = ["DEMO_GOAL", "DEMO_PAGE", "app", "main"]


def main() -> None:
    try:
        app()
    except AgentError as exc:
        print(f"internvl-agent: {exc.message}", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:  # a file or folder the user named: unreadable, full disk, no permission
        where = f": {exc.filename}" if exc.filename else ""
        print(f"internvl-agent: {exc.strerror or exc}{where}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("internvl-agent: interrupted", file=sys.stderr)
        sys.exit(130)
