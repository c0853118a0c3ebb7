"""MiniWoB++ episodes per minute: our Playwright stack against the `miniwob` package's own
Selenium gymnasium environment, with the same policy and the same actions, in one run.

The policy is the reference one (it reads the page to decide) on click-button and
enter-text, `--episodes` seeds each (0, 1, ...). Both stacks play the same episodes: the
seeds give the same utterances in both, and the bench checks that they do. The actions are
the same: a click at the target's centre in the task area's coordinates, and typing.

    ours, reload          every episode on a fresh load of its page (MiniWoBEnv(reload=True):
                          the model policy's default, so that no state leaks between episodes)
    ours, in-page         the page reset in place, as the Selenium environment resets it and as
                          `bench miniwob --policy reference` runs it; reloaded when the task changes
    ours, in-page + shot  the same, with a screenshot of the task area before each action
    selenium              gymnasium.make("miniwob/<task>-v1"): its reset and step, which
                          return a screenshot and the DOM after each action (as shipped)
    selenium, no shot     the same with reset(options={"record_screenshots": False})

"vs selenium" compares each row with the Selenium environment as shipped; "same work" with
the Selenium row that does the same work (a screenshot per step, or none). The goal is 5x for
the reference policy as `bench miniwob` runs it (in-page reset, no screenshots: it reads the
page) against the environment as shipped. Needs Debian's chromedriver (`apt-get install -y
chromium-driver`, the same version as chromium); without it, our rows alone are printed.

    python bench/miniwob_throughput.py [--episodes 50] [--tasks click-button,enter-text]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from agent.bench import run_episode
from tasks.miniwob import MiniWoBEnv

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@dataclass
class Row:
    stack: str
    task: str
    seconds: list[float]
    successes: int
    utterances: list[str]
    shots: bool

    @property
    def per_minute(self) -> float:
        return 60 * len(self.seconds) / sum(self.seconds)


def ours(task: str, episodes: int, *, reload: bool, observe: bool) -> Row:
    """Reference episodes through run_episode (one warm-up episode first, not counted)."""
    with MiniWoBEnv(reload=reload, settle=False) as env:
        run_episode(env, task, 10_000, policy="reference")  # starts Chromium and loads the page
        records = [run_episode(env, task, seed, policy="reference", observe=observe)
                   for seed in range(episodes)]
    name = "ours, " + ("reload" if reload else "in-page") + (" + shot" if observe else "")
    return Row(name, task, [r.seconds for r in records], sum(r.success for r in records),
               [r.utterance for r in records], observe)


def selenium(task: str, episodes: int, *, shots: bool) -> Row:
    """The Selenium environment with the same decisions: a click at the element's centre
    (CLICK_COORDS, task-area pixels) found in the observation's DOM, and TYPE_TEXT."""
    import gymnasium
    import miniwob
    from miniwob.action import ActionTypes

    gymnasium.register_envs(miniwob)
    env = gymnasium.make(f"miniwob/{task}-v1")
    base = env.unwrapped

    def center(obs: dict[str, Any], tag: str, text: str | None = None) -> list[float]:
        for e in obs["dom_elements"]:
            if e["tag"] == tag and (text is None or e["text"] == text):
                return [float(e["left"][0] + e["width"][0] / 2), float(e["top"][0] + e["height"][0] / 2)]
        raise RuntimeError(f"no {tag} {text!r} in {task}")

    def click(obs: dict[str, Any], tag: str, text: str | None = None) -> Any:
        return base.create_action(ActionTypes.CLICK_COORDS, coords=center(obs, tag, text))

    def play(obs: dict[str, Any]) -> tuple[dict[str, Any], float]:
        quoted = obs["utterance"].split('"')[1]
        plan: list[Callable[[dict[str, Any]], Any]]
        if task == "click-button":
            plan = [lambda o: click(o, "button", quoted)]
        else:
            plan = [lambda o: click(o, "input_text"),
                    lambda o: base.create_action(ActionTypes.TYPE_TEXT, text=quoted),
                    lambda o: click(o, "button", "Submit")]
        info: dict[str, Any] = {"raw_reward": 0.0}
        for decide in plan:
            obs, _, done, _, info = env.step(decide(obs))
            if done:
                break
        return obs, float(info.get("raw_reward", 0.0))

    try:
        options = {"record_screenshots": shots}
        play(env.reset(seed=10_000, options=options)[0])  # warm-up, not counted
        seconds, successes, utterances = [], 0, []
        for seed in range(episodes):
            start = time.perf_counter()
            obs, _ = env.reset(seed=seed, options=options)
            utterances.append(obs["utterance"])
            _, raw = play(obs)
            seconds.append(time.perf_counter() - start)
            successes += raw > 0
    finally:
        env.close()
    return Row("selenium" + ("" if shots else ", no shot"), task, seconds, successes, utterances, shots)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--tasks", default="click-button,enter-text")
    args = parser.parse_args()
    tasks = args.tasks.split(",")
    have_driver = Path(CHROMEDRIVER).exists() or shutil.which("chromedriver") is not None
    os.environ.setdefault("MINIWOB_CHROME_BINARY", CHROMIUM)
    driver = CHROMEDRIVER if Path(CHROMEDRIVER).exists() else "chromedriver"
    os.environ.setdefault("MINIWOB_CHROMEDRIVER", driver)
    rows: list[Row] = []
    for task in tasks:
        if have_driver:
            rows += [selenium(task, args.episodes, shots=True), selenium(task, args.episodes, shots=False)]
        rows += [ours(task, args.episodes, reload=True, observe=False),
                 ours(task, args.episodes, reload=False, observe=False),
                 ours(task, args.episodes, reload=False, observe=True)]
    if not have_driver:
        print("chromedriver not found: apt-get install -y chromium-driver for the Selenium baseline\n")
    report(rows)


def report(rows: list[Row]) -> None:
    shipped = {r.task: r for r in rows if r.stack == "selenium"}
    same_work = {(r.task, r.shots): r for r in rows if r.stack.startswith("selenium")}
    print(f"{'task':14s} {'stack':22s} {'episodes':>8s} {'success':>8s} {'ms/episode':>11s} "
          f"{'median ms':>10s} {'episodes/min':>12s} {'vs selenium':>11s} {'same work':>10s}")
    for row in rows:
        ratios = [f"{row.per_minute / base.per_minute:.1f}x" if base is not None and base is not row else ""
                  for base in (shipped.get(row.task), same_work.get((row.task, row.shots)))]
        print(f"{row.task:14s} {row.stack:22s} {len(row.seconds):8d} {row.successes:8d} "
              f"{1000 * statistics.fmean(row.seconds):11.1f} {1000 * statistics.median(row.seconds):10.1f} "
              f"{row.per_minute:12.0f} {ratios[0]:>11s} {ratios[1]:>10s}")
    for task in dict.fromkeys(r.task for r in rows):
        said = {tuple(r.utterances) for r in rows if r.task == task}
        print(f"{task}: the same {len(next(iter(said)))} utterances in every stack" if len(said) == 1
              else f"{task}: the stacks played different episodes (utterances differ)")
    print()
    for ours_stack, theirs_stack, what in (
        ("ours, in-page", "selenium", "bench miniwob --policy reference vs the Selenium env as shipped"),
        ("ours, in-page", "selenium, no shot", "the same work, no screenshots on either side"),
        ("ours, in-page + shot", "selenium", "the same work, a screenshot per step on both sides"),
        ("ours, reload", "selenium", "a fresh page load per episode (reload=True) vs the Selenium env"),
    ):
        ours_rows = [r for r in rows if r.stack == ours_stack]
        theirs = [r for r in rows if r.stack == theirs_stack]
        if ours_rows and theirs:
            mine, base = _rate(ours_rows), _rate(theirs)
            print(f"{what}: {mine:.0f} vs {base:.0f} episodes/min, {mine / base:.1f}x")


def _rate(rows: list[Row]) -> float:
    return 60 * sum(len(r.seconds) for r in rows) / sum(sum(r.seconds) for r in rows)


if __name__ == "__main__":
    main()
