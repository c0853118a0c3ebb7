"""internvl-agent: a local InternVL3 model operating a browser or a desktop."""

from agent.loop import Agent
from agent.parsing import parse_action
from agent.policy import Decision, Policy
from agent.safety import SafetyPolicy
from agent.trajectory import Step, Trajectory

__all__ = ["Agent", "Decision", "Policy", "SafetyPolicy", "Step", "Trajectory", "parse_action"]
