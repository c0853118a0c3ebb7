"""The policy: (goal, observation, history) -> one parsed action, through a model.

It owns the conversation format. History goes back to the model as text, one line per
earlier step, with parse errors and failed actions spelled out so the model can
correct itself; only the current screenshot is sent, which keeps every prompt the same
size however long the run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

from agent.parsing import ParseError, parse_action
from agent.prompts import step_prompt, system_prompt
from agent.trajectory import Step
from model.base import Completion, GenerationConfig, Message, VisionLanguageModel
from tools.actions import GUI_ACTION_NAMES, BaseAction
from tools.coordinates import to_model_space
from tools.executor import Observation
from tools.registry import ToolRegistry

__all__ = ["HISTORY_TEXT_LIMIT", "Decision", "Policy"]

HISTORY_TEXT_LIMIT = 600  # characters of one call, result or error resent in the history


@dataclass(frozen=True)
class Decision:
    """The model's reply, and the action parsed from it or the reason it did not parse."""

    text: str
    action: BaseAction | None
    parse_error: str | None
    completion: Completion
    model_ms: float
    parse_ms: float


class Policy:
    def __init__(
        self,
        model: VisionLanguageModel,
        *,
        registry: ToolRegistry | None = None,
        generation: GenerationConfig | None = None,
        history_limit: int = 10,
        surface: str = "web browser",
        secret_names: Sequence[str] = (),
    ) -> None:
        self.model = model
        self.registry = registry if registry is not None else ToolRegistry()
        self.generation = generation if generation is not None else GenerationConfig(max_new_tokens=256)
        self.history_limit = history_limit
        self._system = system_prompt(self.registry.openai_tools(), surface=surface, secret_names=secret_names)

    @property
    def system(self) -> str:
        return self._system

    def messages(self, goal: str, observation: Observation, history: Sequence[Step]) -> list[Message]:
        lines = [_history_line(step) for step in history[-self.history_limit:]]
        text = step_prompt(goal, step=len(history) + 1, history=lines, url=observation.url)
        return [Message.system(self._system), Message.user(observation.image, text)]

    def decide(self, goal: str, observation: Observation, history: Sequence[Step]) -> Decision:
        messages = self.messages(goal, observation, history)
        started = time.perf_counter()
        completion = self.model.generate(messages, self.generation)
        generated = time.perf_counter()
        try:
            action: BaseAction | None = parse_action(
                completion.text, image_size=observation.size, registry=self.registry
            )
            error = None
        except ParseError as exc:
            action, error = None, exc.message
        parsed = time.perf_counter()
        model_ms, parse_ms = (generated - started) * 1e3, (parsed - generated) * 1e3
        return Decision(completion.text, action, error, completion, model_ms, parse_ms)


def _history_line(step: Step) -> str:
    """One earlier step as the model sees it: the call and what came of it, clipped, since
    every line is resent for `history_limit` steps (the trajectory keeps the full text)."""
    feedback = step.feedback()
    if step.action is None:
        return f"{step.index}. {_clip(feedback or '')}"
    shown = _action_in_model_space(step.action, step.observation.get("size"))
    call = json.dumps(shown, separators=(",", ":"))
    if feedback:
        return f"{step.index}. {_clip(call)} -> {_clip(feedback)}"
    output = step.result.output if step.result is not None else None
    return f"{step.index}. {_clip(call)} -> ok" + (f": {_clip(output)}" if output else "")


def _clip(text: str, limit: int = HISTORY_TEXT_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 14] + " ...[clipped]"


def _action_in_model_space(action: dict[str, object], size: object) -> dict[str, object]:
    """Show earlier GUI actions in the 0..1000 space the model speaks, not in pixels."""
    if action.get("action") not in GUI_ACTION_NAMES:
        return action  # a registered tool's own x/y arguments are not screen points
    if not (isinstance(size, list | tuple) and len(size) == 2):
        return action
    width, height = int(size[0]), int(size[1])
    out = dict(action)
    for key, length in (("x", width), ("y", height)):
        if isinstance(out.get(key), int):
            out[key] = to_model_space(out[key], length)
    for key in ("start", "end"):
        point = out.get(key)
        if isinstance(point, list | tuple) and len(point) == 2:
            out[key] = [to_model_space(point[0], width), to_model_space(point[1], height)]
    return out
