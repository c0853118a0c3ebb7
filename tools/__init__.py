"""What the agent can do: the action union, key names, tool registry and executors.

Executors are imported from their own modules (`tools.browser`, `tools.desktop`) so that
Playwright and pyautogui load only when used.
"""

from tools.actions import ACTION_ADAPTER, Action, BaseAction
from tools.executor import ActionResult, Executor, Geometry, Observation
from tools.registry import ToolAction, ToolRegistry, tool

__all__ = [
    "ACTION_ADAPTER",
    "Action",
    "ActionResult",
    "BaseAction",
    "Executor",
    "Geometry",
    "Observation",
    "ToolAction",
    "ToolRegistry",
    "tool",
]
