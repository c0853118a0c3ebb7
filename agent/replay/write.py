"""Writing compiled scripts, and rewriting healed steps in place.

Every string is written as a JSON string, which YAML reads as a double-quoted scalar: text
with quotes, colons, `#` or `{{variables}}` needs no care. A step is one line, its fallbacks
(`crop`, `at`) the lines under it. `rewrite_steps` replaces steps by their position, with a
comment above each that says when and why, and leaves every other line of the file as it was.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from tasks.steps import MAIN_FIELD
from tools.errors import TaskError

__all__ = ["ScriptStepOut", "rewrite_steps", "step_lines", "write_script"]

_HEADER_ORDER = ("name", "goal", "start", "allowed_domains", "strict", "timeout")


@dataclass
class ScriptStepOut:
    """One step as it is written: its action's name and fields, and its fallbacks."""

    name: str
    fields: dict[str, Any]
    crop: str | None = None
    at: tuple[float, float] | None = None


def _j(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def step_lines(step: ScriptStepOut, indent: str = "  ") -> list[str]:
    """The lines of one step, the first starting with `indent` + "- "."""
    fields = dict(step.fields)
    main = MAIN_FIELD.get(step.name)
    if not fields:
        value = ""
    elif step.name == "key" and set(fields) == {"keys"}:
        value = " " + _j("+".join(fields["keys"]))
    elif main is not None and set(fields) == {main}:
        value = " " + _j(fields[main])
    else:
        value = " {" + ", ".join(f"{k}: {_j(v)}" for k, v in fields.items()) + "}"
    lines = [f"{indent}- {step.name}:{value}"]
    if step.crop is not None:
        lines.append(f"{indent}  crop: {_j(step.crop)}")
    if step.at is not None:
        lines.append(f"{indent}  at: [{step.at[0]:g}, {step.at[1]:g}]")
    return lines


def write_script(path: Path, *, header: Mapping[str, Any], steps: Sequence[ScriptStepOut],
                 comments: Sequence[str] = ()) -> None:
    """Write a task file with `steps` (atomically: a reader sees the old file or the new one)."""
    lines = [f"# {' '.join(str(c).split())}" for c in comments]
    for key in _HEADER_ORDER:
        if key in header:
            lines.append(f"{key}: {_j(header[key])}")
    if "success" in header:
        dumped = yaml.safe_dump({"success": header["success"]}, sort_keys=False, allow_unicode=True)
        lines += dumped.rstrip("\n").splitlines()
    lines.append("steps:")
    for step in steps:
        lines += step_lines(step)
    _replace(path, "\n".join(lines) + "\n")


def rewrite_steps(path: Path, changed: Mapping[int, tuple[ScriptStepOut, str]]) -> None:
    """Replace the steps at the given 0-based positions of `path`'s `steps:` list, each with a
    `# comment` line above it; every other line stays as it was."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    items = _step_nodes(text, path)
    for position in sorted(changed, reverse=True):  # from the end: earlier line numbers hold
        if not 0 <= position < len(items):
            raise TaskError(f"{path} has no step {position + 1} to rewrite: it changed during the run")
        first = items[position].start_mark.line
        last = (items[position + 1].start_mark.line if position + 1 < len(items)
                else _end_of_steps(lines, first))
        while last - 1 > first and (not lines[last - 1].strip() or lines[last - 1].lstrip().startswith("#")):
            last -= 1  # the comments above the next step are that step's
        dash = lines[first].index("-") if "-" in lines[first] else 2
        indent = lines[first][:dash]
        while first > 0 and lines[first - 1].lstrip().startswith("# healed"):
            first -= 1  # an older healing note of this step: replaced by the new one
        step, why = changed[position]
        lines[first:last] = [f"{indent}# {' '.join(why.split())}", *step_lines(step, indent)]
    _replace(path, "\n".join(lines) + "\n")


def _step_nodes(text: str, path: Path) -> list[Any]:
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if isinstance(root, MappingNode):
        for key, value in root.value:
            if isinstance(key, ScalarNode) and key.value == "steps" and isinstance(value, SequenceNode):
                return list(value.value)
    raise TaskError(f"{path} has no `steps:` list to rewrite")


def _end_of_steps(lines: list[str], first: int) -> int:
    """The line after the last step: the next line that is neither blank, a comment, nor indented
    deeper than the steps' keys."""
    indent = len(lines[first]) - len(lines[first].lstrip())
    for n in range(first + 1, len(lines)):
        line = lines[n]
        if line.strip() and not line.lstrip().startswith("#") and len(line) - len(line.lstrip()) <= indent \
                and not line.lstrip().startswith("- ") and indent > 0:
            return n
        if line.strip() and indent == 0 and not line.startswith((" ", "-", "#")):
            return n
    return len(lines)


def _replace(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
