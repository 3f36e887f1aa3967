"""Every console command explains itself, starts fast and exits quietly when its reader goes away."""

from __future__ import annotations

import subprocess
import sysconfig
from pathlib import Path

import pytest

BIN = Path(sysconfig.get_path("scripts"))
COMMANDS = ["aurora-desktop", "aurora-chat", "aurora-serve", "aurora-kb", "aurora-export", "aurora-train", "aurora-data",
            "aurora-eval"]


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_explains_the_command(command):
    result = run(command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {command}")
    assert len(result.stdout.split()) > 15  # a description, not just a usage line


@pytest.mark.slow  # runs in CI (./run test), not in ./run test --fast
def test_tiny_base_command_writes_a_checkpoint(tmp_path):
    result = run("aurora-train", "tiny-base", "--out", str(tmp_path / "kit"), "--layers", "1", "--experts", "2")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "kit" / "model.safetensors.index.json").is_file()
    again = run("aurora-train", "tiny-base", "--out", str(tmp_path / "kit"))
    assert again.returncode == 2
    assert again.stderr.strip() == f"aurora-train: error: {tmp_path / 'kit'}: folder exists and is not empty; pass --force to replace it"


def test_tiny_base_rejects_a_bad_shape_in_one_line(tmp_path):
    result = run("aurora-train", "tiny-base", "--out", str(tmp_path / "kit"), "--top-k", "9")
    assert result.returncode == 2
    assert result.stderr.strip() == "aurora-train: error: --top-k 9 cannot exceed --experts 4"
    assert not (tmp_path / "kit").exists()


def test_desktop_opens_a_window_and_closes_cleanly(tmp_path):
    import os

    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path / "data"),
               XDG_CONFIG_HOME=str(tmp_path / "config"))
    result = subprocess.run([str(BIN / "aurora-desktop"), "--exit-after-show", "--language", "zh_CN"],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("window shown after ")
    assert list((tmp_path / "data").rglob("chats.sqlite"))  # the database lives in the platform's data folder


def _closed_early(argv: list[str], env: dict) -> subprocess.CompletedProcess:
    """`COMMAND ... | head -c 1`: the reader goes away after one byte."""
    import shlex

    line = " ".join(shlex.quote(a) for a in [str(BIN / argv[0]), *argv[1:]]) + " | head -c 1 > /dev/null"
    return subprocess.run(["bash", "-o", "pipefail", "-c", line], capture_output=True, text=True, timeout=300,
                          env=env)


def test_a_closed_stdout_is_a_quiet_exit(exported, tmp_path):
    """Every command, its output piped into a reader that closes early, exits 0 and says nothing."""
    import os

    env = dict(os.environ, PYTHONUNBUFFERED="1", QT_QPA_PLATFORM="offscreen", AURORA_KB_DIR=str(tmp_path / "kb"))
    model = str(exported["q8_0"])
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text("混合专家模型在每一层选择两个专家。" * 20, encoding="utf-8")
    cases = [[c, "--help"] for c in COMMANDS] + [
        ["aurora-kb", "add", "k", str(notes), "--no-progress"],
        ["aurora-kb", "search", "k", "专家"],
        ["aurora-export", "inspect", model],
        ["aurora-chat", model, "--prompt", "你好", "--max-tokens", "64", "--temperature", "0"],
        ["aurora-train", "run", "--help"],
    ]
    for argv in cases:
        result = _closed_early(argv, env)
        assert (result.returncode, result.stderr) == (0, ""), argv
