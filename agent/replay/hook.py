"""After an agent's run finishes on a screen: runs/<id>/script.yaml, its replay without the model.

Called by the Agent loop as the run ends (whatever its model: local, or a server behind
--base-url). A script that cannot be compiled is a warning, never the run's failure: the run
did what it was asked, and `internvl-agent compile RUN_DIR` says why in one line.
"""

from __future__ import annotations

import logging

from agent.trajectory import Trajectory
from tools.errors import AgentError

__all__ = ["SCRIPT_NAME", "write_run_script"]

log = logging.getLogger(__name__)

SCRIPT_NAME = "script.yaml"


def write_run_script(trajectory: Trajectory) -> None:
    """Compile the finished run into `run_dir/script.yaml` and name it in run.json (`script`)."""
    from agent.replay.compile import compile_run

    try:
        compiled = compile_run(trajectory.run_dir, trajectory.run_dir / SCRIPT_NAME)
    except (AgentError, OSError) as exc:
        log.warning("run %s was not compiled into a script: %s", trajectory.run_dir, exc)
        return
    trajectory.record(script=compiled.path.name)
