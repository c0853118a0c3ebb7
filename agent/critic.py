"""Critics: how likely a proposed action is to move the task forward, from 0 to 1.

`VLMCritic(model)` shows a vision-language model the screenshot with the candidate's point
or box drawn on it, the goal and the action, and asks whether the action moves the task
forward. It never reads the model's prose: the score is P(Yes) / (P(Yes) + P(No)) from the
log-probabilities of the two answers as the reply's first token (model.base.LogprobModel),
so any backend that exposes them can judge: the InternVL3 that plans, or a separate
checkpoint (VisualPRM-8B, say) behind a server that returns `top_logprobs`.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from agent.prompts import CRITIC_PROMPT
from model.base import LogprobModel, Message, VisionLanguageModel
from tools.coordinates import to_model_space
from tools.errors import AgentError

if TYPE_CHECKING:
    from PIL.Image import Image

    from agent.grounding import Box
    from tools.actions import BaseAction
    from tools.executor import Observation

__all__ = ["Critic", "VLMCritic", "mark_image"]

_MARK = (230, 0, 0)


@runtime_checkable
class Critic(Protocol):
    def score(self, goal: str, observation: Observation | None, action: BaseAction,
              mark: Box | tuple[int, int] | None) -> float:
        """How likely `action` is to move the task towards `goal`, in [0, 1]. `mark`: where it
        acts on the observation's screenshot (a grounded box, or a pixel point), if anywhere."""
        ...


class VLMCritic:
    """A Critic that asks a VLM "Yes or No?" and reads the two answers' log-probabilities."""

    def __init__(self, model: VisionLanguageModel, *, answers: tuple[str, str] = ("Yes", "No")) -> None:
        if not isinstance(model, LogprobModel):
            raise AgentError(
                f"{getattr(model, 'name', type(model).__name__)} cannot give next-token log-probabilities, "
                "which a VLMCritic reads: use a local InternVLModel, or OpenAICompatibleModel against a "
                "server that returns top_logprobs (vLLM, SGLang, LMDeploy)"
            )
        self.model = model
        self.answers = answers

    def score(self, goal: str, observation: Observation | None, action: BaseAction,
              mark: Box | tuple[int, int] | None) -> float:
        messages = [Message.user(*self.parts(goal, observation, action, mark))]
        logprobs = self.model.answer_logprobs(messages, list(self.answers))
        yes, no = (logprobs[answer] for answer in self.answers)
        return _two_way_softmax(yes, no)

    def parts(self, goal: str, observation: Observation | None, action: BaseAction,
              mark: Box | tuple[int, int] | None) -> list[str | Image]:
        """What the critic model is shown: the marked screenshot (if any), then the question."""
        shown = action.model_dump(mode="json", exclude_none=True)
        where = ""
        if observation is not None:
            if mark is not None:
                for field in ("x", "y"):  # the drawing shows the place
                    shown.pop(field, None)
                shape = "circle" if isinstance(mark, tuple) else "box"
                where = f" (the red {shape} on the screenshot marks where it acts)"
            shown = _in_model_space(shown, observation.size)
        question = CRITIC_PROMPT.format(goal=goal, action=json.dumps(shown, ensure_ascii=False), where=where)
        if observation is None:
            return [question]
        image = mark_image(observation.image, mark) if mark is not None else observation.image
        return [image, question]


def mark_image(image: Image, mark: Box | tuple[int, int]) -> Image:
    """A copy of `image` with a red box, or a red circle and cross at a point."""
    from PIL import ImageDraw

    marked = image.convert("RGB")
    draw = ImageDraw.Draw(marked)
    width = max(2, round(min(marked.size) / 240))
    if isinstance(mark, tuple):
        x, y = mark
        r = max(8, round(math.hypot(*marked.size) / 80))
        draw.ellipse((x - r, y - r, x + r, y + r), outline=_MARK, width=width)
        draw.line((x - 2 * r, y, x + 2 * r, y), fill=_MARK, width=max(1, width // 2))
        draw.line((x, y - 2 * r, x, y + 2 * r), fill=_MARK, width=max(1, width // 2))
    else:
        draw.rectangle((mark.left, mark.top, mark.right, mark.bottom), outline=_MARK, width=width)
    return marked


def _in_model_space(fields: dict[str, object], size: tuple[int, int]) -> dict[str, object]:
    """Any point left in the action (a drag's ends) in the 0..1000 space the model speaks."""
    out = dict(fields)
    for key in ("start", "end"):
        point = out.get(key)
        if isinstance(point, list) and len(point) == 2:
            out[key] = [to_model_space(point[0], size[0]), to_model_space(point[1], size[1])]
    return out


def _two_way_softmax(yes: float, no: float) -> float:
    """P(yes) among the two answers, from their log-probabilities (either may be -inf)."""
    if yes == no == float("-inf"):
        raise AgentError("the critic model gave neither answer any probability: check its prompt and answers")
    top = max(yes, no)
    p_yes, p_no = math.exp(yes - top), math.exp(no - top)
    return p_yes / (p_yes + p_no)
