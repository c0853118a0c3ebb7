"""A recorded run, compiled into a task file with `steps:` that replays without the model.

    compiled = compile_run("runs/20261206-120000-ab12cd", Path("login.yaml"), variables={"user": "ada"})

Each step that worked becomes a step with a target in words (targets.py): the model's own
`target` when it gave one; else, in a browser, the element that was under the point (noted by
the agent as it acted: `Step.replay["element"]`); else the OCR text on or beside the point.
Each target keeps its crop (crops.py) in `<name>.crops/` beside the file, and its point as a
fraction of the screen (`at`): fallbacks for when the words no longer find it (heal.py).
Typed text is kept; a secret stays `<secret>name</secret>` (one typed from the goal becomes a
named placeholder, never its value), and the fields it was typed into are blanked in every
later crop. Values given as `variables` become `{{name}}`. A wait becomes an `expect` on the
next step's target. The start, allowed domains and success checks come from the run's task
file, when it had one; a relative `start.serve` is rewritten against the new file's folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from agent.grounding import Box
from agent.redaction import REDACTED
from agent.replay.crops import cut_crop
from agent.replay.shortest import shortest_replay
from agent.replay.targets import describe_text
from agent.replay.write import ScriptStepOut, write_script
from agent.trajectory import Step, Trajectory
from agent.vault import PLACEHOLDER
from tasks.yamlfile import read_yaml
from tools.errors import AgentError, TaskError

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["Compiled", "compile_run", "crops_folder"]

LITERAL_SECRET = "typed_secret"  # the placeholder a secret typed from the goal becomes
_TARGETED = ("click", "move", "scroll", "type")


@dataclass(frozen=True)
class Compiled:
    """A compiled script: its file, its steps, what was left out and why, and its placeholders."""

    path: Path
    steps: int
    dropped: tuple[str, ...]
    variables: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)


def crops_folder(script: Path) -> Path:
    """Where a script's crops are: `<name>.crops/` beside it."""
    return script.with_name(script.stem + ".crops")


def compile_run(run_dir: Path | str, out: Path | str | None = None, *,
                variables: Mapping[str, str] | None = None) -> Compiled:
    """Compile the run in `run_dir` into `out` (default: run_dir/script.yaml); AgentError when the
    run cannot be read or has nothing to replay."""
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / "script.yaml"
    try:
        run = Trajectory.read_run(run_dir)
        steps = Trajectory.read_steps(run_dir)
    except (OSError, ValueError) as exc:
        raise AgentError(f"cannot read the run in {run_dir}: {str(exc).splitlines()[0]}: give a run "
                         "directory (runs/<id>)") from None
    screens = _Screens(run_dir)
    kept = shortest_replay(steps, screens.same)
    if not kept.steps:
        raise AgentError(f"{run_dir} has no step that worked on the screen: there is nothing to replay")
    crops = crops_folder(out)
    header = _header(run, run_dir, out)
    builder = _Builder(run_dir, out, crops, screens, dict(variables or {}))
    if "serve" in (header.get("start") or {}):  # served again at another port: addresses on it go relative
        builder.served_origin = _origin(steps)
    built = [builder.step(n, step) for n, step in enumerate(kept.steps, start=1)]
    built = _waits_to_expects(built)
    header = builder.values_to_variables(header)
    comments = _comments(run_dir, len(steps), kept.dropped, builder)
    write_script(out, header=header, steps=built, comments=comments)
    return Compiled(out, len(built), kept.dropped, tuple(sorted(builder.used_variables)),
                    tuple(sorted(builder.secrets)), tuple(builder.notes))


class _Screens:
    """The run's step screenshots, read once each."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._images: dict[str, Image | None] = {}

    def image(self, step: Step) -> Image | None:
        if step.screenshot is None:
            return None
        if step.screenshot not in self._images:
            from PIL import Image as PILImage

            try:
                with PILImage.open(self.run_dir / step.screenshot) as opened:
                    self._images[step.screenshot] = opened.convert("RGB")
            except OSError:
                self._images[step.screenshot] = None
        return self._images[step.screenshot]

    def same(self, a: Step, b: Step) -> bool:
        first, second = self.image(a), self.image(b)
        return first is not None and second is not None and first.size == second.size \
            and first.tobytes() == second.tobytes()


def _scale(step: Step) -> float:
    """Screenshot pixels per device pixel of the step's screen."""
    geometry = step.observation.get("geometry") or {}
    try:
        return float(geometry["screenshot_size"][0]) / float(geometry["device_size"][0])
    except (KeyError, TypeError, ValueError, ZeroDivisionError, IndexError):
        return 1.0


class _Builder:
    """Turns kept steps into script steps, with their crops and placeholders."""

    def __init__(self, run_dir: Path, out: Path, crops: Path, screens: _Screens,
                 variables: dict[str, str]) -> None:
        self.run_dir, self.out, self.crops, self.screens = run_dir, out, crops, screens
        self.variables = {name: value for name, value in variables.items() if value}
        self.used_variables: set[str] = set()
        self.secrets: set[str] = set()
        self.notes: list[str] = []
        self._secret_boxes: list[Box] = []  # fields a secret went into: blanked in later crops
        self._last_box: Box | None = None
        self._ocr: Any = None
        self.served_origin: str | None = None  # the run's served folder, as http://127.0.0.1:PORT

    def step(self, number: int, step: Step) -> ScriptStepOut:
        action = {k: v for k, v in (step.action or {}).items() if v is not None}
        name = action.pop("action")
        target, point, box = self._target(step, action)
        if target is not None:
            for key in ("x", "y"):
                action.pop(key, None)
            action["target"] = self._vars(target)
        if name == "type":
            action["text"] = self._typed(step, action)
        if name == "navigate" and self.served_origin and action["url"].startswith(self.served_origin + "/"):
            action["url"] = action["url"][len(self.served_origin):]  # /page.html, against the page shown
        out = ScriptStepOut(name, _trim(name, action))
        image = self.screens.image(step)
        if point is not None and image is not None and name in _TARGETED and target is not None:
            scale = _scale(step)
            crop = cut_crop(image, point, scale, box)
            crop = self._blanked(crop, point)
            relative = f"{self.crops.name}/{number:02d}-{name}.png"
            crop.save(self.out.parent / relative)
            out.crop, out.at = relative, (round(point[0] / image.width, 4), round(point[1] / image.height, 4))
        if name == "type" and PLACEHOLDER.search(action["text"]):
            self._secret_boxes.append(box or self._last_box or _around(point, _scale(step)))
        self._last_box = box if box is not None else (_around(point, _scale(step)) if point else None)
        return out

    def _target(self, step: Step, action: dict[str, Any]) -> tuple[str | None, tuple[int, int] | None,
                                                                  Box | None]:
        """(the target in words, its point and box on the step's screenshot)."""
        target = action.get("target")
        if isinstance(target, str):
            found = (step.grounding or {}).get(target) or {}
            point = tuple(found["point"]) if "point" in found else None
            box = Box(*found["box"]) if "box" in found else None
            return target, point, box  # type: ignore[return-value]
        if "x" not in action or "y" not in action:
            return None, None, None
        point = (round(action["x"]), round(action["y"]))
        element = (step.replay or {}).get("element")
        if isinstance(element, dict) and element.get("description"):
            return element["description"], point, Box(*element["box"]) if element.get("box") else None
        words = self._ocr_words(step, point)
        if words is None:
            self.notes.append(f"step {step.index}: nothing on the screen names the point {list(point)}; "
                              "it stays a point")
        return words, point, None

    def _ocr_words(self, step: Step, point: tuple[int, int]) -> str | None:
        image = self.screens.image(step)
        if image is None:
            return None
        if self._ocr is None:
            from agent.grounding.ocr import RapidOCREngine

            self._ocr = RapidOCREngine()
        try:
            lines = self._ocr(image)
        except AgentError as exc:  # no OCR engine on this machine
            self.notes.append(f"step {step.index}: {exc.message}")
            return None
        return describe_text(lines, point[0], point[1], _scale(step))

    def _typed(self, step: Step, action: dict[str, Any]) -> str:
        text = str(action.get("text", ""))
        if REDACTED in text or (action.get("secret") and not PLACEHOLDER.search(text)):
            # A secret typed from the goal: its value never reached disk; replay asks for it by name.
            self.notes.append(f"step {step.index} typed a secret given in the goal: replay it with "
                              f"--secret {LITERAL_SECRET}")
            text = f"<secret>{LITERAL_SECRET}</secret>"
        self.secrets.update(PLACEHOLDER.findall(text))
        return self._vars(text)

    def _vars(self, text: str) -> str:
        for name, value in sorted(self.variables.items(), key=lambda item: -len(item[1])):
            if value in text:
                text = text.replace(value, "{{" + name + "}}")
                self.used_variables.add(name)
        return text

    def values_to_variables(self, value: Any) -> Any:
        """`value` (a header: the goal, the success checks) with the variables' values as {{name}}."""
        if isinstance(value, str):
            return self._vars(value)
        if isinstance(value, dict):
            return {key: self.values_to_variables(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.values_to_variables(item) for item in value]
        return value

    def _blanked(self, crop: Any, point: tuple[int, int]) -> Any:
        """The crop with every field a secret was typed into painted over (its text may show)."""
        if not self._secret_boxes:
            return crop
        from PIL import ImageDraw

        left, top = point[0] - crop.point[0], point[1] - crop.point[1]
        draw = ImageDraw.Draw(crop.image)
        for box in self._secret_boxes:
            draw.rectangle((box.left - left, box.top - top, box.right - left, box.bottom - top),
                           fill=(128, 128, 128))
        return crop


def _around(point: tuple[int, int] | None, scale: float) -> Box:
    x, y = point or (0, 0)
    half_w, half_h = round(150 * scale), round(20 * scale)
    return Box(x - half_w, y - half_h, x + half_w, y + half_h)


def _trim(name: str, action: dict[str, Any]) -> dict[str, Any]:
    """The action's fields less its defaults, so the file reads as a person would write it."""
    defaults = {"button": "left", "clicks": 1, "modifiers": [], "submit": False, "secret": False,
                "clear": False, "dx": 0, "dy": 0}
    return {k: v for k, v in action.items() if not (k in defaults and v == defaults[k])}


def _waits_to_expects(steps: list[ScriptStepOut]) -> list[ScriptStepOut]:
    """A wait before a step with a target becomes `expect` on that target: wait for it, not a time."""
    out: list[ScriptStepOut] = []
    for n, step in enumerate(steps):
        following = steps[n + 1] if n + 1 < len(steps) else None
        if step.name == "wait" and following is not None and following.fields.get("target"):
            out.append(ScriptStepOut("expect", {"target": following.fields["target"]}))
        else:
            out.append(step)
    return out


def _header(run: dict[str, Any], run_dir: Path, out: Path) -> dict[str, Any]:
    """name, goal, start, allowed_domains, strict, timeout and success: from the run's task file
    when it had one (its start.serve made relative to `out`), else the URL the run started at."""
    header: dict[str, Any] = {"name": f"{run_dir.name} replay"}
    if run.get("goal") and not str(run["goal"]).startswith("script: "):
        header["goal"] = run["goal"]
    start = run.get("start") or {}
    task_file = start.get("task") or start.get("script")
    if task_file:
        try:
            data, _ = read_yaml(Path(task_file))
        except TaskError:
            data = None
        if isinstance(data, dict):
            for key in ("name", "allowed_domains", "strict", "timeout", "success"):
                if key in data:
                    header[key] = data[key]
            header["name"] = f"{data.get('name', Path(task_file).stem)} replay"
            task_start = data.get("start")
            if isinstance(task_start, dict) and task_start.get("serve"):
                served = (Path(task_file).parent / str(task_start["serve"])).resolve()
                header["start"] = {**task_start, "serve": os.path.relpath(served, out.parent.resolve()) + "/"}
                return header
            if isinstance(task_start, dict):
                header["start"] = task_start
                return header
    if start.get("url"):
        header["start"] = {"url": start["url"]}
    return header


def _origin(steps: list[Step]) -> str | None:
    """scheme://host:port of the first page the run saw, if it saw one."""
    for step in steps:
        parts = urlsplit(str(step.observation.get("url") or ""))
        if parts.scheme in ("http", "https") and parts.netloc:
            return f"{parts.scheme}://{parts.netloc}"
    return None


def _comments(run_dir: Path, recorded: int, dropped: tuple[str, ...], builder: _Builder) -> list[str]:
    lines = [f"compiled from {run_dir} ({recorded} steps recorded) by `internvl-agent compile`"]
    lines += [f"dropped {why}" for why in dropped]
    if builder.used_variables:
        lines.append("variables, given at replay with --var NAME=VALUE: "
                     + ", ".join(sorted(builder.used_variables)))
    lines += builder.notes
    return lines
