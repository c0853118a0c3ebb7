"""The error tree, re-exported for users of `agent` (it is defined in tools.errors)."""

from tools.errors import (
    AgentError,
    ExecutorError,
    GroundingError,
    ModelUnavailable,
    ParseError,
    SafetyBlocked,
    TaskError,
)

__all__ = [
    "AgentError",
    "ExecutorError",
    "GroundingError",
    "ModelUnavailable",
    "ParseError",
    "SafetyBlocked",
    "TaskError",
]
