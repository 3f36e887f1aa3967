"""Quantize a GGUF with llama.cpp's own quantizer (k-quants included), through llama-cpp-python."""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from pathlib import Path

# Output type -> llama.cpp file type, and approximate bits per weight (for the size check and progress).
QUANT_TYPES = {
    "q8_0": ("LLAMA_FTYPE_MOSTLY_Q8_0", 8.5),
    "q6_k": ("LLAMA_FTYPE_MOSTLY_Q6_K", 6.6),
    "q5_k_m": ("LLAMA_FTYPE_MOSTLY_Q5_K_M", 5.7),
    "q5_0": ("LLAMA_FTYPE_MOSTLY_Q5_0", 5.5),
    "q4_k_m": ("LLAMA_FTYPE_MOSTLY_Q4_K_M", 4.9),
    "q4_0": ("LLAMA_FTYPE_MOSTLY_Q4_0", 4.5),
    "q3_k_m": ("LLAMA_FTYPE_MOSTLY_Q3_K_M", 3.9),
    "q2_k": ("LLAMA_FTYPE_MOSTLY_Q2_K", 3.0),
}


class QuantizeError(RuntimeError):
    pass


def quantize(src: Path, dst: Path, qtype: str, threads: int | None = None, progress: bool = True,
             n_params: int | None = None) -> Path:
    """llama.cpp's `llama_model_quantize` from `src` (F32/F16/BF16 GGUF) to `dst`, via a temporary file."""
    import llama_cpp
    from tqdm import tqdm

    name, bpw = QUANT_TYPES[qtype]
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, name)
    params.nthread = threads or os.cpu_count() or 1
    tmp = dst.with_name(f".{dst.name}.partial")
    result: dict[str, int] = {}

    def work() -> None:
        result["rc"] = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params))

    expected = int(n_params * bpw / 8) if n_params else src.stat().st_size // 3
    worker = threading.Thread(target=work, daemon=True)
    quiet = llama_cpp_logger()
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # llama.cpp's per-tensor lines would drown the progress bar
    try:
        with tqdm(total=expected, unit="B", unit_scale=True, desc=f"quantize {qtype}", disable=not progress) as bar:
            worker.start()
            while worker.is_alive():
                worker.join(0.2)
                done = tmp.stat().st_size if tmp.exists() else 0
                bar.update(max(0, min(done, expected) - bar.n))
            bar.update(expected - bar.n)
        if result.get("rc", 1) != 0:
            raise QuantizeError(f"{src}: llama.cpp could not quantize to {qtype} (status {result.get('rc')})")
        os.replace(tmp, dst)
    finally:
        if worker.is_alive():  # interrupted: let llama.cpp finish writing before the file is removed
            worker.join()
        quiet.setLevel(level)
        tmp.unlink(missing_ok=True)
    return dst


def llama_cpp_logger() -> logging.Logger:
    """The logger through which llama-cpp-python forwards llama.cpp's own log lines."""
    from llama_cpp._logger import logger

    return logger
