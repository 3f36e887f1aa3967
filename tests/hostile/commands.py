"""Running Aurora's commands as a hostile user would, and the one-line error every bad input must get."""

from __future__ import annotations

import subprocess
import sysconfig
from pathlib import Path

BIN = Path(sysconfig.get_path("scripts"))


def run(cmd: str, *argv, timeout: int = 300, quiet: bool = True, **kw) -> subprocess.CompletedProcess:
    """The command with its progress bars off (they would share stderr with the one line checked); `quiet=False`
    for the subcommands that have none."""
    quiet = ["--no-progress"] if quiet and cmd in ("aurora-data", "aurora-export", "aurora-train") \
        and argv[:1] != ("--help",) else []
    return subprocess.run([str(BIN / cmd), *map(str, argv), *quiet], capture_output=True, text=True,
                          timeout=timeout, **kw)


def one_line(result: subprocess.CompletedProcess, *needles: str) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1 and ": error: " in lines[0], result.stderr[-2000:]
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]
