"""Agents as tools: `agent.as_tool(name, description)` is a tool that another agent calls.

What smolagents calls a managed agent. The tool takes one argument, `task` (what to ask, in
words), runs the agent (with a screen or without) on it as a run of its own, and returns its
answer: the text, or a typed answer's JSON. The child run is a directory inside the calling
run's, `children/<id>`; its run.json names its parent (`parent`), the parent's run.json lists
it under `children` (with the step that called it), and the parent's report links to it. A
child run that does not finish fails the call: the calling model reads its outcome and why.
Stopping the calling run stops the child run too, after its step in flight.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from secrets import token_hex
from typing import TYPE_CHECKING, Any

from tools.context import RunContext
from tools.errors import AgentError
from tools.registry import tool

if TYPE_CHECKING:
    from agent.loop import Agent
    from agent.trajectory import Trajectory

__all__ = ["agent_tool", "child_recorder"]

_RECORDING = threading.Lock()  # parallel calls may link their child runs at the same time


def agent_tool(agent: Agent, name: str, description: str) -> Callable[..., str]:
    """A @tool function `name(task)` that runs `agent` on `task` as a child run (see the module)."""

    def run_agent(ctx: RunContext[Any], task: str) -> str:
        running = agent.trajectory
        if running is not None and running.outcome == "running":
            raise AgentError(f"the agent behind {name} is in a run already: give as_tool an Agent of its own")
        children = ctx.run_dir / "children" if ctx.run_dir is not None else None
        run_id = f"step-{ctx.step:03d}-{name}-{token_hex(3)}"
        try:
            for _ in agent.steps(task, run_id=run_id, runs_dir=children):
                if ctx.stopping is not None and ctx.stopping():
                    agent.stop()  # the calling run was stopped: so is this one, after its step
        finally:
            if (child := agent.trajectory) is not None and child is not running:
                _link(child, ctx, name)
        child = agent.trajectory
        assert child is not None
        if child.outcome != "finished":
            raise AgentError(f"{name} ended as {child.outcome}: {_why(child)}")
        return child.answer or ""

    run_agent.__name__ = name
    run_agent.__qualname__ = name
    run_agent.__doc__ = f"{description}\n\nArgs:\n    task: What to ask of {name}, in words (its only input)."
    # A secret's placeholder in the task stays one: the child run fills it if it has the secret, so
    # no value reaches its goal, which its own secrets alone are redacted from.
    return tool(run_agent, name=name, fill_secrets=False)


def child_recorder(trajectory: Trajectory, step: int) -> Callable[[Mapping[str, Any]], None]:
    """What step `step`'s RunContext links child runs with: each goes into run.json's `children`."""

    def record(link: Mapping[str, Any]) -> None:
        with _RECORDING:
            trajectory.record(children=[*trajectory.meta.get("children", []), {**link, "step": step}])

    return record


def _link(child: Trajectory, ctx: RunContext[Any], name: str) -> None:
    """Name the parent in the child's run.json, and the child in the parent's (through ctx)."""
    child.record(parent={"run": ctx.run_id, "step": ctx.step, "tool": name})
    if ctx.record_child is None or ctx.run_dir is None:
        return
    ctx.record_child({"id": child.run_dir.name, "dir": child.run_dir.relative_to(ctx.run_dir).as_posix(),
                      "tool": name, "outcome": child.outcome})


def _why(child: Trajectory) -> str:
    """Why a child run did not finish: its reason to fail, or its last step's error."""
    if child.answer:
        return child.answer
    last = child.steps[-1] if child.steps else None
    feedback = last.feedback() if last is not None else None
    return feedback or f"after {len(child.steps)} steps"
