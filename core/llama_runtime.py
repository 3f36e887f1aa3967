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
        with _templates_left_to_aurora():
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


@contextlib.contextmanager
def _templates_left_to_aurora():
    """llama-cpp-python 0.3.36 compiles every chat template of the GGUF's metadata inside `Llama()`, with
    no limits: a syntax error or a deeply nested template raises out of the constructor and the model
    cannot be opened at all. Aurora renders templates itself, bounded (`ChatTemplate`), and never uses
    llama-cpp-python's chat handlers, so while a model loads that compilation is skipped."""
    from llama_cpp import llama as llama_module

    with _LOAD_LOCK:
        original = llama_module.llama_chat_format.Jinja2ChatFormatter
        llama_module.llama_chat_format.Jinja2ChatFormatter = _UncompiledTemplate
        try:
            yield
        finally:
            llama_module.llama_chat_format.Jinja2ChatFormatter = original


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
