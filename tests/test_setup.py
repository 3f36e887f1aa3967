"""What `./run setup` asks pip for: the CPU build of PyTorch, from a local wheel folder or PyTorch's CPU index."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("torch_choice", ROOT / "packaging" / "torch_choice.py")
torch_choice = sys.modules["torch_choice"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(torch_choice)


def test_without_a_local_wheel_the_cpu_index_is_used(tmp_path):
    choice = torch_choice.choose({}, [tmp_path])
    assert choice.args == ["torch==2.13.0", "--index-url", "https://download.pytorch.org/whl/cpu"]


def test_a_local_wheel_folder_is_used_as_it_is(tmp_path):
    (tmp_path / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"")
    (tmp_path / "torch-2.14.1-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"")
    choice = torch_choice.choose({}, [tmp_path])
    assert choice.args == ["torch==2.13.0"] and "torch-2.13.0+cpu" in choice.reason


def test_aurora_torch_carries_pip_options(tmp_path):
    (tmp_path / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"")
    env = {"AURORA_TORCH": "torch==2.13.0 --index-url https://download.pytorch.org/whl/cu124"}
    assert torch_choice.choose(env, [tmp_path]).args == [
        "torch==2.13.0", "--index-url", "https://download.pytorch.org/whl/cu124"]


def test_find_links_are_read_from_pip_config_and_the_environment(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    config = f":env:.find-links='{a}'\nglobal.find-links='{a}'\nglobal.index-url='https://pypi.org/simple'\n"
    assert torch_choice.find_links({"PIP_FIND_LINKS": f"file://{b}"}, config) == [b, a]
    assert torch_choice.find_links({}, "global.find-links='/no/such/folder'") == []


def test_the_script_prints_pip_arguments_and_the_reason():
    out = subprocess.run(["python3", str(ROOT / "packaging" / "torch_choice.py")], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "AURORA_TORCH": "torch==2.13.0 --pre"})
    assert out.returncode == 0
    assert out.stdout.splitlines() == ["torch==2.13.0", "--pre"] and "AURORA_TORCH" in out.stderr
