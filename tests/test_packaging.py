"""The desktop install stays small: no torch anywhere in its dependency closure or its imports."""

from __future__ import annotations

import importlib.metadata as md
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = {"torch", "transformers", "peft", "bitsandbytes", "accelerate"}


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;(]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _closure(requirements: list[str]) -> set[str]:
    """Names of every distribution pulled in by `requirements`, read from installed metadata."""
    seen: set[str] = set()
    todo = [r for r in requirements]
    while todo:
        req = todo.pop()
        if ";" in req and "extra ==" in req.split(";", 1)[1]:
            continue  # optional extras of a dependency are not installed by it
        name = _name(req)
        if name in seen:
            continue
        seen.add(name)
        try:
            todo += md.requires(name) or []
        except md.PackageNotFoundError:
            pass  # platform-conditional dependency not installed here
    return seen


def test_desktop_extra_does_not_pull_torch():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    closure = _closure(extras["desktop"])
    assert {"llama-cpp-python", "pyside6-essentials", "gguf", "numpy"} <= closure
    assert not closure & HEAVY, closure & HEAVY
    # The check itself can fail: the train extra does pull torch.
    assert "torch" in _closure(extras["train"])


def test_aurora_desktop_imports_no_heavy_package():
    code = (
        "import sys, pkgutil, importlib, aurora_desktop\n"
        "for m in pkgutil.walk_packages(aurora_desktop.__path__, 'aurora_desktop.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in "
        "{'torch', 'transformers', 'peft', 'bitsandbytes', 'aurora_training', 'aurora_export'})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_folders_map_to_collision_free_import_names():
    import aurora_export
    import aurora_training

    assert Path(aurora_training.__file__).parent == ROOT / "training"
    assert Path(aurora_export.__file__).parent == ROOT / "export"
