"""`internvl-agent compile`: a recorded run, compiled into a script that replays without the model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agent.cli.app import app
from tools.errors import AgentError

__all__ = ["compile_command", "parse_vars"]


def parse_vars(given: list[str] | None) -> dict[str, str]:
    """`--var name=value` options as a mapping; AgentError (one line) for a malformed one."""
    import re

    variables: dict[str, str] = {}
    for item in given or ():
        name, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name.strip()):
            raise AgentError(f"--var {item!r}: write NAME=VALUE, NAME in letters, digits and _")
        variables[name.strip()] = value
    return variables


@app.command("compile")
def compile_command(
    run_dir: Annotated[Path, typer.Argument(help="A run's directory (runs/<id>).")],
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", help="The script to write (default: RUN_DIR/script.yaml); its crops go in "
        "NAME.crops/ beside it.")] = None,
    var: Annotated[list[str] | None, typer.Option(
        help="NAME=VALUE: the value, wherever the run typed or named it, becomes {{NAME}}, given at "
        "replay with `script FILE --var NAME=VALUE`. Repeatable.")] = None,
) -> None:
    """Compile a recorded run into a task file with steps: targets in words, each with its crop and
    point as fallbacks. Replay it with `internvl-agent script FILE`, no model needed."""
    from agent.replay import compile_run

    if not (run_dir / "steps.jsonl").is_file():
        raise AgentError(f"{run_dir} holds no run (no steps.jsonl): give a run directory, runs/<id>")
    if output is not None and output.suffix not in (".yaml", ".yml"):
        raise AgentError(f"-o {output}: give a .yaml file")
    compiled = compile_run(run_dir, output, variables=parse_vars(var))
    print(f"{compiled.path}: {compiled.steps} steps"
          + (f", {len(compiled.dropped)} left out" if compiled.dropped else ""))
    for note in compiled.notes:
        print(f"  {note}")
