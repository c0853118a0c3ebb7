"""Vision-language model backends. The transformers backend is `model.internvl`
(imported on demand: it brings torch)."""

from model.base import Completion, GenerationConfig, Message, VisionLanguageModel
from model.scripted import ScriptedModel

__all__ = ["Completion", "GenerationConfig", "Message", "ScriptedModel", "VisionLanguageModel"]
