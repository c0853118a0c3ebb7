"""Every prompt the agent sends, in one place. Bump PROMPT_VERSION when one changes:
trajectories record it, so a change in behaviour can be traced to a change in wording."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from tools.coordinates import MODEL_SPACE_MAX

__all__ = ["CRITIC_PROMPT", "GROUNDING_PROMPT", "PROMPT_VERSION", "step_prompt", "system_prompt",
           "tools_system_prompt"]

PROMPT_VERSION = "2026-12-06.2"  # the critic's prompt joins the others

# InternVL's own grounding prompt; the answer is <ref>..</ref><box>[[x1, y1, x2, y2]]</box>.
GROUNDING_PROMPT = (
    "Please provide the bounding box coordinate of the region this sentence describes: <ref>{}</ref>"
)

# Best-of-N's critic (agent/critic.py): its score is read from the logits of "Yes" and "No".
CRITIC_PROMPT = (
    "You check the next step of an agent that operates a computer.\n"
    "The agent's goal: {goal}\n"
    "Its proposed action: {action}{where}\n"
    "Does this action move the task forward, towards the goal? Answer Yes or No."
)

_SYSTEM = """You are a GUI agent. You see a screenshot of a {surface} and act on it, one action per reply, \
until the user's goal is done.

Coordinates are integers from 0 to {max}, relative to the screenshot: (0, 0) is the top-left corner and \
({max}, {max}) the bottom-right, whatever its size in pixels.

Reply with one short thought, then exactly one action as a tool call:
<tool_call>{{"name": "click", "arguments": {{"x": 500, "y": 300}}}}</tool_call>

When the goal is done, call finish (with the answer, if the goal asks a question). If it cannot be done, \
call fail with the reason.

The actions you can call, as JSON schemas:
{tools}"""


# With no screen: the tools, finish and fail; several calls in one reply.
_TOOLS_SYSTEM = """You are an agent that reaches the user's goal by calling tools. There is no screen: \
what you know comes from the goal and from what your calls returned (under "Previous steps"; an image a \
tool returned is shown before the text, after a caption that names its step and tool).

Reply with one short thought, then one or more calls, each in its own block:
<tool_call>{{"name": "{example}", "arguments": {{...}}}}</tool_call>
The calls of one reply run together, and you read their results in the next turn.

When the goal is done, call finish with the answer (in the form the schema of its answer asks for). \
If it cannot be done, call fail with the reason.

The tools you can call, as JSON schemas:
{tools}"""


_SECRETS = """

Some values are secret: you cannot see them, but you can type them. To type one, put its \
placeholder in the text of type, as in {{"text": "<secret>{example}</secret>", "secret": true}}. \
Wherever a value would be shown to you (in the goal, the URL, earlier steps), you see its placeholder \
or [secret] instead. The secrets are: {names}."""


def system_prompt(
    tools: Sequence[dict[str, Any]], *, surface: str = "web browser", secret_names: Sequence[str] = ()
) -> str:
    """The system prompt: the rules, the whole action space as OpenAI function schemas, and
    the names (never the values) of the secrets the model may type."""
    listing = "\n".join(json.dumps(entry["function"], separators=(",", ":")) for entry in tools)
    prompt = _SYSTEM.format(surface=surface, max=MODEL_SPACE_MAX, tools=listing)
    if secret_names:
        prompt += _SECRETS.format(example=secret_names[0], names=", ".join(secret_names))
    return prompt


def tools_system_prompt(tools: Sequence[dict[str, Any]], *, secret_names: Sequence[str] = ()) -> str:
    """The system prompt of an agent with no screen: the tools (with finish and fail) as OpenAI
    function schemas, and the names of the secrets it may pass to them."""
    names = [entry["function"]["name"] for entry in tools]
    example = next((name for name in names if name not in ("finish", "fail")), "finish")
    listing = "\n".join(json.dumps(entry["function"], separators=(",", ":")) for entry in tools)
    prompt = _TOOLS_SYSTEM.format(example=example, tools=listing)
    if secret_names:
        prompt += _TOOL_SECRETS.format(example=secret_names[0], names=", ".join(secret_names))
    return prompt


_TOOL_SECRETS = """

Some values are secret: you cannot see them, but you can pass them to a tool. Write the \
placeholder <secret>{example}</secret> in a text argument, and the tool gets the value. Wherever a \
value would be shown to you, you see its placeholder or [secret] instead. The secrets are: {names}."""


def step_prompt(goal: str, *, step: int, history: Sequence[str], url: str | None = None) -> str:
    """The user turn that goes with each screenshot."""
    lines = [f"Goal: {goal}"]
    if url:
        lines.append(f"Current URL: {url}")
    if history:
        lines.append("Previous steps:")
        lines.extend(history)
    lines.append(f"Step {step}: what is the next action?")
    return "\n".join(lines)
