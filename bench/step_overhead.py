"""Per-step overhead of the agent loop without a model: observe + execute + record.

A step here is what the agent does around a model call: `BrowserExecutor.observe()`
(capture), `execute()` of a click or of typing (act, then settle), and
`Trajectory.append()` of the step and its screenshot (record). It runs on a local page
served by http.server on 127.0.0.1, in headless Chromium at 1280x720, and breaks each
step's time into those four columns, and the floor:

    settle   the wait after the action until the page is settled (or the fixed sleep);
             with settle detection it includes the screenshot taken ahead while waiting
    capture  observe(): checking that capture is still current (else a new screenshot),
             decoding it, URL and title
    act      execute() without its settle: the Playwright input
    record   Trajectory.append(): what the step's path pays for recording; the writer
             thread puts the PNG, the line (fsync) and run.json on disk meanwhile, and
             append waits only when the step before is not on disk yet
    floor    capture + act of each step, measured in the same run: the least a step can
             cost; the goal is a median step of at most GOAL_X_FLOOR times it

Rows: the default settle detection with JPEG capture (the default) and with PNG
capture, and the baseline that comparable agents use: a fixed 0.5 s sleep before each
observation, with no settle detection, PNG capture. The baseline runs fewer steps
(`--baseline-steps`), as each costs half a second; its median is what the ratios use.

Then desktop capture of a 1920x1080 Xvfb screen: mss against pyautogui.screenshot()
(where pyscreeze refuses to run without gnome-screenshot or scrot, the Pillow
ImageGrab.grab() call it would make stands in, and the table says so).

    python bench/step_overhead.py             # 200 steps per row, about 1.5 minutes
    python bench/step_overhead.py --steps 50
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.trajectory import Step, Trajectory
from tools.actions import BaseAction, Click, Type
from tools.browser import SETTLE_MAX_MS, SETTLE_QUIET_MS, BrowserExecutor

GOAL_X_FLOOR = 3.0
BASELINE_SLEEP_S = 0.5
VIEWPORT = (1280, 720)
# A form of the kind agents click through: each click and keystroke changes the DOM.
PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Bench form</title>
<style>
  body { margin: 0; font: 16px sans-serif; background: #fafafa; }
  #count { position: absolute; left: 20px; top: 20px; width: 200px; height: 50px; }
  #name { position: absolute; left: 20px; top: 100px; width: 400px; height: 32px; }
  #echo { position: absolute; left: 20px; top: 160px; width: 800px; }
  #list { position: absolute; left: 20px; top: 200px; width: 800px; height: 480px; overflow: hidden; }
</style></head>
<body>
<button id="count">Clicked 0 times</button>
<input id="name" type="text" placeholder="Your name" autocomplete="off">
<div id="echo"></div>
<ol id="list"></ol>
<script>
  let n = 0;
  const count = document.getElementById("count"), list = document.getElementById("list");
  count.addEventListener("click", () => {
    count.textContent = "Clicked " + (++n) + " times";
    const item = document.createElement("li");
    item.textContent = "Item " + n;
    list.prepend(item);
  });
  const name = document.getElementById("name"), echo = document.getElementById("echo");
  name.addEventListener("input", () => { echo.textContent = "Hello, " + name.value; });
</script>
</body></html>
"""
BUTTON, FIELD = (120, 45), (220, 116)
ACTIONS: tuple[BaseAction, ...] = (
    Click(x=BUTTON[0], y=BUTTON[1]),
    Click(x=FIELD[0], y=FIELD[1]),
    Type(text=" ab"),
)


@dataclass
class Row:
    name: str
    settle: list[float] = field(default_factory=list)
    capture: list[float] = field(default_factory=list)
    act: list[float] = field(default_factory=list)
    record: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)


@contextlib.contextmanager
def serve_page() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as root:
        (Path(root) / "index.html").write_text(PAGE, encoding="utf-8")

        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=root))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
        finally:
            server.shutdown()
            server.server_close()


def run_loop(
    name: str, url: str, steps: int, runs: Path, *, capture: str, fixed_sleep_s: float, quiet_ms: float
) -> Row:
    """The agent loop minus the model; with `fixed_sleep_s`, settle detection is off."""
    row = Row(name)
    settle_max = 0.0 if fixed_sleep_s else SETTLE_MAX_MS
    with BrowserExecutor(start_url=url, viewport=VIEWPORT, capture=capture,  # type: ignore[arg-type]
                         settle_quiet_ms=quiet_ms, settle_max_ms=settle_max) as executor:
        trajectory = Trajectory.create(runs, goal=name)
        executor.observe()  # warm-up: the first screenshot pays for compositor start-up
        executed: list[float] = []
        for index in range(steps):
            t0 = time.perf_counter()
            if fixed_sleep_s:
                time.sleep(fixed_sleep_s)
            t1 = time.perf_counter()
            observation = executor.observe()
            t2 = time.perf_counter()
            action = ACTIONS[index % len(ACTIONS)]
            result = executor.execute(action)
            t3 = time.perf_counter()
            step = Step(index=index, observation=observation.metadata(), model_text="",
                        action=action.model_dump(mode="json"), result=result)
            trajectory.append(step, observation.image)
            t4 = time.perf_counter()
            if index and not fixed_sleep_s:
                row.settle.append(observation.settle_ms)  # the settle after the previous action
            elif fixed_sleep_s:
                row.settle.append((t1 - t0) * 1000)
            executed.append((t3 - t2) * 1000)
            row.capture.append((t2 - t1) * 1000)
            row.record.append((t4 - t3) * 1000)
            row.total.append((t4 - t0) * 1000)
        if not fixed_sleep_s:
            row.settle.append(executor.observe().settle_ms)  # the last action's settle
        # execute() includes its settle; without settle detection there is none inside it.
        row.act = [e - (0.0 if fixed_sleep_s else s) for e, s in zip(executed, row.settle, strict=True)]
        trajectory.end("finished")
        assert executor.page.evaluate("document.querySelectorAll('li').length") == (steps + 2) // 3
    return row


def desktop_capture(samples: int) -> dict[str, object]:
    """Capture a 1920x1080 Xvfb screen in a child process (pyautogui binds $DISPLAY at import)."""
    from tools.desktop.xvfb import XvfbDisplay

    with XvfbDisplay(1920, 1080) as xvfb:
        env = {**os.environ, "DISPLAY": xvfb.display, "XAUTHORITY": os.devnull}
        child = subprocess.run(
            [sys.executable, __file__, "--desktop-child", str(samples)],
            env=env, capture_output=True, text=True, timeout=120,
        )
    if child.returncode != 0:
        return {"error": child.stderr.strip().splitlines()[-1] if child.stderr.strip() else "failed"}
    return json.loads(child.stdout.strip().splitlines()[-1])


def desktop_child(samples: int) -> None:
    import warnings

    from PIL import Image, ImageGrab

    def timed(fn: object) -> list[float]:
        fn()  # type: ignore[operator]
        out = []
        for _ in range(samples):
            start = time.perf_counter()
            fn()  # type: ignore[operator]
            out.append((time.perf_counter() - start) * 1000)
        return out

    import mss

    results: dict[str, object] = {}
    with (getattr(mss, "MSS", None) or mss.mss)() as sct:
        monitor = sct.monitors[1]

        def grab() -> Image.Image:
            shot = sct.grab(monitor)  # what DesktopExecutor does: raw BGRX to an RGB image
            return Image.frombytes("RGB", shot.size, shot.bgra, "raw", "BGRX")

        results["mss"] = timed(grab)
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("ignore")
        import pyautogui
    try:
        results["pyautogui.screenshot"] = timed(pyautogui.screenshot)
    except Exception as exc:  # pyscreeze wants gnome-screenshot or scrot for its own path
        results["pyautogui_error"] = str(exc).split(" by running")[0]
        results["ImageGrab.grab"] = timed(ImageGrab.grab)
    print(json.dumps(results))


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1] if len(values) > 1 else values[0]


def floor(row: Row) -> float:
    """The median of capture + act, step by step: what a step costs with nothing around it."""
    return statistics.median(c + a for c, a in zip(row.capture, row.act, strict=True))


def print_table(rows: list[Row], baseline: Row) -> None:
    med = statistics.median
    head = (f"{'loop':44} {'steps':>5} {'settle':>7} {'capture':>8} {'act':>6} {'record':>7} {'floor':>6}"
            f" {'median':>7} {'p90':>7} {'max':>7} {'x floor':>8} {'vs base':>8}")
    print(head)
    print("-" * len(head))
    base = med(baseline.total)
    for r in rows:
        print(f"{r.name:44} {len(r.total):5d} {med(r.settle):7.1f} {med(r.capture):8.1f} {med(r.act):6.1f}"
              f" {med(r.record):7.1f} {floor(r):6.1f} {med(r.total):7.1f} {p90(r.total):7.1f}"
              f" {max(r.total):7.1f} {med(r.total) / floor(r):7.2f}x {med(r.total) / base:7.2f}x")
    print("(milliseconds per step; settle..record are medians of each part, median/p90/max of the whole;"
          "\n settle includes the screenshot taken ahead during it, capture is what observe() still costs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="steps per settle row (default 200)")
    parser.add_argument("--baseline-steps", type=int, default=40, help="steps of the 0.5 s baseline")
    parser.add_argument("--desktop-samples", type=int, default=30, help="desktop captures per tool")
    parser.add_argument("--settle-quiet-ms", type=float, default=SETTLE_QUIET_MS,
                        help=f"quiet window to try (default: the library's, {SETTLE_QUIET_MS:.0f})")
    parser.add_argument("--desktop-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.desktop_child is not None:
        desktop_child(args.desktop_child)
        return

    started = time.perf_counter()
    quiet = args.settle_quiet_ms
    print(f"step overhead, headless Chromium {VIEWPORT[0]}x{VIEWPORT[1]}, settle quiet {quiet:.0f} ms"
          f" / max {SETTLE_MAX_MS:.0f} ms, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}\n")
    with serve_page() as url, tempfile.TemporaryDirectory() as runs:
        rows = [
            run_loop(f"settle detection, jpeg capture{' (default)' if quiet == SETTLE_QUIET_MS else ''}",
                     url, args.steps, Path(runs), capture="jpeg", fixed_sleep_s=0, quiet_ms=quiet),
            run_loop("settle detection, png capture", url, args.steps, Path(runs), capture="png",
                     fixed_sleep_s=0, quiet_ms=quiet),
        ]
        baseline = run_loop(f"baseline: {BASELINE_SLEEP_S} s sleep before observe, png", url,
                            args.baseline_steps, Path(runs), capture="png", fixed_sleep_s=BASELINE_SLEEP_S,
                            quiet_ms=quiet)
    print_table([*rows, baseline], baseline)
    default, least = statistics.median(rows[0].total), floor(rows[0])
    verdict = "met" if default <= GOAL_X_FLOOR * least else "NOT met"
    print(f"\ngoal: median <= {GOAL_X_FLOOR:.0f}x the floor ({least:.1f} ms) with quiet {quiet:.0f} ms:"
          f" {default:.1f} ms, {default / least:.2f}x, {verdict}")
    jpeg, png = (statistics.median(r.capture) for r in rows)
    print(f"capture: jpeg {jpeg:.1f} ms vs png {png:.1f} ms median ({png / jpeg:.2f}x)")

    print("\ndesktop capture, Xvfb 1920x1080")
    desktop = desktop_capture(args.desktop_samples)
    if "error" in desktop:
        print(f"  could not measure: {desktop['error']}")
    else:
        mss_ms = statistics.median(desktop["mss"])  # type: ignore[arg-type]
        print(f"  {'mss grab + RGB image':44} {mss_ms:7.1f} ms median")
        other = "pyautogui.screenshot" if "pyautogui.screenshot" in desktop else "ImageGrab.grab"
        other_ms = statistics.median(desktop[other])  # type: ignore[arg-type]
        label = other if other == "pyautogui.screenshot" else "PIL ImageGrab.grab (pyautogui's Pillow path)"
        print(f"  {label:44} {other_ms:7.1f} ms median ({other_ms / mss_ms:.1f}x mss)")
        if "pyautogui_error" in desktop:
            print(f"  (pyautogui.screenshot itself: {desktop['pyautogui_error']})")
    print(f"\nbench ran {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
