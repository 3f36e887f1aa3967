"""Which Mixtral-8x7B GGUF fits this computer: the first screen's advice, computed without Qt.

A model loads into memory as its file plus the KV cache at the chosen context (the formula the model panel
and `check_gguf` use); the rest of the computer needs room too (`SYSTEM_RESERVE`). Sizes are those of the
public Mixtral-8x7B-Instruct GGUF releases in each type; `aurora-export gguf` writes files of the same size.
"""

from __future__ import annotations

from dataclasses import dataclass

from aurora_core.mixtral import MIXTRAL_8X7B
from aurora_core.model_check import DEFAULT_N_CTX, kv_cache_bytes, total_memory

GiB = 2**30
SYSTEM_RESERVE = 4 * GiB  # the operating system, this window and the user's other programs


@dataclass(frozen=True)
class QuantType:
    name: str  # llama.cpp's file type, as aurora-export gguf --type writes it
    file_bytes: int  # Mixtral-8x7B-Instruct in this type
    quality: str  # the cost in quality, in words (translated by the window)


MIXTRAL_TYPES = (  # best first
    QuantType("Q8_0", 49_620_000_000, "practically lossless"),
    QuantType("Q6_K", 38_380_000_000, "nearly lossless"),
    QuantType("Q5_K_M", 32_230_000_000, "very small loss"),
    QuantType("Q4_K_M", 26_440_000_000, "small loss; the usual choice"),
    QuantType("Q3_K_M", 20_360_000_000, "clear loss"),
    QuantType("Q2_K", 15_640_000_000, "large loss; only if nothing else fits"),
)


@dataclass(frozen=True)
class Fit:
    type: QuantType
    need_bytes: int  # file + KV cache
    fits: bool


def mixtral_fits(n_ctx: int = DEFAULT_N_CTX, kv_bytes_per_element: float = 2.0,
                 memory: int | None = None) -> list[Fit]:
    """Each Mixtral-8x7B type with what it needs at `n_ctx` and whether `memory` (default: this computer's
    physical memory) holds it with `SYSTEM_RESERVE` to spare."""
    memory = total_memory() if memory is None else memory
    shape = MIXTRAL_8X7B
    kv = kv_cache_bytes(shape.num_layers, shape.num_kv_heads * shape.head_dim, n_ctx, kv_bytes_per_element)
    return [Fit(t, t.file_bytes + kv, t.file_bytes + kv <= memory - SYSTEM_RESERVE) for t in MIXTRAL_TYPES]


def recommended(fits: list[Fit]) -> Fit | None:
    """The best type that fits, None when none does."""
    return next((f for f in fits if f.fits), None)
