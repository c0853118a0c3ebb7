"""Replay without the model: a recorded run's step time against its compiled script's, same run.

The recording is the agent on the replay test app (tests/pages/replay) with the model replaced
by a scripted one (tests/helpers/replay_shop.py), so its step time is only our own loop's:
observe, parse, ground (DOM), act, settle, record. The replay is `ScriptRunner` on the
compiled script with the embedded grounders (DOM, then OCR): no model at all. For each, the
median step time; for the replay, the median time its grounding took and that time's share of
the whole. Then the app is changed (moved, resized, restyled, "Sign in" relabelled "Log in",
the cart button renamed and moved, at device scale 2): the replay heals (crop, then a scripted
model grounder standing in for InternVL3), writes the healed steps back, and replays clean.
Last, the crop-match scores behind MATCH_THRESHOLD: each recorded crop on its own page (as it
was, and changed at scale 2) and its best score on every other page.

    python bench/replay.py                # about 2 minutes on an idle machine
    python bench/replay.py --repeats 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.grounding.cascade import auto_grounder
from agent.grounding.dom import DOMGrounder
from agent.loop import Agent
from agent.replay import MATCH_THRESHOLD, compile_run, crops_folder
from agent.replay.crops import load_crop, match_crop
from agent.script import Script, ScriptRunner
from agent.trajectory import Step, Trajectory
from model.scripted import ScriptedModel
from tasks.serve import serve_folder
from tests.helpers.replay_shop import (
    EMAIL,
    GOAL,
    PASSWORD,
    change_app,
    copy_app,
    healing_model,
    shop_replies,
)
from tools.browser import BrowserExecutor


def record(base: str, task: Path, runs: Path) -> tuple[Trajectory, list[float]]:
    """The scripted agent's run, and each step's wall time in ms (between the steps' hand-overs)."""
    url = f"{base}/login.html"
    with BrowserExecutor(start_url=url) as browser:
        agent = Agent(ScriptedModel(shop_replies(browser)), browser, max_steps=20, runs_dir=runs,
                      grounder=DOMGrounder(browser), secrets={"password": PASSWORD})
        times, t0 = [], time.perf_counter()
        for _ in agent.steps(GOAL, start={"url": url, "task": str(task)}):
            now = time.perf_counter()
            times.append((now - t0) * 1e3)
            t0 = now
        assert agent.trajectory is not None and agent.trajectory.outcome == "finished"
        return agent.trajectory, times


def replay(app: Path, script: Path, runs: Path, *, scale: float = 1, heal: bool = False,
           write_back: bool = False) -> Trajectory:
    loaded = Script.load(script, variables={"email": EMAIL})
    with serve_folder(app) as base, BrowserExecutor(start_url=f"{base}/login.html",
                                                    device_scale_factor=scale) as browser:
        runner = ScriptRunner(browser, auto_grounder(browser), runs_dir=runs, secrets={"password": PASSWORD},
                              heal_with=healing_model(browser, "#signin") if heal else None,
                              write_back=write_back)
        trajectory = runner.run(loaded)
    if trajectory.outcome != "finished":
        raise SystemExit(f"replay failed: {trajectory.answer}")
    return trajectory


def _ground_ms(step: Step) -> float:
    return sum(float(r.get("ms", 0.0)) for r in (step.replay or {}).values())


def _row(name: str, steps: int, step_ms: Sequence[float], ground_ms: Sequence[float] | None) -> str:
    median = statistics.median(step_ms)
    if ground_ms is None:
        return f"| {name} | {steps} | {median:.0f} | n/a | n/a |"
    share = sum(ground_ms) / sum(step_ms)
    return f"| {name} | {steps} | {median:.0f} | {statistics.median(ground_ms):.0f} | {share:.0%} |"


def _heal_table(title: str, trajectory: Trajectory) -> None:
    print(f"\n{title}\n\n| step | target | found | by | score | ground ms |\n|---|---|---|---|---|---|")
    for step in Trajectory.read_steps(trajectory.run_dir):
        for target, record in (step.replay or {}).items():
            score = record.get("score")
            print(f"| {step.index} | {target} | {record.get('found')} | {record.get('by')} | "
                  f"{'' if score is None else f'{score:.2f}'} | {record.get('ms', 0):.0f} |")


def thresholds(script: Path, runs: dict[str, Trajectory]) -> None:
    """Each crop's match score on its own page and its best on the other pages, per run."""
    crops = sorted(crops_folder(script).glob("*.png"))
    screens: list[tuple[str, str, Any, float]] = []  # (run, page, image, scale)
    from PIL import Image

    for name, trajectory in runs.items():
        for step in Trajectory.read_steps(trajectory.run_dir):
            geometry = step.observation["geometry"]
            with Image.open(trajectory.run_dir / str(step.screenshot)) as image:
                screens.append((name, str(step.index), image.convert("RGB"),
                                geometry["screenshot_size"][0] / geometry["device_size"][0]))
    print(f"\nCrop match scores (TM_CCOEFF_NORMED over {len(crops)} crops; MATCH_THRESHOLD = "
          f"{MATCH_THRESHOLD})\n")
    print("| crop | " + " | ".join(f"own page, {name}" for name in runs) + " | best on another page |")
    print("|---|" + "---|" * (len(runs) + 1))
    own_scores: dict[str, list[float]] = {name: [] for name in runs}
    others: list[float] = []
    match_ms: list[float] = []
    for crop_path in crops:
        crop = load_crop(crop_path)
        step_number = str(int(crop_path.name.split("-")[0]))
        cells, best_other = [], -1.0
        for name, index, image, scale in screens:
            t0 = time.perf_counter()
            found = match_crop(image, crop, scale)
            match_ms.append((time.perf_counter() - t0) * 1e3)
            score = found.score if found is not None else -1.0
            if index == step_number:
                cells.append(f"{score:.2f}")
                own_scores[name].append(score)
            elif not _same_page(index, step_number):
                best_other = max(best_other, score)
        others.append(best_other)
        print(f"| {crop_path.name} | " + " | ".join(cells) + f" | {best_other:.2f} |")
    print(f"\nhighest score of a crop on a page without its control: {max(others):.2f}; "
          + "; ".join(f"lowest on its own page, {name}: {min(s):.2f}" for name, s in own_scores.items())
          + f"; median match time {statistics.median(match_ms):.0f} ms")


# The compiled script's steps by the page they act on: login, shop, item, shop again, cart.
PAGES = ({"1", "2", "3"}, {"4", "5", "7"}, {"6"}, {"8"})


def _same_page(index: str, other: str) -> bool:
    """Whether two steps act on one page (where a crop's control is shown: not a negative)."""
    return any({index, other} <= page for page in PAGES)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2, help="recordings and replays of each kind")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench-replay-"))
    try:
        task = copy_app(root)
        app = root / "app"
        recorded_ms: list[float] = []
        recorded: Trajectory | None = None
        with serve_folder(app) as base:
            for _ in range(args.repeats):
                recorded, times = record(base, task, root / "runs")
                recorded_ms += times
        assert recorded is not None
        script = root / "out" / "shop.yaml"
        compiled = compile_run(recorded.run_dir, script, variables={"email": EMAIL})
        replay_ms: list[float] = []
        ground_ms: list[float] = []
        plain: Trajectory | None = None
        for _ in range(args.repeats):
            plain = replay(app, script, root / "replays")
            for step in Trajectory.read_steps(plain.run_dir):
                replay_ms.append(step.timings_ms["step"])
                ground_ms.append(_ground_ms(step))
        assert plain is not None
        load = os.getloadavg()[0]
        print(f"\nReplay vs recording, {args.repeats} runs each, 1280x720 headless Chromium; load average "
              f"{load:.1f} on {os.cpu_count()} CPUs\n")
        print("| run | steps per run | median step ms | median grounding ms | grounding share |")
        print("|---|---|---|---|---|")
        print(_row("recorded: agent + scripted model", len(recorded), recorded_ms, None))
        print(_row("replay: compiled script, DOM -> OCR, no model", compiled.steps, replay_ms, ground_ms))
        print(f"\nreplay / recording median step: "
              f"{statistics.median(replay_ms) / statistics.median(recorded_ms):.2f}")
        _heal_table("Replay of the unchanged app (scale 1, no model)", plain)
        original = root / "original" / script.name  # the crops as recorded, for the scores below
        original.parent.mkdir()
        shutil.copy(script, original)
        shutil.copytree(crops_folder(script), crops_folder(original))
        change_app(app)
        healed = replay(app, script, root / "replays", scale=2, heal=True, write_back=True)
        _heal_table("Replay of the changed app (scale 2; crop, then a scripted model grounder; --write-back)",
                    healed)
        clean = replay(app, script, root / "replays", scale=2)
        _heal_table("Replay of the changed app after --write-back (scale 2, no model)", clean)
        print("\nThe script after --write-back:\n")
        print(script.read_text(encoding="utf-8"))
        thresholds(original, {"unchanged, scale 1": plain, "changed, scale 2": healed})
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
