"""Grounding with a vision-language model: InternVL's own grounding prompt, answered in 0..1000."""

from __future__ import annotations

from agent.grounding import Box
from agent.prompts import GROUNDING_PROMPT
from model.base import GenerationConfig, Message, VisionLanguageModel
from tools.coordinates import parse_box
from tools.errors import GroundingError, ParseError
from tools.executor import Observation

__all__ = ["ModelGrounder"]


class ModelGrounder:
    """Grounds with a vision-language model and InternVL's grounding prompt, greedily."""

    def __init__(self, model: VisionLanguageModel, *, max_new_tokens: int = 48) -> None:
        self.model = model
        self.generation = GenerationConfig(max_new_tokens=max_new_tokens)

    def locate(self, observation: Observation, description: str) -> Box:
        prompt = Message.user(observation.image, GROUNDING_PROMPT.format(description))
        answer = self.model.generate([prompt], self.generation).text
        try:
            return Box(*parse_box(answer, image_size=observation.size))
        except ParseError:
            raise GroundingError(
                f"could not find {description!r} on the screen (the grounding answer was {answer[:80]!r}): "
                "describe it another way, or give x and y"
            ) from None
