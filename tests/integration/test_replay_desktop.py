"""Record once, replay without the model, on a real Xvfb desktop with a Tk app (pages/replay/desk_app.py).

The recording is the agent with a scripted model (its replies: pixel clicks on the buttons the
app says it drew; weights that would answer cannot be downloaded here). The compiled script
names each button by the OCR text under its point; the replay finds them again after the
window moved and its buttons changed order. The recording and each replay run in a process of
their own: pyautogui binds a process to the first X display it meets.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from agent.replay import compile_run
from agent.script import Script
from agent.trajectory import Trajectory

pytestmark = pytest.mark.desktop

ROOT = Path(__file__).resolve().parent.parent.parent
APP = ROOT / "tests" / "pages" / "replay" / "desk_app.py"
SIZE = (1280, 800)

RECORD = """
import json, sys
from agent.loop import Agent
from model.scripted import ScriptedModel
from tools.desktop import DesktopExecutor
boxes, width, height = json.loads(sys.argv[3]), 1280, 800
def click(name):
    left, top, right, bottom = boxes[name]
    x, y = (left + right) / 2 * 1000 / (width - 1), (top + bottom) / 2 * 1000 / (height - 1)
    return '<tool_call>{"name": "click", "arguments": {"x": %d, "y": %d}}</tool_call>' % (round(x), round(y))
replies = [click("Export"), click("Print"), '<tool_call>{"name": "finish", "arguments": {}}</tool_call>']
with DesktopExecutor(display=sys.argv[1]) as desktop:
    trajectory = Agent(ScriptedModel(replies), desktop, max_steps=5, runs_dir=sys.argv[2],
                       surface="desktop").run("Export, then print")
print(json.dumps({"outcome": trajectory.outcome, "run_dir": str(trajectory.run_dir)}))
"""

REPLAY = """
import json, sys
from agent.grounding.cascade import auto_grounder
from agent.script import Script, ScriptRunner
from tools.desktop import DesktopExecutor
with DesktopExecutor(display=sys.argv[1]) as desktop:
    runner = ScriptRunner(desktop, auto_grounder(desktop), runs_dir=sys.argv[2])
    trajectory = runner.run(Script.load(sys.argv[3]))
print(json.dumps({"outcome": trajectory.outcome, "run_dir": str(trajectory.run_dir),
                  "errors": [s.result.error for s in trajectory.steps if s.result and not s.ok]}))
"""


@pytest.fixture
def display() -> Iterator[str]:
    if shutil.which("Xvfb") is None or importlib.util.find_spec("pyautogui") is None:
        pytest.skip("needs Xvfb (apt-get install xvfb) and pip install '.[desktop]'")
    from tools.desktop.xvfb import XvfbDisplay

    saved = os.environ.get("DISPLAY")
    with XvfbDisplay(*SIZE) as screen:
        yield screen.display
    if saved is None:
        os.environ.pop("DISPLAY", None)
    else:
        os.environ["DISPLAY"] = saved


@contextmanager
def app(display: str, log: Path, x: int, y: int, order: str) -> Iterator[dict[str, list[int]]]:
    """The Tk app at (x, y) with its buttons in `order`; the buttons' boxes once it is drawn."""
    process = subprocess.Popen([sys.executable, str(APP), str(log), str(x), str(y), order],
                               stdout=subprocess.PIPE, text=True, env={**os.environ, "DISPLAY": display})
    try:
        assert process.stdout is not None
        yield json.loads(process.stdout.readline())
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()  # type: ignore[union-attr]


def _python(code: str, *args: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _clicked(log: Path, count: int) -> list[str]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(log.read_text(encoding="utf-8").split()) < count:
        time.sleep(0.05)
    return log.read_text(encoding="utf-8").split()


def test_a_desktop_run_compiles_to_the_text_on_its_points_and_replays_after_the_window_moves(display,
                                                                                             tmp_path):
    log = tmp_path / "clicks.txt"
    log.touch()
    with app(display, log, 100, 100, "Apply,Export,Print") as boxes:
        ran = _python(RECORD, display, str(tmp_path / "runs"), json.dumps(boxes))
        assert ran["outcome"] == "finished" and _clicked(log, 2) == ["Export", "Print"]
    script_path = compile_run(ran["run_dir"], tmp_path / "out" / "desk.yaml").path
    script = Script.load(script_path)
    assert [(s.name, s.target) for s in script.steps] == [("click", 'the "Export" text'),
                                                          ("click", 'the "Print" text')]
    assert all(f is not None and (script.folder / f.crop).is_file() for f in script.fallbacks)
    assert (Path(ran["run_dir"]) / "script.yaml").is_file()  # the agent's own, written as it finished

    log.write_text("", encoding="utf-8")
    with app(display, log, 520, 380, "Print,Apply,Export"):  # moved, the buttons in another order
        replayed = _python(REPLAY, display, str(tmp_path / "replays"), str(script_path))
        assert replayed["outcome"] == "finished", replayed["errors"]
        assert _clicked(log, 2) == ["Export", "Print"]
    steps = Trajectory.read_steps(replayed["run_dir"])
    found = [next(iter(s.replay.values())) for s in steps]
    assert [f["found"] for f in found] == ["as written", "as written"] and {f["by"] for f in found} == {"ocr"}
