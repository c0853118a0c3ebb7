"""MiniWoB++ on Playwright: the task pages of the `miniwob` package, seeded episodes whose
reward is read from the page, and a reference policy that solves a subset through GUI actions.

    with MiniWoBEnv() as env:
        episode = env.reset("click-button", seed=0)      # episode.utterance: 'Click on the "ok" button.'
        episode.executor.execute(...)                     # a BrowserExecutor showing the 160x210 task area
        episode.reward()                                  # Reward(done, reward, raw_reward, reason)

The runs that record and time episodes (the reference, grounded and model policies) are in
agent/bench/, since they use the agent's grounders and loop.
"""

from tasks.miniwob.catalog import FLIGHT_PREFIX, html_root, is_flight, resolve_tasks, task_names, task_path
from tasks.miniwob.env import (
    DEFAULT_SCALE,
    FLIGHT_AREA,
    NO_LIMIT_MS,
    TASK_AREA,
    Episode,
    MiniWoBEnv,
    Reward,
    TaskAreaBrowser,
    TimeLimit,
)
from tasks.miniwob.reference import REFERENCE_TASKS, PageReader, ReferenceFailed, reference_actions

__all__ = [
    "DEFAULT_SCALE", "FLIGHT_AREA", "FLIGHT_PREFIX", "NO_LIMIT_MS", "REFERENCE_TASKS", "TASK_AREA", "Episode",
    "MiniWoBEnv", "PageReader", "ReferenceFailed", "Reward", "TaskAreaBrowser", "TimeLimit", "html_root",
    "is_flight", "reference_actions", "resolve_tasks", "task_names", "task_path",
]
