"""A run compiled into a script that replays without the model, and heals when the screen changed.

    compiled = compile_run("runs/<id>", "login.yaml")     # compile.py: steps with targets in words
    internvl-agent script login.yaml --write-back         # agent/script.py, healing through heal.py

compile.py turns a run's steps into a task file (targets.py says each point in words, crops.py
keeps each target's picture beside it, shortest.py leaves out what did not work); heal.py finds
a target whose words fail (the crop, then a model), session.py writes healed steps back, and
hook.py writes runs/<id>/script.yaml when an agent's run finishes.
"""

from __future__ import annotations

from agent.replay.compile import Compiled, compile_run, crops_folder
from agent.replay.crops import MATCH_THRESHOLD

__all__ = ["MATCH_THRESHOLD", "Compiled", "compile_run", "crops_folder"]
