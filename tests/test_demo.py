"""`./run demo` end to end, as a newcomer runs it (with PYTHONUNBUFFERED=1, common in containers and CI)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_runs_the_whole_chain(tmp_path):
    out = tmp_path / "demo"
    env = dict(os.environ, PYTHONUNBUFFERED="1", AURORA_DEMO_DIR=str(out), AURORA_DEMO_STEPS="60")
    result = subprocess.run([str(ROOT / "run"), "demo"], capture_output=True, text=True, timeout=900, env=env,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    for artifact in ("tiny-base/model.safetensors.index.json", "data/train.jsonl", "data/manifest.json",
                     "data-report/report.md", "run/adapter/adapter_model.safetensors", "run/metrics.jsonl",
                     "aurora-f16.gguf", "aurora-q8_0.gguf", "base-q8_0.gguf"):
        assert (out / artifact).is_file(), artifact
    stdout = result.stdout
    assert "\nPASS\n" in stdout and "file type Q8_0" in stdout
    table = [line for line in stdout.splitlines() if line.startswith("| ") and "？" in line]
    assert len(table) == 3 and all(len(row.split("|")) == 5 for row in table)
    assert "Traceback" not in result.stderr and "Broken pipe" not in result.stderr
    assert "| C-Eval val (" in stdout and "| CMMLU (" in stdout and "| MMLU (" in stdout
    assert (out / "eval" / "results.json").is_file()
