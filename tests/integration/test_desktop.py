"""DesktopExecutor on a real X display: our own Xvfb, and a Tk window recording its input.

Every action goes through DesktopExecutor (mss, pyautogui, XTest) and is checked against
the events that the recorder (tests/helpers/desktop_recorder.py) received, at the intended
pixel. xdotool is used only to check the focus and to play the person who pushes
the pointer into a corner.

Not provable on Xvfb, so covered by tests/unit/test_desktop_monitors.py instead:
several monitors and negative offsets (mss sees one monitor on Xvfb, and there is no
xrandr here to define more), and HiDPI scaling (X11 has none: pyautogui and mss both
count physical pixels).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.actions import Back, Click, Drag, Fail, Finish, Key, Move, Navigate, Scroll, Type, Wait
from tools.desktop import DesktopExecutor
from tools.desktop.xvfb import XvfbDisplay
from tools.errors import ExecutorError
from tools.executor import Geometry

pytestmark = [
    pytest.mark.desktop,
    pytest.mark.skipif(shutil.which("Xvfb") is None, reason="Xvfb is not installed: apt-get install xvfb"),
    pytest.mark.skipif(importlib.util.find_spec("tkinter") is None, reason="the recorder needs tkinter"),
    pytest.mark.skipif(importlib.util.find_spec("pyautogui") is None, reason="pip install '.[desktop]'"),
]

RECORDER = Path(__file__).resolve().parent.parent / "helpers" / "desktop_recorder.py"
WINDOW = (200, 150, 800, 600)  # the recorder's left, top, width, height
SHIFT, CONTROL, BUTTON1 = 0x1, 0x4, 0x100  # X modifier state bits, as Tk reports them
TIMEOUT_S = 10.0


class Recorder:
    """The recorder process and its event log, read up to each `sync` barrier."""

    def __init__(self, process: subprocess.Popen[str], log: Path) -> None:
        self.process, self.log = process, log
        self._offset = 0
        self._n = 0

    def _read_until(self, kind: str, n: int | None = None) -> list[dict]:
        events: list[dict] = []
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            with self.log.open("rb") as f:
                f.seek(self._offset)
                chunk = f.read()
            complete = chunk[: chunk.rfind(b"\n") + 1]  # a line being written waits for next time
            self._offset += len(complete)
            for line in complete.decode("utf-8").splitlines():
                event = json.loads(line)
                if event["type"] == kind and event.get("n") == n:
                    return events
                events.append(event)
            if self.process.poll() is not None:
                raise AssertionError(f"the recorder exited with {self.process.returncode}")
            time.sleep(0.01)
        raise AssertionError(f"no {kind!r} from the recorder within {TIMEOUT_S} s; got {events}")

    def command(self, word: str) -> list[dict]:
        """Send `word n`; return every event logged before its answer."""
        self._n += 1
        assert self.process.stdin is not None
        self.process.stdin.write(f"{word} {self._n}\n")
        self.process.stdin.flush()
        return self._read_until({"sync": "sync", "clear": "cleared"}[word], self._n)

    def sync(self) -> list[dict]:
        """Every event the server had delivered to the recorder since the last sync."""
        return self.command("sync")

    def ready(self) -> dict:
        self._read_until("ready")
        with self.log.open(encoding="utf-8") as f:
            return next(e for e in map(json.loads, f) if e["type"] == "ready")


@pytest.fixture(scope="module")
def xvfb() -> Iterator[XvfbDisplay]:
    saved = os.environ.get("DISPLAY")
    with XvfbDisplay(1920, 1080) as display:
        yield display
    # DesktopExecutor pointed this process's $DISPLAY at our Xvfb; put it back.
    if saved is None:
        os.environ.pop("DISPLAY", None)
    else:
        os.environ["DISPLAY"] = saved


@pytest.fixture(scope="module")
def recorder(xvfb: XvfbDisplay, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorder]:
    log = tmp_path_factory.mktemp("desktop") / "events.jsonl"
    log.touch()
    process = subprocess.Popen(
        [sys.executable, str(RECORDER), str(log), *map(str, WINDOW)],
        stdin=subprocess.PIPE, text=True, env=xvfb.env,
    )
    rec = Recorder(process, log)
    try:
        ready = rec.ready()
        assert (ready["x"], ready["y"], ready["width"], ready["height"]) == WINDOW
        if shutil.which("xdotool"):
            focus = subprocess.run(
                ["xdotool", "getwindowfocus", "getwindowname"], env=xvfb.env, capture_output=True, text=True
            )
            assert focus.stdout.strip() == "desktop recorder", f"recorder lacks the focus: {focus}"
        yield rec
    finally:
        assert process.stdin is not None
        process.stdin.close()  # the recorder quits at end of input
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def desktop(xvfb: XvfbDisplay, recorder: Recorder) -> Iterator[DesktopExecutor]:
    with DesktopExecutor(display=xvfb.display) as executor:
        yield executor


def run(executor: DesktopExecutor, recorder: Recorder, *actions: object) -> list[dict]:
    recorder.sync()  # drop anything earlier
    for action in actions:
        result = executor.execute(action)  # type: ignore[arg-type]
        assert result.ok, result.error
    return recorder.sync()


def presses(events: list[dict], kind: str = "press") -> list[tuple[int, int, int]]:
    return [(e["button"], e["x"], e["y"]) for e in events if e["type"] == kind]


def near(event: dict, x: int, y: int) -> bool:
    return abs(event["x"] - x) <= 1 and abs(event["y"] - y) <= 1


def wheel_directions(events: list[dict]) -> list[str]:
    """Tk 8.6 on X11 reports wheel buttons 4/5, and 6/7 as Shift+4/5; Tk 8.7+ a MouseWheel delta."""
    out = []
    for e in events:
        if e["type"] == "press" and e["button"] in (4, 5, 6, 7):
            up = e["button"] in (4, 6)
            out.append(("left" if up else "right") if e["button"] > 5 or e["state"] & SHIFT else
                       ("up" if up else "down"))
        elif e["type"] == "wheel":
            up = e["delta"] > 0
            out.append(("left" if up else "right") if e["state"] & SHIFT else ("up" if up else "down"))
    return out


def test_observe_captures_the_screen_and_names_the_focused_window(desktop):
    # With no window manager, Tk gives the focus back to PointerRoot when the pointer leaves
    # its window; then the window under the pointer is the one with the focus.
    assert desktop.execute(Move(x=600, y=450)).ok
    obs = desktop.observe()
    assert obs.image.mode == "RGB" and obs.image.size == (1920, 1080)
    assert obs.geometry == Geometry((1920, 1080), (1920, 1080), (0, 0))
    assert obs.window == "desktop recorder"
    # The recorder's Text widget is white; the pixel is really read from the screen.
    assert obs.image.getpixel((600, 450)) == (255, 255, 255)


@pytest.mark.parametrize(("button", "number"), [("left", 1), ("right", 3), ("middle", 2)])
def test_click_each_button_lands_on_the_pixel(desktop, recorder, button, number):
    events = run(desktop, recorder, Click(x=321, y=234, button=button))
    assert presses(events) == [(number, 321, 234)]
    assert presses(events, "release") == [(number, 321, 234)]


@pytest.mark.parametrize("clicks", [2, 3])
def test_double_and_triple_clicks_press_that_many_times_in_place(desktop, recorder, clicks):
    events = run(desktop, recorder, Click(x=640, y=480, clicks=clicks))
    assert presses(events) == [(1, 640, 480)] * clicks
    assert presses(events, "release") == [(1, 640, 480)] * clicks


def test_modifier_click_holds_ctrl_during_the_press_only(desktop, recorder):
    events = run(desktop, recorder, Click(x=500, y=300, modifiers=("ctrl",)), Click(x=501, y=300))
    first, second = (e for e in events if e["type"] == "press")
    assert (first["x"], first["y"]) == (500, 300) and first["state"] & CONTROL
    assert not second["state"] & CONTROL  # released afterwards


def test_move_hovers_without_pressing(desktop, recorder):
    events = run(desktop, recorder, Move(x=777, y=555))
    assert not presses(events)
    assert events[-1]["type"] == "motion" and near(events[-1], 777, 555)


def test_drag_presses_at_start_moves_with_the_button_down_and_releases_at_end(desktop, recorder):
    events = run(desktop, recorder, Drag(start=(300, 200), end=(700, 500)))
    assert presses(events) == [(1, 300, 200)]
    assert presses(events, "release") == [(1, 700, 500)]
    press_at = next(i for i, e in enumerate(events) if e["type"] == "press")
    dragging = [e for e in events[press_at:] if e["type"] == "motion"]
    assert len(dragging) >= 5 and all(e["state"] & BUTTON1 for e in dragging)


def test_scroll_direction_and_notches_at_the_point(desktop, recorder):
    down = run(desktop, recorder, Scroll(x=600, y=400, dy=3))
    assert wheel_directions(down) == ["down"] * 3
    assert all(near(e, 600, 400) for e in down if e["type"] in ("press", "wheel"))
    assert wheel_directions(run(desktop, recorder, Scroll(dy=-2))) == ["up"] * 2
    assert wheel_directions(run(desktop, recorder, Scroll(x=600, y=400, dx=2))) == ["right"] * 2


def typed(desktop, recorder, *actions) -> list[dict]:
    """Key events for `actions`, after emptying the Text and clicking into it (for the focus)."""
    recorder.command("clear")
    keys = [e for e in run(desktop, recorder, Click(x=400, y=300), *actions) if e["type"] == "key"]
    assert keys, "the recorder received no keys"
    return keys


def test_typing_capitals_and_symbols_arrives_exactly(desktop, recorder):
    text = "Hello, World! @#$%^&*()_+{}|:<>?"
    keys = typed(desktop, recorder, Type(text=text))
    assert keys[-1]["text"] == text


def test_typing_non_ascii_arrives_exactly(desktop, recorder):
    keys = typed(desktop, recorder, Type(text="héllo ✓ — ünïcödé"))
    assert keys[-1]["text"] == "héllo ✓ — ünïcödé"


def test_typing_more_distinct_characters_than_spare_keycodes_recycles_them(desktop, recorder):
    text = "αβγδεζηθικλμνξοπρστυφχψω абвгдежзийклмн ✓é"  # more than Xvfb's 19 spare keycodes
    keys = typed(desktop, recorder, Type(text=text))
    assert keys[-1]["text"] == text


def test_type_with_submit_presses_enter_after_the_text(desktop, recorder):
    keys = typed(desktop, recorder, Type(text="ok", submit=True))
    assert keys[-1]["keysym"] == "Return" and keys[-1]["text"] == "ok\n"


def test_type_with_clear_selects_all_first(desktop, recorder):
    keys = typed(desktop, recorder, Type(text="new", clear=True))
    selects = [i for i, e in enumerate(keys) if e["keysym"] == "a" and e["state"] & CONTROL]
    assert selects and keys[-1]["text"] == "new"
    assert selects[0] < len(keys) - 1  # ctrl+a came before the text


def test_key_combinations_hold_their_modifiers(desktop, recorder):
    keys = typed(desktop, recorder, Key(keys=("ctrl", "a")), Key(keys=("ctrl", "shift", "z")))
    letters = [(e["keysym"], e["state"] & (SHIFT | CONTROL)) for e in keys if e["keysym"] in ("a", "Z")]
    assert letters == [("a", CONTROL), ("Z", CONTROL | SHIFT)]


def test_region_maps_screenshot_pixels_through_its_offset(xvfb, recorder):
    with DesktopExecutor(region=WINDOW, display=xvfb.display) as region:
        obs = region.observe()
        assert obs.image.size == (800, 600)
        assert obs.geometry == Geometry((800, 600), (800, 600), (200, 150))
        # Only the recorder's white Text widget is inside the region.
        assert obs.image.getpixel((400, 300)) == (255, 255, 255)
        events = run(region, recorder, Click(x=10, y=20), Click(x=799, y=599))
    assert presses(events) == [(1, 210, 170), (1, 999, 749)]


def test_max_size_downscales_the_observation_and_clicks_still_land(xvfb, recorder):
    with DesktopExecutor(display=xvfb.display, max_size=(960, 540)) as small:
        obs = small.observe()
        assert obs.image.size == (960, 540)
        assert obs.geometry == Geometry((960, 540), (1920, 1080), (0, 0))
        events = run(small, recorder, Click(x=480, y=270))
    (press,) = [e for e in events if e["type"] == "press"]
    assert near(press, 960, 540)


def test_a_corner_pixel_is_nudged_so_the_agent_never_trips_the_fail_safe(desktop, recorder):
    assert desktop.execute(Click(x=0, y=0)).ok
    assert desktop.execute(Move(x=500, y=500)).ok  # would raise FailSafeException at (0, 0)


needs_xdotool = pytest.mark.skipif(shutil.which("xdotool") is None, reason="apt-get install xdotool")


@contextlib.contextmanager
def person_in_the_corner(xvfb, monkeypatch=None, on_check: int = 0) -> Iterator[None]:
    """The person pushes the pointer into a corner: now, or (with `monkeypatch`) just
    before the `on_check`-th fail-safe check, so that it lands in the middle of an action."""
    def push() -> None:
        subprocess.run(["xdotool", "mousemove", "0", "0"], env=xvfb.env, check=True)

    if monkeypatch is None:
        push()
    else:
        import pyautogui

        real, calls = pyautogui.failSafeCheck, 0

        def check() -> None:
            nonlocal calls
            calls += 1
            if calls == on_check:
                push()
            real()

        monkeypatch.setattr(pyautogui, "failSafeCheck", check)
    try:
        yield
    finally:
        if monkeypatch is not None:
            monkeypatch.undo()
        subprocess.run(["xdotool", "mousemove", "500", "500"], env=xvfb.env, check=True)


@needs_xdotool
def test_the_fail_safe_stays_on_for_the_person(xvfb, desktop, recorder):
    # The pointer is already in the corner: the next action stops the run, before it acts.
    recorder.command("clear")
    assert desktop.execute(Click(x=400, y=300)).ok  # the focus, so that typed keys would arrive
    for action in (Move(x=500, y=500), Type(text="never"), Wait(seconds=60)):
        with person_in_the_corner(xvfb), pytest.raises(ExecutorError, match="fail-safe"):
            desktop.execute(action)
    assert not [e for e in recorder.sync() if e["type"] == "key"]


@needs_xdotool
def test_the_fail_safe_stops_typing_midway(xvfb, desktop, recorder, monkeypatch):
    recorder.command("clear")
    assert desktop.execute(Click(x=400, y=300)).ok
    text = "a" * 1000
    # Checks: before the action, before the first character, then every x11.CHECK_EVERY.
    with person_in_the_corner(xvfb, monkeypatch, on_check=3), pytest.raises(ExecutorError, match="fail-safe"):
        desktop.execute(Type(text=text))
    keys = [e for e in recorder.sync() if e["type"] == "key"]
    assert keys and len(keys[-1]["text"]) < len(text)


@needs_xdotool
def test_the_fail_safe_stops_a_wait_midway(xvfb, desktop, monkeypatch):
    # Check 1 is before the action; 2 is after the first slice of the 60 s wait.
    with person_in_the_corner(xvfb, monkeypatch, on_check=2), pytest.raises(ExecutorError, match="fail-safe"):
        desktop.execute(Wait(seconds=60))


def test_browser_only_ungrounded_and_offscreen_actions_fail_as_data(desktop):
    for action in (Navigate(url="https://example.com"), Back()):
        result = desktop.execute(action)
        assert not result.ok and result.error.startswith(f"{action.action} is browser-only:")
    assert "grounded" in desktop.execute(Click(target="the OK button")).error
    assert "outside the 1920x1080 screenshot" in desktop.execute(Click(x=1920, y=5)).error
    for action in (Wait(seconds=0.01), Finish(answer="done"), Fail(reason="cannot")):
        assert desktop.execute(action).ok


def test_a_monitor_xvfb_lacks_is_refused_with_the_list_of_monitors(xvfb, desktop):
    with pytest.raises(ExecutorError, match=r"monitor 2 does not exist; this screen has 0 = all monitors "
                       r"1920x1080 at \(0, 0\); 1 = 1920x1080 at \(0, 0\)"):
        DesktopExecutor(monitor=2, display=xvfb.display).observe()


def test_xvfb_on_a_number_in_use_fails_with_the_server_s_reason(xvfb):
    taken = int(xvfb.display.lstrip(":"))
    with pytest.raises(ExecutorError, match=r"Xvfb exited with status 1 .*already running"):
        XvfbDisplay(640, 480, number=taken).start()


def test_a_second_display_in_one_process_is_refused(desktop):
    with pytest.raises(ExecutorError, match="already connected to X display"):
        DesktopExecutor(display=":4242").observe()


def test_a_script_grounds_its_targets_on_the_live_screen_and_acts_there(desktop, recorder, tmp_path):
    # Scripted desktop automation: the scripted model stands in for InternVL3's grounding
    # answer (weights cannot be downloaded here): the recorder window's box, in 0..1000.
    from agent.grounding.model import ModelGrounder
    from agent.script import Script, ScriptRunner
    from model.scripted import ScriptedModel

    left, top, width, height = WINDOW
    box = [round(left * 1000 / 1919), round(top * 1000 / 1079),
           round((left + width - 1) * 1000 / 1919), round((top + height - 1) * 1000 / 1079)]
    grounder = ModelGrounder(ScriptedModel([f"<ref>the recorder</ref><box>[{box}]</box>"]))
    script = Script.parse({"steps": [{"click": "the recorder window"}, {"type": "hi"}]})
    recorder.command("clear")  # an empty Text, and nothing logged before this test
    trajectory = ScriptRunner(desktop, grounder, runs_dir=tmp_path).run(script)
    events = recorder.sync()

    assert trajectory.outcome == "finished", trajectory.steps[-1].result
    x, y = trajectory.steps[0].grounded["the recorder window"]
    assert abs(x - (left + width // 2)) <= 2 and abs(y - (top + height // 2)) <= 2
    assert presses(events) == [(1, x, y)]  # root coordinates: the grounded pixel itself
    assert [e["text"] for e in events if e["type"] == "key"][-1] == "hi"
