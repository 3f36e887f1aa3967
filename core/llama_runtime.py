"""Aurora's side of llama.cpp at run time: opening a checked GGUF, and evaluating a prompt that shares a
prefix with what the KV cache holds.

Needs llama-cpp-python (the `runtime` extra, which the desktop, export and eval extras include); the rest of
`aurora_core` does not. Chat (`aurora_desktop.engine`), evaluation (`aurora_eval.backends`) and export's
`verify` open models here, so the guarded load and the prefix reuse are written once.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Callable

from .model_check import ModelCheckError


def load_llama(path: str | Path, lora: str | None = None, **kwargs):
    """`llama_cpp.Llama` on a file `check_gguf` accepted; ModelCheckError if llama.cpp refuses it anyway."""
    from llama_cpp import Llama

    try:
        with _loading_within_bounds():
            return Llama(str(path), lora_path=lora, verbose=False, **kwargs)
    except (ValueError, RuntimeError) as exc:  # llama.cpp refused the file (or the LoRA) after all
        raise ModelCheckError(f"{path}: llama.cpp could not load it ({exc})"
                              + (f" with the LoRA {lora}" if lora else "")) from None


_LOAD_LOCK = threading.Lock()


class _UncompiledTemplate:
    """Stands in for llama-cpp-python's Jinja2ChatFormatter while a model loads (never used to chat)."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def to_chat_handler(self) -> None:
        return None


META_VALUE_BYTES = 64 << 10  # of each metadata value llama-cpp-python copies into Python while loading


def _bounded_metadata(model) -> dict[str, str]:
    """llama-cpp-python's `LlamaModel.metadata`, with each value cut at META_VALUE_BYTES: its own copies and
    decodes every value whole (a 50 MB `general.name` held Python's lock, and the window's timer, 150 ms)."""
    import ctypes

    import llama_cpp

    buffer = ctypes.create_string_buffer(META_VALUE_BYTES)
    metadata = {}
    for i in range(llama_cpp.llama_model_meta_count(model.model)):
        llama_cpp.llama_model_meta_key_by_index(model.model, i, buffer, META_VALUE_BYTES)
        key = buffer.value.decode("utf-8", errors="ignore")
        llama_cpp.llama_model_meta_val_str_by_index(model.model, i, buffer, META_VALUE_BYTES)
        metadata[key] = buffer.value.decode("utf-8", errors="ignore")
    return metadata


@contextlib.contextmanager
def _loading_within_bounds():
    """Two things llama-cpp-python 0.3.36 does inside `Llama()` without limits, left out while a model loads:
    it compiles every chat template of the GGUF's metadata (a syntax error or a deeply nested template
    raises out of the constructor, and the model cannot be opened at all; Aurora renders templates itself,
    bounded, with `ChatTemplate`, and never uses llama-cpp-python's chat handlers), and it copies every
    metadata value whole into Python (`_bounded_metadata` cuts each at 64 KB)."""
    from llama_cpp import _internals
    from llama_cpp import llama as llama_module

    with _LOAD_LOCK:
        formatter, metadata = llama_module.llama_chat_format.Jinja2ChatFormatter, _internals.LlamaModel.metadata
        llama_module.llama_chat_format.Jinja2ChatFormatter = _UncompiledTemplate
        _internals.LlamaModel.metadata = _bounded_metadata
        try:
            yield
        finally:
            llama_module.llama_chat_format.Jinja2ChatFormatter = formatter
            _internals.LlamaModel.metadata = metadata


def evaluate_with_prefix(llm, ids: list[int], batch: int | None = None,
                         cancelled: Callable[[], bool] = lambda: False, reuse: bool = True) -> int:
    """Evaluate `ids`, starting after the longest prefix the KV cache already holds (its cells past that
    point are overwritten). The last id is always evaluated, for fresh logits. Evaluation runs in steps of
    `batch` ids (default: all at once) and stops between steps when `cancelled()`. Returns the ids reused."""
    kept = 0
    if reuse:
        for a, b in zip(llm.input_ids[: llm.n_tokens].tolist(), ids):
            if a != b:
                break
            kept += 1
    kept = min(kept, len(ids) - 1)
    llm.n_tokens = kept
    step = batch or max(1, len(ids) - kept)
    for i in range(kept, len(ids), step):
        if cancelled():
            break
        llm.eval(ids[i: i + step])
    return kept


MIN_SHIFTED = 8  # a shorter run of cached ids that would line up is not worth a shift


def shift_cache(llm, ids: list[int]) -> int:
    """llama.cpp's context shift, for a prompt that is the cached one with a block removed after a common prefix
    (a chat's oldest turns dropped; the system prompt kept): those cells leave the KV cache and the later cells
    move back into their positions, so `evaluate_with_prefix` then reuses them instead of evaluating them
    again. Returns how many cells were removed: 0 when nothing lines up or the model cannot shift (its
    positions are not plain RoPE), and the caller evaluates as usual.

    The moved cells keep the keys and values computed while the dropped turns were in view: close to a fresh
    evaluation of the kept turns, not equal to it (see the README: shift vs exact).
    """
    import llama_cpp

    cached = llm.input_ids[: llm.n_tokens].tolist()
    prefix = 0
    for a, b in zip(cached, ids):
        if a != b:
            break
        prefix += 1
    if prefix >= len(ids) - 1 or prefix == len(cached):
        return 0
    start, length = _aligned(cached, ids, prefix)
    if length < MIN_SHIFTED:
        return 0
    memory = llama_cpp.llama_get_memory(llm.ctx)
    if not llama_cpp.llama_memory_can_shift(memory):
        return 0
    removed = start - prefix
    llama_cpp.llama_memory_seq_rm(memory, 0, start + length, -1)  # what follows the aligned run is not reused
    llama_cpp.llama_memory_seq_rm(memory, 0, prefix, start)
    llama_cpp.llama_memory_seq_add(memory, 0, start, start + length, -removed)
    llm.input_ids[prefix: prefix + length] = cached[start: start + length]
    llm.n_tokens = prefix + length
    return removed


def _aligned(cached: list[int], ids: list[int], prefix: int) -> tuple[int, int]:
    """(start, length): the longest run cached[start:start + length] == ids[prefix:prefix + length], start > prefix."""
    first, best = ids[prefix], (0, 0)
    for start in range(prefix + 1, len(cached)):
        if cached[start] != first:
            continue
        length = 0
        while start + length < len(cached) and prefix + length < len(ids) - 1 \
                and cached[start + length] == ids[prefix + length]:
            length += 1
        if length > best[1]:
            best = (start, length)
        if start + length == len(cached):  # it runs to the end of the cache: nothing can be longer
            break
    return best


def can_shift(llm) -> bool:
    """Whether llama.cpp can move cells of this model's KV cache to other positions (plain RoPE can)."""
    import llama_cpp

    return bool(llama_cpp.llama_memory_can_shift(llama_cpp.llama_get_memory(llm.ctx)))


# ---------------------------------------------------------------- a chat's KV cache on disk

STATE_MAGIC = b"AURORA-KV-STATE 1\n"
MAX_STATE_HEADER = 64 << 10


class StateIgnored(Exception):
    """A saved state that cannot be used here (another model, truncated, damaged): the chat is evaluated instead."""


def save_sequence(llm, path: Path, key: dict) -> int:
    """The KV cache of sequence 0 and the token ids it holds, written to `path` (whole or not at all) with `key`
    (what it is valid for: model, LoRA, n_ctx, cache types). Returns the bytes written; OSError when the disk
    refuses."""
    import ctypes
    import hashlib
    import json

    import llama_cpp

    from .files import new_file

    n = llm.n_tokens
    size = llama_cpp.llama_state_seq_get_size(llm.ctx, 0)
    blob = (ctypes.c_uint8 * size)()
    written = llama_cpp.llama_state_seq_get_data(llm.ctx, blob, size, 0)
    data = memoryview(blob)[:written]
    tokens = llm.input_ids[:n].astype("<i4").tobytes()
    header = {"key": key, "tokens": n, "state_bytes": written, "sha256": hashlib.sha256(data).hexdigest()}
    with new_file(path, "wb") as f:
        f.write(STATE_MAGIC + json.dumps(header).encode() + b"\n")
        f.write(tokens)
        f.write(data)
    return path.stat().st_size


def load_sequence(llm, path: Path, key: dict) -> int:
    """Restore what `save_sequence` wrote, if it was made for `key`; returns the token ids restored. Anything
    else raises StateIgnored with the reason, and the cache is left empty (never half restored)."""
    import ctypes
    import hashlib
    import json

    import llama_cpp
    import numpy as np

    try:
        with open(path, "rb") as f:
            if f.read(len(STATE_MAGIC)) != STATE_MAGIC:
                raise StateIgnored(f"{path}: not an Aurora KV state")
            line = f.readline(MAX_STATE_HEADER)
            try:
                header = json.loads(line)
                n, size, digest = int(header["tokens"]), int(header["state_bytes"]), str(header["sha256"])
            except (ValueError, KeyError, TypeError):
                raise StateIgnored(f"{path}: damaged header") from None
            if header.get("key") != key:
                raise StateIgnored(f"{path}: made for another model or settings")
            if not 0 < n <= llm.n_ctx() or path.stat().st_size != len(STATE_MAGIC) + len(line) + 4 * n + size:
                raise StateIgnored(f"{path}: truncated or of the wrong size")
            tokens = np.frombuffer(f.read(4 * n), dtype="<i4")
            data = f.read(size)
    except OSError as exc:
        raise StateIgnored(f"{path}: cannot read it ({exc.strerror})") from None
    if hashlib.sha256(data).hexdigest() != digest:
        raise StateIgnored(f"{path}: damaged (its checksum differs)")
    memory = llama_cpp.llama_get_memory(llm.ctx)
    llama_cpp.llama_memory_seq_rm(memory, 0, -1, -1)
    llm.n_tokens = 0
    if not llama_cpp.llama_state_seq_set_data(llm.ctx, (ctypes.c_uint8 * size).from_buffer_copy(data), size, 0):
        llama_cpp.llama_memory_seq_rm(memory, 0, -1, -1)
        raise StateIgnored(f"{path}: llama.cpp refused it")
    llm.input_ids[:n] = tokens
    llm.n_tokens = n
    return n
