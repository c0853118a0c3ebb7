"""The policy: (goal, observation, history) -> one parsed action, through a model.

It owns the conversation format. History goes back to the model as text, one line per
earlier step, with parse errors and failed actions spelled out so the model can
correct itself; only the current screenshot is sent, which keeps every prompt the same
size however long the run.

The model never sees a secret's value: the goal, the page's URL and title, and the history
pass through the `redactor`, which shows each value, in any spelling, as its placeholder
`<secret>name</secret>` (and before any text is clipped, since a clipped value is a prefix
that redaction cannot recognise).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.parse_many import MAX_CALLS_PER_STEP, parse_actions
from agent.parsing import ParseError
from agent.prompts import step_prompt, system_prompt, tools_system_prompt
from agent.redaction import Redactor
from agent.selection import BestOfN, Candidate
from agent.tool_images import shown_tool_images
from agent.trajectory import Step
from model.base import Completion, GenerationConfig, Message, VisionLanguageModel
from tools.actions import GUI_ACTION_NAMES, BaseAction
from tools.coordinates import to_model_space
from tools.executor import Observation
from tools.registry import ToolRegistry

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["HISTORY_TEXT_LIMIT", "Decision", "Policy"]

HISTORY_TEXT_LIMIT = 600  # characters of one call, result or error resent in the history


@dataclass(frozen=True)
class Decision:
    """The model's reply, and the actions parsed from it or the reason it did not parse.
    `action` is the last of `actions` (the only one, in a reply of one call)."""

    text: str
    action: BaseAction | None
    parse_error: str | None
    completion: Completion
    model_ms: float
    parse_ms: float
    actions: tuple[BaseAction, ...] = ()
    candidates: list[dict[str, Any]] | None = None  # Best-of-N: each sampled reply's record (Step.candidates)


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
        redactor: Redactor | None = None,
        screen: bool = True,
        max_calls: int = MAX_CALLS_PER_STEP,
        tool_image: Callable[[str], Image | None] | None = None,
        best_of: BestOfN | None = None,
    ) -> None:
        """`redactor`: the secrets' values, shown to the model as their placeholders (see
        `Secrets.redactor`). With `screen=False` (an agent with no executor) the prompt holds no
        image and lists only the tools, finish and fail. `max_calls`: calls one reply may hold.
        `tool_image`: reads back an image a tool returned, by its file name (agent.tool_images).
        `best_of`: sample several replies and pick one (agent.selection)."""
        self.model = model
        self.registry = registry if registry is not None else ToolRegistry()
        self.generation = generation if generation is not None else GenerationConfig(max_new_tokens=256)
        self.history_limit = history_limit
        self.redactor = redactor if redactor is not None else Redactor()
        self.screen = screen
        self.max_calls = max_calls
        self.tool_image = tool_image
        self.best_of = best_of
        if screen:
            self._system = system_prompt(self.registry.openai_tools(), surface=surface,
                                         secret_names=secret_names)
        else:
            tools = self.registry.openai_tools(include_gui=False, endings=True)
            self._system = tools_system_prompt(tools, secret_names=secret_names)

    @property
    def system(self) -> str:
        return self._system

    def messages(self, goal: str, observation: Observation | None, history: Sequence[Step]) -> list[Message]:
        """The system prompt and the user turn: the screenshot (if there is a screen) and the text."""
        shown = self.redactor.text
        window = history[-self.history_limit:]
        lines = [_history_line(step, shown) for step in window]
        images, lines = shown_tool_images(window, lines, self.tool_image)  # what tools returned, oldest first
        if observation is None:
            text = step_prompt(shown(goal), step=len(history) + 1, history=lines)
            return [Message.system(self._system), Message.user(*images, text)]
        observation = dataclasses.replace(observation, **{  # whatever of it the prompt shows
            field: shown(value) for field in ("url", "title", "window")
            if isinstance(value := getattr(observation, field), str)})
        text = step_prompt(shown(goal), step=len(history) + 1, history=lines, url=observation.url)
        screen = ["Current screen:\n", observation.image, "\n"] if images else [observation.image]
        return [Message.system(self._system), Message.user(*images, *screen, text)]

    def decide(self, goal: str, observation: Observation | None, history: Sequence[Step]) -> Decision:
        """Ask the model (`observation` None: an agent with no screen) and parse every call of its reply."""
        messages = self.messages(goal, observation, history)
        started = time.perf_counter()
        if self.best_of is not None:
            return self._best_of(self.best_of, goal, observation, messages, started)
        completion = self.model.generate(messages, self.generation)
        generated = time.perf_counter()
        try:
            actions = tuple(self._parse(completion.text, observation))
            error = None
        except ParseError as exc:
            actions, error = (), self._parse_error(completion.text, exc.message, observation)
        parsed = time.perf_counter()
        model_ms, parse_ms = (generated - started) * 1e3, (parsed - generated) * 1e3
        action = actions[-1] if actions else None
        return Decision(completion.text, action, error, completion, model_ms, parse_ms, actions)

    def _best_of(self, best_of: BestOfN, goal: str, observation: Observation | None,
                 messages: list[Message], started: float) -> Decision:
        """N sampled replies from one generate, each parsed; the one agent.selection picks decides."""
        completion = self.model.generate(messages, best_of.sampling(self.generation))
        generated = time.perf_counter()
        candidates = []
        for text in completion.candidates:
            try:
                candidates.append(Candidate(text, tuple(self._parse(text, observation))))
            except ParseError as exc:
                error = self._parse_error(text, exc.message, observation)
                candidates.append(Candidate(text, parse_error=error))
        parsed = time.perf_counter()
        # grouping grounds the candidates' targets, and a critic asks its model: model time
        picked, chosen = best_of.choose(self.redactor.text(goal), observation, candidates)
        model_ms = (time.perf_counter() - started - (parsed - generated)) * 1e3
        pick = chosen[picked]
        return Decision(pick.text, pick.action, pick.parse_error, completion, model_ms,
                        (parsed - generated) * 1e3, pick.actions, [c.record() for c in chosen])

    def _parse(self, text: str, observation: Observation | None) -> list[BaseAction]:
        size = observation.size if observation is not None else None
        return parse_actions(text, image_size=size, registry=self.registry, limit=self.max_calls)

    def _parse_error(self, text: str, message: str, observation: Observation | None) -> str:
        """What the model and the record are told about a reply that did not parse, written
        from the reply with its secrets already redacted: a message quotes the reply cut short
        (`short_repr`), and a value cut short is a prefix that redaction afterwards would miss."""
        redacted = self.redactor.text(text)
        if redacted == text:
            return message
        try:
            self._parse(redacted, observation)
        except ParseError as exc:
            return self.redactor.text(exc.message)
        return "the reply holds a secret's value, which breaks it: write <secret>name</secret>, never a value"


def _history_line(step: Step, shown: Callable[[str], str]) -> str:
    """One earlier step as the model sees it: the call and what came of it, each redacted by
    `shown` and then clipped, since every line is resent for `history_limit` steps (the
    trajectory keeps the full text)."""
    def clip(text: str, limit: int = HISTORY_TEXT_LIMIT) -> str:
        text = shown(text)
        return text if len(text) <= limit else text[: limit - 14] + " ...[clipped]"

    feedback = step.feedback()
    if step.calls:  # several calls in one reply: each with what came of it
        return f"{step.index}. " + "; ".join(_call_line(call, clip) for call in step.calls)
    if step.action is None:
        return f"{step.index}. {clip(feedback or '')}"
    action = _action_in_model_space(step.action, step.observation.get("size"))
    call = json.dumps(action, separators=(",", ":"))
    if feedback:
        return f"{step.index}. {clip(call)} -> {clip(feedback)}"
    output = step.result.output if step.result is not None else None
    return f"{step.index}. {clip(call)} -> ok" + (f": {clip(output)}" if output else "")


def _call_line(call: dict[str, Any], clip: Callable[[str], str]) -> str:
    """One call of a reply of several, and its result."""
    text = clip(json.dumps(call.get("action"), separators=(",", ":")))
    result = call.get("result") or {}
    if not result.get("ok"):
        return f"{text} -> failed: {clip(str(result.get('error')))}"
    output = result.get("output")
    return f"{text} -> ok" + (f": {clip(str(output))}" if output else "")


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
