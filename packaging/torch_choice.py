"""Which PyTorch `./run setup` installs, and from where. Standard library only (runs before the venv has anything).

    python packaging/torch_choice.py          prints pip's arguments, one per line; the reason on stderr

- `AURORA_TORCH` set: its words are pip's arguments, options included
  (`AURORA_TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu124"` for a CUDA build).
- A local wheel folder that pip is configured to use (`find-links`) holds the wanted torch: plain
  `torch==VERSION` (pip takes it from there; an offline machine keeps working).
- Otherwise: `torch==VERSION --index-url https://download.pytorch.org/whl/cpu`, PyTorch's own CPU index,
  so that a normal machine does not download the CUDA build and its ~15 nvidia-* packages (several GB).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

VERSION = "2.13.0"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


@dataclass(frozen=True)
class Choice:
    args: list[str]
    reason: str


def find_links(env: dict, pip_config: str) -> list[Path]:
    """Local folders pip looks in: PIP_FIND_LINKS and `find-links` lines of `pip config list`."""
    values = env.get("PIP_FIND_LINKS", "").split()
    values += re.findall(r"find-links='([^']*)'", pip_config)
    out = []
    for v in values:
        for part in v.split():
            path = Path(part.removeprefix("file://"))
            if path.is_dir() and path not in out:
                out.append(path)
    return out


def choose(env: dict, folders: list[Path], version: str = VERSION) -> Choice:
    if env.get("AURORA_TORCH", "").strip():
        return Choice(shlex.split(env["AURORA_TORCH"]), "AURORA_TORCH")
    for folder in folders:
        wheels = sorted(folder.glob(f"torch-{version}*.whl"))
        if wheels:
            return Choice([f"torch=={version}"], f"the local wheel {wheels[0]}")
    return Choice([f"torch=={version}", "--index-url", CPU_INDEX], f"PyTorch's CPU wheel index ({CPU_INDEX}; no CUDA)")


def main() -> int:
    try:
        config = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                                timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        config = ""
    choice = choose(dict(os.environ), find_links(dict(os.environ), config))
    print("\n".join(choice.args))
    print(f"== PyTorch: {' '.join(choice.args)}  (from {choice.reason})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
