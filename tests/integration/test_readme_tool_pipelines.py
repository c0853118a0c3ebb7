"""The README's tool pipeline examples run exactly as written, so the README cannot rot.

Each ```python block of the "Tool pipelines" section is taken from README.md as it is and
run in a fresh Python process, in an empty folder; each `print(...)  # shown` line's comment
is what that line must print (`<...>` stands for any text, such as a run's id).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _examples() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("### Tool pipelines")
    end = text.index("\n## ", start)
    return re.findall(r"```python\n(.*?)```", text[start:end], flags=re.DOTALL)


def _shown(code: str) -> list[re.Pattern[str]]:
    """What each commented print line must print, as a pattern."""
    patterns = []
    for line in code.splitlines():
        found = re.match(r"print\(.*\)\s+#\s*(.+)$", line)
        if found:
            parts = re.split(r"<[^<>]*>", found.group(1).strip())
            patterns.append(re.compile(".+".join(re.escape(part) for part in parts) + r"$"))
    return patterns


def test_the_section_has_examples_that_say_what_they_print():
    examples = _examples()
    assert len(examples) >= 2
    assert all(_shown(code) for code in examples)


@pytest.mark.parametrize("index", range(len(_examples())))
def test_a_readme_example_runs_and_prints_what_it_says(tmp_path, index):
    code = _examples()[index]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    printed = done.stdout.splitlines()
    patterns = _shown(code)
    assert len(printed) == len(patterns), done.stdout
    for pattern, line in zip(patterns, printed, strict=True):
        assert pattern.match(line), (pattern.pattern, line)
    assert list(tmp_path.glob("runs/*/run.json"))  # the run is on disk where the example said
