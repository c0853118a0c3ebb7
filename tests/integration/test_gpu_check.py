"""bench/gpu_check.sh runs end to end on the CPU with tiny sizes and writes its files under $OUT."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.model

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_quick_on_the_cpu_writes_every_part(tmp_path: Path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    done = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu_check.sh"), "--device", "cpu", "--quick"],
        env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for name in ("env", "summary", "ceilings", "pytest-gpu", "gpu_step", "model_step", "quantization"):
        assert (tmp_path / f"{name}.txt").is_file(), name
    summary = (tmp_path / "summary.txt").read_text()
    for name in ("ceilings", "pytest-gpu", "gpu_step", "model_step"):
        assert f"{name}: ok" in summary, summary
    assert "quantization: skipped" in summary
    assert "TFLOP/s" in (tmp_path / "ceilings.txt").read_text()
    model_step = (tmp_path / "model_step.txt").read_text()
    assert "unchanged screen" in model_step and "best-of-4" in model_step
