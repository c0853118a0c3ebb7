"""MiniWoB++ episodes on Playwright: seeded pages, the utterance, and the reward read from the page.

It does what the `miniwob` package's own Selenium environment does
(`miniwob/selenium_instance.py`: `Math.seedrandom(seed)`, `core.setDataMode("train")`,
`core.startEpisodeReal()`, `core.getUtterance()`, and the `WOB_*` globals), and one
Chromium serves every episode and every task. The same seed gives the same utterance and the
same page as there (the seed reaches seedrandom as the same JavaScript value).

Reset, two ways. `reload=True`: every episode starts on a fresh load of its page, so nothing
an episode leaves behind reaches the next (about 60 ms a page). `reload=False`: the page is
loaded when the task changes, and otherwise reset in place as the Selenium environment
resets it (the episode in flight ends with reward 0, then the seed and `startEpisodeReal`,
a few milliseconds). In place, a seed still gives the same utterance in every task and the
same task area in 122 of the 130 (checked against fresh loads); the other 8 keep some
widget state (a slider's position, the order of dragged items, a moving target).

The observation is the task area, `#wrap` (160x210 CSS pixels; 375x667 for FlightWoB), at
the top left of the page. The viewport is the window the package's constants name (500x320;
600x800), so pages lay out as they do there: in a viewport of just the task area, the reward
display beside it makes the page wider than the window, and a dialog that takes the focus
scrolls the task out of sight. `scale` is Chromium's device scale factor: a screenshot is
`scale` times larger and sharper with the same layout, it is cropped to the area, and
`Observation.geometry` maps its pixels back to CSS pixels exactly (the area starts at the
page's origin, so the crop moves nothing).

Time limit: core.js ends an episode with reward -1 `core.EPISODE_MAX_TIME` ms after it
starts (a setTimeout armed in `startEpisodeReal`, 10 s unless the task sets another), and
scales a time-proportional reward by `1 - elapsed / EPISODE_MAX_TIME`. `time_limit="task"`
keeps the task's own; a number of seconds replaces it; None lifts it (the largest delay a
setTimeout accepts, about 24.8 days, so the reward is not scaled down either), which is
what a model, slower than the humans the limits were set for, needs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from tasks.checks import CheckResult
from tasks.miniwob.catalog import html_root, is_flight, task_path
from tools.browser import BrowserExecutor
from tools.browser.executor import JPEG_QUALITY
from tools.errors import ExecutorError, TaskError
from tools.executor import Geometry, Observation

if TYPE_CHECKING:
    from playwright.sync_api import Page


__all__ = [
    "DEFAULT_SCALE", "FLIGHT_AREA", "NO_LIMIT_MS", "TASK_AREA", "Episode", "MiniWoBEnv", "Reward",
    "TaskAreaBrowser", "TimeLimit",
]

log = logging.getLogger(__name__)

TASK_AREA = (160, 210)  # CSS pixels of #wrap (miniwob.constants.TASK_WIDTH, TASK_HEIGHT)
FLIGHT_AREA = (375, 667)  # FLIGHT_TASK_WIDTH, FLIGHT_TASK_HEIGHT
WINDOW = (500, 320)  # WINDOW_WIDTH, WINDOW_HEIGHT
FLIGHT_WINDOW = (600, 800)  # FLIGHT_WINDOW_WIDTH, FLIGHT_WINDOW_HEIGHT
DEFAULT_SCALE = 3
NO_LIMIT_MS = 2**31 - 1  # setTimeout's largest delay; a larger one fires at once
READY_TIMEOUT_MS = 10_000  # a FlightWoB page loads its site into an iframe before it is ready

TimeLimit = float | None | Literal["task"]

# Some tasks' getUtterance returns {utterance, fields}.
_UTTERANCE = """() => { const u = core.getUtterance(); return typeof u === "string" ? u : u.utterance; }"""
# Seed, data mode and limit, then the episode: what the Selenium environment's begin_task does.
_START = """([seed, mode, limitMs, stop]) => {
  if (stop) core.endEpisode(0);  // the episode in flight, if any, ends with reward 0
  Math.seedrandom(seed);
  core.setDataMode(mode);
  if (core.ownMaxTime === undefined) core.ownMaxTime = core.EPISODE_MAX_TIME;  // the task's own
  core.EPISODE_MAX_TIME = limitMs === null ? core.ownMaxTime : limitMs;
  core.startEpisodeReal();
  return {ready: WOB_TASK_READY, limitMs: core.EPISODE_MAX_TIME,
          utterance: WOB_TASK_READY ? (UTTERANCE)() : null};
}""".replace("UTTERANCE", _UTTERANCE)
_REWARD = """() => ({done: WOB_DONE_GLOBAL, reward: WOB_REWARD_GLOBAL, raw: WOB_RAW_REWARD_GLOBAL,
                    reason: WOB_REWARD_REASON === null || WOB_REWARD_REASON === undefined
                            ? null : String(WOB_REWARD_REASON)})"""


@dataclass(frozen=True)
class Reward:
    """What the page says of the episode. `reward` may be scaled down by the time taken;
    `raw_reward` is not. Success is a raw reward above 0, as MiniWoB++'s papers count it."""

    done: bool
    reward: float
    raw_reward: float
    reason: str | None = None

    @property
    def success(self) -> bool:
        return self.done and self.raw_reward > 0

    def check(self) -> CheckResult:
        """The reward as a success check, for a run's record."""
        if not self.done:
            return CheckResult(False, "the episode had not ended (no reward yet)", "miniwob raw reward > 0")
        why = f"raw reward {self.raw_reward:g} (reward {self.reward:.3g})"
        why += f": {self.reason}" if self.reason else ""
        return CheckResult(self.success, why, "miniwob raw reward > 0")


@dataclass(frozen=True)
class Episode:
    """One started episode: the task, its seed and utterance, and the executor showing it."""

    task: str
    seed: int | str
    utterance: str
    executor: TaskAreaBrowser
    scale: float  # screenshot pixels per CSS pixel
    time_limit_ms: int
    started: float  # time.monotonic() when the episode started

    @property
    def page(self) -> Page:
        return self.executor.page

    @property
    def geometry(self) -> Geometry:
        """Screenshot pixels <-> CSS pixels, as the executor's observations map them."""
        return self.executor.area_geometry()

    def observe(self) -> Observation:
        return self.executor.observe()

    def reward(self) -> Reward:
        """The reward globals, read from the page now."""
        from playwright.sync_api import Error

        try:
            found: dict[str, Any] = self.page.evaluate(_REWARD)
        except Error as exc:  # the page navigated away or crashed: no reward can be read
            return Reward(False, 0.0, 0.0, f"the task page could not be read ({str(exc).splitlines()[0]})")
        return Reward(bool(found["done"]), float(found["reward"] or 0), float(found["raw"] or 0),
                      found["reason"])


class TaskAreaBrowser(BrowserExecutor):
    """A BrowserExecutor whose screenshots show only the task area, at the viewport's origin.

    Chromium lays the page out in the whole `window` and captures just the `area` (a clip, so
    a screenshot costs what the area's pixels cost). `viewport` is then the area: the CSS
    pixels that a screenshot covers, through which the executor maps screenshot pixels to
    input coordinates, at the same scale and with no offset, so clicks, `element_at` and the
    grounders need nothing else."""

    def __init__(self, *, area: tuple[int, int], window: tuple[int, int], device_scale_factor: float = 1,
                 **options: Any) -> None:
        if area[0] > window[0] or area[1] > window[1]:
            raise ValueError(f"the task area {area} must fit in the window {window}")
        super().__init__(viewport=window, device_scale_factor=device_scale_factor, **options)
        self.window = window
        self.viewport = area
        self.area_size = (round(area[0] * device_scale_factor), round(area[1] * device_scale_factor))

    def _screenshot(self, page: Page) -> bytes:
        clip = {"x": 0, "y": 0, "width": self.viewport[0], "height": self.viewport[1]}
        if self.capture == "jpeg":
            return page.screenshot(type="jpeg", quality=JPEG_QUALITY, caret="initial", clip=clip)  # type: ignore[arg-type]
        return page.screenshot(type="png", caret="initial", clip=clip)  # type: ignore[arg-type]

    def observe(self) -> Observation:
        observation = super().observe()
        if observation.size != self.area_size:  # BrowserExecutor no longer captures through _screenshot
            raise ExecutorError(f"the screenshot is {observation.size}, not the task area's "
                                f"{self.area_size}: TaskAreaBrowser needs updating to BrowserExecutor's "
                                "capture")
        return observation

    def area_geometry(self) -> Geometry:
        return Geometry(self.area_size, self.viewport)


class MiniWoBEnv:
    """Runs MiniWoB++ episodes in one reused Chromium (a second, taller one for FlightWoB).

    scale            device scale factor: the screenshot's pixels per CSS pixel (default 3: 480x630)
    headless         run Chromium without a window
    reload           True: a fresh load of the page for every episode; False: reset in place,
                     as the Selenium environment does (see the module docstring)
    settle           wait for the page to settle after each action (the executor's default); a
                     policy that reads the page to decide can turn it off and wait for what it needs
    data_mode        "train" (what the Selenium environment sets) or "test", for the tasks that split
    """

    def __init__(
        self,
        *,
        scale: float = DEFAULT_SCALE,
        headless: bool = True,
        executable_path: str | None = None,
        reload: bool = True,
        settle: bool = True,
        capture: Literal["png", "jpeg"] = "jpeg",
        data_mode: str = "train",
    ) -> None:
        if scale <= 0:
            raise ValueError("scale must be positive")
        self.scale = scale
        self.reload = reload
        self.data_mode = data_mode
        self._options: dict[str, Any] = {"headless": headless, "executable_path": executable_path,
                                         "capture": capture, "device_scale_factor": scale}
        if not settle:
            self._options["settle_max_ms"] = 0.0
        self._executors: dict[tuple[int, int], TaskAreaBrowser] = {}
        self._server: contextlib.ExitStack | None = None
        self._server_url = ""

    def __enter__(self) -> MiniWoBEnv:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every browser and the HTTP server. Safe to call more than once."""
        for executor in self._executors.values():
            executor.close()
        self._executors.clear()
        if self._server is not None:
            self._server.close()
            self._server = None

    def executor(self, task: str) -> TaskAreaBrowser:
        """The browser for `task` (one for MiniWoB, one for FlightWoB), started on first use."""
        area, window = (FLIGHT_AREA, FLIGHT_WINDOW) if is_flight(task) else (TASK_AREA, WINDOW)
        if area not in self._executors:
            self._executors[area] = TaskAreaBrowser(area=area, window=window, **self._options)
        return self._executors[area]

    def url(self, task: str) -> str:
        path = task_path(task)
        if not is_flight(task):
            return path.as_uri()
        if self._server is None:  # FlightWoB loads its site into an iframe, which file:// forbids
            from tasks.serve import serve_folder

            self._server = contextlib.ExitStack()
            self._server_url = self._server.enter_context(serve_folder(html_root()))
        return f"{self._server_url}/{path.relative_to(html_root()).as_posix()}"

    def reset(self, task: str, seed: int | str, *, time_limit: TimeLimit = "task") -> Episode:
        """Load `task`'s page afresh, seed it and start an episode; TaskError for an unknown task,
        ExecutorError if the page does not load or start."""
        from playwright.sync_api import Error

        url = self.url(task)
        executor = self.executor(task)
        limit_ms = _limit_ms(time_limit)
        page = executor.page
        try:
            in_place = not self.reload and page.url == url
            if not in_place:
                page.goto(url, wait_until="load")
            started = page.evaluate(_START, [seed, self.data_mode, limit_ms, in_place])
            if not started["ready"]:  # FlightWoB: its site loads into an iframe first
                page.wait_for_function("() => WOB_TASK_READY === true", timeout=READY_TIMEOUT_MS)
                started["utterance"] = page.evaluate(_UTTERANCE)
            utterance = str(started["utterance"])
        except Error as exc:
            why = str(exc).splitlines()[0]
            raise ExecutorError(f"MiniWoB task {task} did not start at {url}: {why}") from exc
        log.debug("%s seed %s: %s", task, json.dumps(seed), utterance)
        return Episode(task, seed, utterance, executor, self.scale, int(started["limitMs"]), time.monotonic())


def _limit_ms(time_limit: TimeLimit) -> int | None:
    """The EPISODE_MAX_TIME to set, or None to keep the task's own."""
    if time_limit == "task":
        return None
    if time_limit is None:
        return NO_LIMIT_MS
    if isinstance(time_limit, str) or not 0 < time_limit * 1000 <= NO_LIMIT_MS:
        raise TaskError(f"time_limit must be 'task', None, or seconds in (0, {NO_LIMIT_MS // 1000}], "
                        f"not {time_limit!r}")
    return round(time_limit * 1000)
