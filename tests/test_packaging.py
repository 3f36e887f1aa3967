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
        if name == "aurora-desktop":  # one of our own extras: its requirements, from pyproject.toml
            extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
            todo += [r for extra in re.findall(r"\w+", req.split("[", 1)[1]) for r in extras[extra]]
            continue
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


def imported_after_loading(package: str, watched: set[str]) -> list[str]:
    """The `watched` top-level modules that importing every module of `package` pulls in (a fresh process)."""
    code = (
        f"import sys, pkgutil, importlib, {package}\n"
        f"for m in pkgutil.walk_packages({package}.__path__, '{package}.'):\n"
        "    importlib.import_module(m.name)\n"
        f"print(','.join(sorted(n for n in sys.modules if n.split('.')[0] in {sorted(watched)!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [x for x in out.stdout.strip().split(",") if x]


def test_aurora_desktop_imports_no_heavy_package():
    assert imported_after_loading("aurora_desktop", HEAVY | {"aurora_training", "aurora_export"}) == []


def test_folders_map_to_collision_free_import_names():
    import aurora_export
    import aurora_training

    assert Path(aurora_training.__file__).parent == ROOT / "training"
    assert Path(aurora_export.__file__).parent == ROOT / "export"


PACKAGES = {"aurora_core": ROOT / "core", "aurora_desktop": ROOT / "aurora_desktop",
            "aurora_training": ROOT / "training", "aurora_export": ROOT / "export", "aurora_eval": ROOT / "evaluate"}


def _imported_packages(folder: Path) -> dict[str, set[str]]:
    """Every aurora_* package each file under `folder` imports (absolute imports; relative ones stay inside)."""
    import ast

    out: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            found |= {n.split(".")[0] for n in names if n.startswith("aurora_")}
        out[str(path.relative_to(ROOT))] = found
    return out


def test_stages_import_aurora_core_and_never_each_other():
    bad = []
    for package, folder in PACKAGES.items():
        allowed = {package} if package == "aurora_core" else {package, "aurora_core"}
        for path, imported in _imported_packages(folder).items():
            bad += [f"{path} imports {other}" for other in sorted(imported - allowed)]
    assert bad == []
    # The check itself can fail: a stage that imported another stage would be listed.
    assert "aurora_core" in _imported_packages(ROOT / "export")["export/pipeline.py"]


def test_aurora_core_imports_no_torch_and_no_qt():
    watched = HEAVY | {"PySide6", "shiboken6", "numpy", "gguf", "llama_cpp"}
    assert imported_after_loading("aurora_core", watched) == []
    assert "torch" in imported_after_loading("aurora_export", {"torch"})  # the check itself can fail


def test_every_extra_installs_aurora_core_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert _name(project["dependencies"][0]) == "jinja2"  # aurora_core's one dependency, in the base install
    assert "aurora_core" in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]


def test_the_tensor_table_uses_llama_cpps_names():
    """Our Mixtral table against gguf-py's own tensor tables (llama.cpp's names, written by others)."""
    import gguf

    from aurora_core import mixtral

    arch = gguf.MODEL_ARCH.LLAMA
    names = {gguf.TENSOR_NAMES[t] for t in gguf.MODEL_TENSORS[arch]}
    mapping = gguf.get_tensor_name_map(arch, 4)
    for spec in mixtral.ALL_SPECS:
        assert spec.gguf.removesuffix(".weight") in names, spec.gguf
        hf = spec.hf.format(bid=1, xid=0).removesuffix(".weight")
        if ".experts." not in hf:  # gguf-py maps the per-expert names only when merging them itself
            assert mapping.get_name(hf) == spec.gguf.format(bid=1).removesuffix(".weight"), hf


def _module_graph() -> dict[str, set[str]]:
    """Module -> the project's modules it imports anywhere in its file (a lazy import inside a function
    counts: it hides a circle, it does not remove it)."""
    import ast

    files = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            name = ".".join((package,) + (parts[:-1] if parts[-1] == "__init__" else parts))
            files[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        here = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = here.split(".")
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            edges |= {t for t in targets if t in files and t != name}
        graph[name] = edges
    return graph


def _circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the list of modules around it, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_circles_inside_or_between_stages():
    graph = _module_graph()
    assert "aurora_export.merge" in graph["aurora_export.imatrix"]  # lazy imports are seen
    assert _circle(graph) is None, " -> ".join(_circle(graph))
    # The check itself can fail: the circle export had (imatrix -> pipeline -> imatrix) is found.
    broken = {k: set(v) for k, v in graph.items()}
    broken["aurora_export.imatrix"].add("aurora_export.pipeline")
    broken["aurora_export.pipeline"].add("aurora_export.imatrix")
    assert _circle(broken) is not None
