"""The one error tree of internvl-agent.

It lives in `tools`, the lowest layer, so that `tools`, `model` and `agent` can all
raise from it without importing upward.
Import errors from here, and only from here: `from tools.errors import AgentError`.

    AgentError                 anything this framework raises on purpose
    ├── ParseError             model output that is not a valid action (fed back to the model)
    ├── GroundingError         a described target could not be found on the screen
    ├── ExecutorError          the browser or desktop could not be observed or driven
    ├── SafetyBlocked          a safety policy refused an action
    ├── ModelUnavailable       a model cannot be loaded or reached
    └── TaskError              a task file or task definition is invalid

Every message says what went wrong and what to do next.
"""

from __future__ import annotations

__all__ = [
    "AgentError",
    "ExecutorError",
    "GroundingError",
    "ModelUnavailable",
    "ParseError",
    "SafetyBlocked",
    "TaskError",
]


class AgentError(Exception):
    """Base of every error that internvl-agent raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ParseError(AgentError):
    """The model's text is not a valid action. The message is written for the model."""


class GroundingError(AgentError):
    """A target described in words could not be located on the screenshot."""


class ExecutorError(AgentError):
    """The executor could not observe or act (no display, browser gone, bad action)."""


class SafetyBlocked(AgentError):
    """A safety policy refused an action."""


class ModelUnavailable(AgentError):
    """A model checkpoint cannot be loaded, or a model server cannot be reached."""


class TaskError(AgentError):
    """A task file or task definition is invalid."""
