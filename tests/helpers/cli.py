"""The `internvl-agent` command run as a user runs it: a subprocess of this interpreter, offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["CLI", "last_json", "run_cli"]

CLI = [sys.executable, "-c", "from agent.cli import main; main()"]


def run_cli(*args: str, cwd: Path | str, env: dict[str, str] | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`internvl-agent ARGS` in `cwd`, with HF_HUB_OFFLINE=1 and `env` over this process's environment."""
    return subprocess.run([*CLI, *args], cwd=cwd, env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


def last_json(proc: subprocess.CompletedProcess[str]) -> Any:
    """The --json object: the last line of stdout."""
    return json.loads(proc.stdout.strip().splitlines()[-1])
