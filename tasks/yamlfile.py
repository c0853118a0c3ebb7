"""Reading a YAML file so that every error can name the line it is about.

`read_yaml(path)` returns the data and a `Source`: `source.at("steps", 2)` is
"login.yaml:9", the line of the third step (or of the nearest enclosing key that exists),
so a TaskError reads like a compiler's. The lines come from the composed node tree, the
data from the same text, loaded safely (no Python objects).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from tools.errors import TaskError

__all__ = ["Source", "read_yaml"]


@dataclass(frozen=True)
class Source:
    """Where a task came from: a file's name (or a word, for data built in code) and its nodes."""

    name: str
    root: Node | None = None

    def line(self, *loc: Any) -> int | None:
        """The 1-based line of the key or item at `loc`, or of the deepest part of it that exists."""
        node, line = self.root, None
        for key in loc:
            if isinstance(node, MappingNode):
                found = next(((k, v) for k, v in node.value
                              if isinstance(k, ScalarNode) and k.value == str(key)), None)
                if found is None:
                    break
                line, node = found[0].start_mark.line + 1, found[1]
            elif isinstance(node, SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
                node = node.value[key]
                line = node.start_mark.line + 1
            else:
                break
        return line

    def at(self, *loc: Any) -> str:
        """"file:line" for `loc`, or the file alone when no line is known."""
        line = self.line(*loc)
        return self.name if line is None else f"{self.name}:{line}"


def read_yaml(path: Path, *, noun: str = "task file") -> tuple[Any, Source]:
    """The data of a YAML file and its Source; TaskError (one line) when it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TaskError(f"cannot read {noun} {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise TaskError(f"{noun} {path} is not UTF-8 text: save it as UTF-8") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise TaskError(f"{where}: not valid YAML ({problem}): check the indentation and quote text "
                        "that holds ': ' or starts with a special character") from None
    source = Source(str(path), root)
    _refuse_duplicate_keys(root, source)
    return data, source


def _refuse_duplicate_keys(node: Node | None, source: Source) -> None:
    """YAML keeps the last of two equal keys without a word; a task file says so instead."""
    stack = [node] if node is not None else []
    while stack:
        node = stack.pop()
        if isinstance(node, MappingNode):
            seen: set[str] = set()
            for key, value in node.value:
                if isinstance(key, ScalarNode):
                    if key.value in seen:
                        line = key.start_mark.line + 1
                        raise TaskError(f"{source.name}:{line}: {key.value!r} appears twice in one mapping: "
                                        "keep one")
                    seen.add(key.value)
                stack.append(value)
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)
