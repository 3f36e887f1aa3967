"""Hostile GGUF files: never a hang, an abort, a traceback or a crash; one line naming the file.

Each file is made here from a valid export. The command-line cases run in a subprocess with a timeout:
without the guard the bombs hang (unbounded allocation) and the bad values abort llama.cpp (rc 134).
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import gguf
import pytest

from aurora_core.model_check import ModelCheckError, check_gguf
from gguf_forge import patch_array_count, patch_string_length, rename_key, rewrite

BIN = Path(sysconfig.get_path("scripts"))
U32, STR, ARR = gguf.GGUFValueType.UINT32, gguf.GGUFValueType.STRING, gguf.GGUFValueType.ARRAY


@pytest.fixture(scope="module")
def valid(exported):
    return exported["f16"]


def one_line_error(argv: list[str], needle: str, timeout: int = 60) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert len(lines) == 1 and needle in lines[0], result.stderr
    assert result.stdout == ""
    return lines[0]


BAD_VALUES = [  # key, value, the message
    ("llama.expert_used_count", 0, "llama.expert_used_count = 0"),
    ("llama.expert_used_count", 5, "llama.expert_used_count = 5"),
    ("llama.expert_count", 0, "expert_used_count is set but the model has no experts"),
    ("llama.expert_count", 100000, "llama.expert_count = 100000"),
    ("llama.block_count", 0, "llama.block_count = 0"),
    ("llama.context_length", 2**31, "llama.context_length = 2147483648"),
    ("llama.attention.head_count", 0, "llama.attention.head_count = 0"),
]


@pytest.mark.parametrize("key,value,message", BAD_VALUES, ids=[f"{k}={v}" for k, v, _ in BAD_VALUES])
def test_values_llama_cpp_aborts_on_are_refused_first(valid, tmp_path, key, value, message):
    bad = rewrite(valid, tmp_path / "bad.gguf", {key: (value, U32)})
    with pytest.raises(ModelCheckError, match=message.replace("(", r"\(")):
        check_gguf(bad)
    one_line_error([str(BIN / "aurora-chat"), str(bad), "--prompt", "你好"], message)


def test_duplicate_and_empty_tokens(valid, tmp_path):
    tokens = [bytes(p).decode() for p in (lambda f: [f.parts[i] for i in f.data])(
        gguf.GGUFReader(str(valid)).fields["tokenizer.ggml.tokens"])]
    dup = list(tokens)
    dup[300] = dup[301]
    with pytest.raises(ModelCheckError, match=r"token 301 .* appears twice"):
        check_gguf(rewrite(valid, tmp_path / "dup.gguf", tokens=dup))
    empty = list(tokens)
    empty[400] = ""
    with pytest.raises(ModelCheckError, match="token 400 of the vocabulary is empty"):
        check_gguf(rewrite(valid, tmp_path / "empty.gguf", tokens=empty))
    one_line_error([str(BIN / "aurora-chat"), str(tmp_path / "dup.gguf"), "--prompt", "x"], "appears twice")


def test_duplicate_key_is_one_line(valid, tmp_path):
    bad = rewrite(valid, tmp_path / "dupkey.gguf", extra={"aurora.k1": ("a", STR), "aurora.k2": ("b", STR)})
    rename_key(bad, "aurora.k2", "aurora.k1")
    with pytest.raises(ModelCheckError, match="'aurora.k1' appears twice"):
        check_gguf(bad)


@pytest.fixture(scope="module")
def bombs(valid, tmp_path_factory):
    """Length fields patched to absurd values: gguf-py's reader would allocate them."""
    folder = tmp_path_factory.mktemp("bombs")
    array = rewrite(valid, folder / "array.gguf", extra={"aurora.bytes": ([1, 2, 3, 4], ARR)})
    patch_array_count(array, "aurora.bytes", 2**40)
    string = rewrite(valid, folder / "string.gguf")
    patch_string_length(string, "general.name", 2**60)
    return {"array": array, "string": string}


@pytest.mark.parametrize("kind", ["array", "string"])
def test_length_bombs_are_refused_at_once_by_every_command(bombs, export_kit, kind):
    bomb = str(bombs[kind])
    with pytest.raises(ModelCheckError, match="damaged or hostile|truncated or damaged"):
        check_gguf(bomb)
    for argv in ([str(BIN / "aurora-chat"), bomb, "--prompt", "x"],
                 [str(BIN / "aurora-export"), "inspect", bomb],
                 [str(BIN / "aurora-export"), "verify", bomb, "--base", str(export_kit)]):
        line = one_line_error(argv, bomb, timeout=120)
        assert "damaged" in line


def test_control_characters_in_metadata_are_shown_escaped(valid, tmp_path):
    evil = rewrite(valid, tmp_path / "evil.gguf", {"general.name": ("evil\x1b[2J\x1b]0;pwned\x07name", STR)})
    out = subprocess.run([str(BIN / "aurora-export"), "inspect", str(evil)], capture_output=True, text=True)
    assert out.returncode == 0 and "\x1b" not in out.stdout and "\\x1b[2J" in out.stdout
    import pexpect

    repl = pexpect.spawn(str(BIN / "aurora-chat"), [str(evil)], encoding="utf-8", timeout=120)
    repl.expect(">>> ")
    banner = repl.before
    repl.sendline("/exit")
    repl.expect(pexpect.EOF)
    assert "\x1b" not in banner and "evil\\x1b[2J" in banner


FUZZ = r"""
import random, sys, os
from pathlib import Path
from aurora_core.errors import AuroraError
from aurora_core.model_check import check_gguf
from aurora_desktop.engine import ChatEngine, EngineConfig
src, work, n, seed = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
data = src.read_bytes()
header_end = 64 * 1024  # metadata, vocabulary and tensor infos of the tiny model
rng = random.Random(seed)
loaded = refused = 0
for i in range(n):
    b = bytearray(data)
    kind = i % 3
    if kind == 0:
        for _ in range(rng.randint(1, 8)):
            pos = rng.randrange(header_end)
            b[pos] ^= 1 << rng.randrange(8)
    elif kind == 1:
        b = b[: rng.randrange(len(b))]
    else:
        pos = rng.randrange(4, header_end - 8)
        b[pos:pos + 8] = rng.choice([b"\xff" * 8, b"\x00" * 8, (2**31).to_bytes(8, "little"), rng.randbytes(8)])
    path = work / f"m{i}.gguf"
    path.write_bytes(bytes(b))
    print(i, flush=True)  # the last number printed names the mutation that crashed, if one did
    try:
        check_gguf(path)
        engine = ChatEngine(path, EngineConfig(n_ctx=64, n_threads=1))
        engine.close()
        loaded += 1
    except AuroraError:
        refused += 1
    path.unlink()
print(f"done loaded={loaded} refused={refused}")
"""


def test_fuzzed_ggufs_never_crash_hang_or_traceback(valid, tmp_path):
    """300 random mutations (bit flips, truncations, field overwrites) through the pre-check and the loader."""
    result = subprocess.run([sys.executable, "-c", FUZZ, str(valid), str(tmp_path), "300", "7"],
                            capture_output=True, text=True, timeout=600)
    last = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "nothing"
    assert result.returncode == 0, f"mutation {last} crashed (rc {result.returncode}): {result.stderr[-1500:]}"
    assert last.startswith("done") and "Traceback" not in result.stderr
