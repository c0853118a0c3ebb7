"""Compiling a recorded run (agent/replay), its crops, and writing healed steps back, without a screen.

The runs here are written with the real Trajectory, their screenshots drawn with Pillow; the
browser and desktop recordings are in tests/integration/test_replay_*.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from agent.grounding import Box
from agent.replay import MATCH_THRESHOLD, compile_run, crops_folder
from agent.replay.crops import cut_crop, load_crop, match_crop
from agent.replay.write import ScriptStepOut, rewrite_steps
from agent.script import Script
from agent.trajectory import Step, Trajectory
from tasks.steps import fallback_of, parse_step
from tools.errors import AgentError, TaskError
from tools.executor import ActionResult

SIZE = (640, 360)


def _screen(marker: tuple[int, int] | None = None, scale: int = 1, shade: int = 0) -> Image.Image:
    """A screen with a checkered badge at `marker` (device pixels): a target with a look of its own."""
    image = Image.new("RGB", (SIZE[0] * scale, SIZE[1] * scale), (250, 250, 250 - shade))
    draw = ImageDraw.Draw(image)
    draw.rectangle((20 * scale, 20 * scale, 200 * scale, 40 * scale), fill=(40, 60, 200))
    if marker is not None:
        x, y = marker
        for i in range(4):
            for j in range(4):
                color = (200, 30, 120) if (i + j) % 2 else (255, 230, 120)
                draw.rectangle(((x + 8 * i) * scale, (y + 8 * j) * scale, (x + 8 * i + 7) * scale,
                                (y + 8 * j + 7) * scale), fill=color)
    return image


def _observation(scale: int = 1) -> dict:
    return {"size": [SIZE[0] * scale, SIZE[1] * scale], "url": "http://127.0.0.1:9/app.html",
            "geometry": {"screenshot_size": [SIZE[0] * scale, SIZE[1] * scale], "device_size": list(SIZE),
                         "offset": [0, 0]}}


def _record(tmp_path: Path, secret: str = "hunter2-value") -> Path:
    """A run as an agent leaves it: targets in words, a pixel click with its element noted, a
    failed step, a wrong turn taken back, a wait done twice on one screen, a secret, a finish."""
    trajectory = Trajectory.create(tmp_path / "runs", goal="Sign in as ada and open the badge", run_id="r1",
                                   meta={"kind": "agent", "start": {"url": "http://127.0.0.1:9/app.html"}},
                                   secret_values=[secret])
    plain, badge = _screen(), _screen((300, 200))
    ok = ActionResult(ok=True)

    def step(action: dict, image: Image.Image, *, result: ActionResult = ok, **kw: object) -> None:
        index = len(trajectory) + 1
        trajectory.append(Step(index=index, observation=_observation(), model_text="...", action=action,
                               result=result, **kw), image)  # type: ignore[arg-type]

    field = {"box": [20, 20, 200, 40], "point": [110, 30], "score": 1.0, "source": "dom"}
    step({"action": "type", "text": "ada", "target": "the Name field"}, plain,
         grounding={"the Name field": field}, grounded={"the Name field": [110, 30]})
    step({"action": "type", "text": "<secret>pw</secret>", "target": "the Name field"}, plain,
         grounding={"the Name field": field})
    step({"action": "click", "target": "the Help link"}, plain, result=ActionResult.failure("not found"))
    step({"action": "click", "x": 500, "y": 300}, plain)  # a wrong turn...
    step({"action": "back"}, plain)  # ...taken back
    step({"action": "wait", "seconds": 0.5}, badge)
    step({"action": "wait", "seconds": 0.5}, badge)  # the same, on the same screen
    element = {"description": 'the "Badge" button', "role": "button", "name": "Badge",
               "box": [300, 200, 331, 231]}
    step({"action": "click", "x": 316, "y": 216}, badge, replay={"element": element})
    step({"action": "finish", "answer": "done"}, badge)
    trajectory.end("finished", "done")
    return trajectory.run_dir


def test_a_run_compiles_to_the_steps_that_worked_with_crops_and_points(tmp_path):
    compiled = compile_run(_record(tmp_path), tmp_path / "out" / "badge.yaml", variables={"name": "ada"})
    script = Script.load(compiled.path, variables={"name": "ada"})

    assert [(s.name, getattr(s, "target", None)) for s in script.steps] == [
        ("type", "the Name field"), ("type", "the Name field"), ("expect", 'the "Badge" button'),
        ("click", 'the "Badge" button')]
    assert script.steps[1].text == "<secret>pw</secret>" and compiled.secrets == ("pw",)
    assert compiled.variables == ("name",) and '"{{name}}"' in compiled.path.read_text()
    assert [why.split(":")[0] for why in compiled.dropped] == ["step 3", "steps 4 and 5", "step(s) 7"]
    badge = script.fallbacks[3]
    assert badge is not None and badge.at == (round(316 / 640, 4), 0.6)
    crop = load_crop(script.folder / badge.crop)
    assert crop.point == (20, 20) and crop.image.size == (40, 40)  # the element's box, padded by 4
    assert script.start is not None and script.start.url == "http://127.0.0.1:9/app.html"


def test_no_value_of_a_secret_reaches_the_script_or_its_crops(tmp_path):
    compiled = compile_run(_record(tmp_path, secret="hunter2-value"), tmp_path / "out" / "s.yaml")
    for path in compiled.path.parent.rglob("*"):
        assert "hunter2" not in path.name
        if path.is_file():
            assert b"hunter2" not in path.read_bytes()
    assert len(list(crops_folder(compiled.path).glob("*.png"))) == 3


def test_a_run_with_nothing_that_worked_is_one_line(tmp_path):
    trajectory = Trajectory.create(tmp_path, goal="g", run_id="r")
    trajectory.append(Step(index=1, observation={}, model_text="?", parse_error="no action"))
    trajectory.end("failed")
    with pytest.raises(AgentError, match="nothing to replay"):
        compile_run(trajectory.run_dir)


@pytest.mark.parametrize("scale", [1, 2])
def test_a_crop_is_found_where_its_target_moved_at_either_scale(scale):
    crop = cut_crop(_screen((300, 200)), (316, 216), 1.0, Box(300, 200, 331, 231))
    moved = _screen((80, 280), scale=scale, shade=30)
    found = match_crop(moved, crop, float(scale))
    assert found is not None and found.score >= MATCH_THRESHOLD
    assert abs(found.point[0] - 96 * scale) <= 2 * scale and abs(found.point[1] - 296 * scale) <= 2 * scale
    gone = match_crop(_screen(None, scale=scale), crop, float(scale))
    assert gone is not None and gone.score < MATCH_THRESHOLD


def test_a_blank_crop_matches_nothing():
    crop = cut_crop(Image.new("RGB", SIZE, (255, 255, 255)), (100, 100), 1.0)
    assert match_crop(_screen((300, 200)), crop, 1.0) is None


def test_steps_keep_their_fallbacks_beside_the_action():
    raw = {"click": "the OK button", "crop": "x.crops/01.png", "at": [0.5, 0.25]}
    assert parse_step(raw, "f:1").target == "the OK button"
    assert fallback_of(raw, "f:1").at == (0.5, 0.25) and fallback_of({"click": "OK"}, "f:1") is None
    with pytest.raises(TaskError, match="fractions of the screen"):
        fallback_of({"click": "OK", "at": [2, 0.5]}, "f:3")


def test_healed_steps_are_rewritten_in_place_with_a_comment_and_the_rest_kept(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("# mine\nname: s\nsteps:\n  - click: the A button\n    crop: s.crops/01.png\n"
                    "  # keep me\n  - type: {text: \"{{who}}\", target: the B field}\n"
                    "success:\n  url_matches: done\n", encoding="utf-8")
    healed = ScriptStepOut("click", {"target": 'the "Z" button'}, "s.crops/01.png", (0.1, 0.2))
    rewrite_steps(path, {0: (healed, "healed now by crop (0.99)")})
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# mine\nname: s\nsteps:\n  # healed now by crop (0.99)\n"
                           '  - click: "the \\"Z\\" button"\n    crop: "s.crops/01.png"\n    at: [0.1, 0.2]\n'
                           "  # keep me\n")
    assert text.endswith("success:\n  url_matches: done\n")
    script = Script.load(path, variables={"who": "ada"})
    assert script.steps[0].target == 'the "Z" button' and script.steps[1].text == "ada"


def test_a_navigate_on_a_served_app_is_compiled_relative_to_the_page_shown(tmp_path):
    """A served folder gets a new port each time it is served: a recorded address on it would break."""
    task = tmp_path / "task.yaml"
    (tmp_path / "app").mkdir()
    task.write_text("name: shop\nstart: {serve: app/, path: app.html}\nsteps:\n  - wait: 1\n")
    trajectory = Trajectory.create(tmp_path / "runs", goal="g", run_id="r1",
                                   meta={"kind": "agent", "start": {"task": str(task)}})
    for index, url in enumerate(["http://127.0.0.1:9/settings.html?tab=2", "https://example.org/help"], 1):
        trajectory.append(Step(index=index, observation=_observation(), model_text="...",
                               action={"action": "navigate", "url": url}, result=ActionResult(ok=True)),
                          _screen(shade=index))
    trajectory.end("finished")

    compiled = compile_run(trajectory.run_dir, tmp_path / "out" / "shop.yaml")

    script = Script.load(compiled.path)
    assert script.start.serve == "../app/"
    assert [step.url for step in script.steps] == ["/settings.html?tab=2", "https://example.org/help"]
