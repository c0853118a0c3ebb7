"""Parse time against reply size, 1 KB to 1 MB: this parser against the one before issue #16.

Replies of 1, 4, 16, 64, 256 and 1024 KB (KB = 1,024 characters), of two kinds:

- valid: a tool call whose `text` is the whole reply, a JSON action in long prose, a call
  `click(...)` in long prose, an InternVL box in long prose (the action comes after 500
  characters of prose, the rest follows it);
- hostile, the shapes that made the old parser slow: `{"a": ` nested, `{"` repeated, an
  unclosed `<tool_call>` around nested objects, `[[` repeated, and `f(` repeated (a run
  of open parentheses, each a call).

Each cell is the median of --runs parses. The old parser is `agent/parsing.py` as of
--old (by default the newest commit whose parser still rescans brackets per candidate,
`_closing`), loaded from `git show` into a temporary module: nothing of it is kept in the
tree. `us/KB` is the new parser's slope from the size above: the time each added KB costs,
about zero once a reply is longer than what is read (the first 20,000 characters, or
6,000 brackets and quotes). `result` is what the new parser gives: an action, or the start
of its ParseError ("cut" when the reply was cut).

    python bench/parse.py
    python bench/parse.py --runs 9 --old 03a8f7f
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.parsing import ParseError, parse_action  # noqa: E402

SIZES_KB = (1, 4, 16, 64, 256, 1024)
GOAL_MS = 10.0
SIZE = (1920, 1080)
PROSE = "The Submit button is below the form, to the right of Cancel; I will press it now. "
Parser = Callable[..., object]


def _fill(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def _around(action: str, size: int) -> str:
    """`action` after 500 characters of prose, followed by prose up to `size` characters."""
    before = _fill(PROSE, 499) + " "
    return before + action + _fill(PROSE, max(size - len(before) - len(action), 0))


def _tool_call_text(size: int) -> str:
    head, tail = '<tool_call>{"name": "type", "arguments": {"text": "', '"}}</tool_call>'
    return head + _fill(PROSE, max(size - len(head) - len(tail), 0)) + tail


REPLIES: dict[str, Callable[[int], str]] = {
    "tool_call, long text": _tool_call_text,
    "JSON in prose": lambda size: _around('{"action": "click", "x": 500, "y": 300}', size),
    "call in prose": lambda size: _around("click(500, 300)", size),
    "box in prose": lambda size: _around("<ref>Submit</ref><box>[[450, 280, 550, 320]]</box>", size),
    'nested {"a": ': lambda size: _fill('{"a": ', size),
    'repeated {"': lambda size: _fill('{"', size),
    "unclosed <tool_call>": lambda size: "<tool_call>" + _fill('{"name": {"a": [1, ', size - 11),
    "repeated [[": lambda size: _fill("[[", size),
    "repeated f(": lambda size: _fill("f(", size),
}


def _old_revision() -> str | None:
    """The newest commit whose agent/parsing.py still has `_closing`, or None without git."""
    try:
        found = subprocess.run(
            ["git", "log", "-1", "--format=%H", "-S", "def _closing(", "--", "agent/parsing.py"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    if not found:
        return None
    # That commit added `_closing` (still there: HEAD has it) or removed it (its parent has it).
    return "HEAD" if "def _closing(" in _git_show(found) else f"{found}^"


def _git_show(revision: str) -> str:
    return subprocess.run(
        ["git", "show", f"{revision}:agent/parsing.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout


def _load_old(revision: str) -> ModuleType:
    """The old parser as a module, from a temporary file that is removed right after import."""
    source = _git_show(revision)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "old_parsing.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location("old_parsing", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up while it loads
        spec.loader.exec_module(module)
    return module


def _median_ms(parse: Parser, text: str, runs: int) -> tuple[float, float]:
    """Median wall and CPU milliseconds of `runs` parses (ParseError is an answer, not a failure)."""
    wall, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        try:
            parse(text, image_size=SIZE)
        except ParseError:
            pass
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall) * 1000, statistics.median(cpu) * 1000


def _result(text: str) -> str:
    try:
        action = parse_action(text, image_size=SIZE)
    except ParseError as exc:
        message = str(exc)
        return "ParseError, cut" if "was cut at" in message else f"ParseError: {message.split(';')[0][:28]}"
    return type(action).__name__


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7, help="parses per cell; the median is shown")
    parser.add_argument("--old", default=None, help="git revision of the old parser (default: found)")
    args = parser.parse_args()
    revision = args.old or _old_revision()
    old = _load_old(revision) if revision else None
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; median of {args.runs} runs; "
          f"old parser: {revision or 'not found (no git)'}\n")
    header = f"{'reply':<22} {'KB':>5} {'old ms':>8} {'new ms':>8} {'new cpu':>8} {'us/KB':>7}  result"
    print(header)
    print("-" * len(header))
    worst = 0.0
    for name, make in REPLIES.items():
        previous: tuple[int, float] | None = None
        for kb in SIZES_KB:
            text = make(kb * 1024)
            old_ms = _median_ms(old.parse_action, text, args.runs)[0] if old else float("nan")
            new_ms, new_cpu = _median_ms(parse_action, text, args.runs)
            slope = (new_ms - previous[1]) * 1000 / (kb - previous[0]) if previous else float("nan")
            previous, worst = (kb, new_ms), max(worst, new_ms)
            cells = f"{old_ms:>8.2f} {new_ms:>8.2f} {new_cpu:>8.2f} {slope:>7.1f}"
            print(f"{name:<22} {kb:>5} {cells}  {_result(text)}")
        print()
    print(f"slowest new parse: {worst:.2f} ms (goal: under {GOAL_MS:.0f} ms for any reply up to 1 MB)")


if __name__ == "__main__":
    main()
