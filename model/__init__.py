"""Vision-language model backends. The transformers backend is `model.internvl`
(imported on demand: it brings torch)."""

from model.base import Completion, GenerationConfig, LogprobModel, Message, VisionLanguageModel
from model.scripted import ScriptedModel

__all__ = [
    "Completion", "GenerationConfig", "LogprobModel", "Message", "ScriptedModel", "VisionLanguageModel",
]
