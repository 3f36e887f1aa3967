"""Quantize a GGUF with llama.cpp's own quantizer (k-quants included), through llama-cpp-python."""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from pathlib import Path

import numpy as np

from aurora_core.errors import AuroraError

from .file_types import NEEDS_IMATRIX, QUANT_TYPES

class QuantizeError(AuroraError):
    pass


def imatrix_param(imatrix) -> tuple:
    """(pointer for llama_model_quantize_params.imatrix, what must stay alive while it is used)."""
    import llama_cpp

    names = sorted(imatrix.sums)
    arrays = [np.ascontiguousarray(imatrix.values(n).ravel(), dtype=np.float32) for n in names]
    entries = (llama_cpp.llama_model_imatrix_data * (len(names) + 1))()  # NULL-terminated
    encoded = [n.encode() for n in names]
    for i, (name, arr) in enumerate(zip(encoded, arrays)):
        entries[i].name = name
        entries[i].data = arr.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        entries[i].size = arr.size
    return ctypes.cast(entries, ctypes.POINTER(llama_cpp.llama_model_imatrix_data)), (entries, arrays, encoded)


def quantize(src: Path, dst: Path, qtype: str, threads: int | None = None, progress: bool = True,
             n_params: int | None = None, imatrix=None) -> Path:
    """llama.cpp's `llama_model_quantize` from `src` (F32/F16/BF16 GGUF) to `dst`, via a temporary file;
    `imatrix` (export.imatrix.Imatrix) guides the rounding and unlocks the i-quants."""
    import llama_cpp
    from tqdm import tqdm

    name, bpw = QUANT_TYPES[qtype]
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, name)
    params.nthread = threads or os.cpu_count() or 1
    keep_alive = None
    if imatrix is not None:
        params.imatrix, keep_alive = imatrix_param(imatrix)
    elif qtype in NEEDS_IMATRIX:
        raise QuantizeError(f"{qtype} needs an importance matrix: make one with `aurora-export imatrix` and pass "
                            "--imatrix FILE")
    tmp = dst.with_name(f".{dst.name}.partial")
    result: dict[str, int] = {}

    def work() -> None:
        result["rc"] = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params))

    expected = int(n_params * bpw / 8) if n_params else src.stat().st_size // 3
    worker = threading.Thread(target=work, daemon=True)
    llama_cpp.llama_log_set(_warnings_only(), ctypes.c_void_p(0))  # per-tensor lines would drown the bar
    try:
        with tqdm(total=expected, unit="B", unit_scale=True, desc=f"quantize {qtype}", disable=not progress) as bar:
            worker.start()
            while worker.is_alive():
                worker.join(0.2)
                done = tmp.stat().st_size if tmp.exists() else 0
                bar.update(max(0, min(done, expected) - bar.n))
            bar.update(expected - bar.n)
        if result.get("rc", 1) != 0:
            guided = f" with the importance matrix {imatrix.path}" if imatrix is not None else ""
            raise QuantizeError(f"{dst}: llama.cpp could not quantize to {qtype}{guided} (status {result.get('rc')})"
                                + ("; is the importance matrix made for this model?" if guided else ""))
        os.replace(tmp, dst)
        del keep_alive
    finally:
        if worker.is_alive():  # interrupted: let llama.cpp finish writing before the file is removed
            worker.join()
        from llama_cpp._logger import llama_log_callback

        llama_cpp.llama_log_set(llama_log_callback, ctypes.c_void_p(0))  # llama-cpp-python's own again
        tmp.unlink(missing_ok=True)
    return dst


GGML_LOG_LEVEL_WARN = 3
GGML_LOG_LEVEL_CONT = 5
_last_level = [0]


def _log_warnings(level: int, text: bytes, user_data) -> None:
    """llama.cpp log callback: warnings and errors to stderr, the rest dropped."""
    if level != GGML_LOG_LEVEL_CONT:
        _last_level[0] = level
    if _last_level[0] >= GGML_LOG_LEVEL_WARN and level != 0:
        sys.stderr.write(text.decode("utf-8", errors="replace"))


_CALLBACK: list = []  # the ctypes callback must outlive every call into llama.cpp


def _warnings_only():
    if not _CALLBACK:
        import llama_cpp

        _CALLBACK.append(llama_cpp.llama_log_callback(_log_warnings))
    return _CALLBACK[0]
