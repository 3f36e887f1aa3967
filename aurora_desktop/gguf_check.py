"""Check a GGUF file before llama.cpp opens it: a bad file gets a clear message, never a crash.

Reads the header with the `gguf` package (no tensor data is touched) and checks: it is a GGUF, it
is complete (every tensor's data lies inside the file), its architecture is one llama.cpp runs,
and it fits in the memory this machine has available.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from aurora_core import gguf_meta
from aurora_core.errors import AuroraError
from aurora_core.gguf_meta import field_value

GGUF_MAGIC = b"GGUF"


class ModelCheckError(AuroraError):
    """A GGUF that cannot be loaded; the message names the file and what to do."""


@dataclass
class ModelInfo:
    path: Path
    architecture: str
    name: str
    file_size: int
    n_params: int
    context_length: int
    expert_count: int
    chat_template: str | None
    metadata: dict = field(default_factory=dict)
    kv_cache_bytes: int = 0
    """K and V cache at the context the engine allocates."""
    n_ctx: int = 0
    """The context the memory check counted (the model's own for 0)."""


def available_memory() -> int:
    """Bytes of memory available to a new allocation (MemAvailable on Linux, physical RAM elsewhere)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def supported_architectures() -> set[str]:
    import gguf

    return set(gguf.MODEL_ARCH_NAMES.values())


def check_gguf(path: str | Path, n_ctx: int = 4096, memory: int | None = None,
               kv_bytes_per_element: float = 2.0) -> ModelInfo:
    """ModelInfo of a loadable GGUF, or ModelCheckError saying what is wrong.

    `n_ctx` is the context the engine will allocate; 0 means the model's own (llama.cpp's rule).
    """
    import gguf

    path = Path(path)
    if not path.is_file():
        raise ModelCheckError(f"{path}: no such file; choose a .gguf model file")
    size = path.stat().st_size
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise ModelCheckError(f"{path}: not a GGUF file (starts with {magic!r}); export one with aurora-export gguf")
    try:
        reader = gguf.GGUFReader(str(path))
    except (ValueError, IndexError, OSError) as exc:
        raise ModelCheckError(f"{path}: GGUF header is damaged or the file is truncated ({exc}); "
                              "download or export it again") from None
    end = max((int(t.data_offset) + int(t.n_bytes) for t in reader.tensors), default=0)
    if end > size:
        raise ModelCheckError(f"{path}: truncated ({size:,} bytes, its tensors need {end:,}); "
                              "download or export it again")
    arch = field_value(reader, gguf_meta.GENERAL_ARCHITECTURE) or "?"
    if field_value(reader, gguf_meta.GENERAL_TYPE) == "adapter":
        raise ModelCheckError(f"{path}: is a LoRA adapter, not a model; open the base model and pass this "
                              "file as the LoRA")
    if arch not in supported_architectures():
        raise ModelCheckError(f"{path}: architecture {arch!r} is not one llama.cpp runs; "
                              "export the model with aurora-export gguf")
    n_params = sum(int(t.n_elements) for t in reader.tensors)
    ctx_len = int(field_value(reader, f"{arch}.context_length") or 0)
    n_embd = int(field_value(reader, f"{arch}.embedding_length") or 0)
    n_layer = int(field_value(reader, f"{arch}.block_count") or 0)
    heads = int(field_value(reader, f"{arch}.attention.head_count") or 1)
    kv_heads = int(field_value(reader, f"{arch}.attention.head_count_kv") or heads)
    n_ctx = n_ctx or ctx_len or 4096
    kv_bytes = int(2 * n_layer * n_ctx * (n_embd * kv_heads // max(heads, 1)) * kv_bytes_per_element)  # K and V
    need = size + kv_bytes
    have = available_memory() if memory is None else memory
    if need > have:
        raise ModelCheckError(
            f"{path}: needs about {need / 2**30:.1f} GiB of memory (model {size / 2**30:.1f} GiB + context "
            f"{kv_bytes / 2**30:.1f} GiB) but {have / 2**30:.1f} GiB is available; choose a smaller "
            "quantization (q4_k_m) or a shorter context")
    meta = {k: field_value(reader, k) for k in reader.fields if k.startswith("general.")}
    return ModelInfo(path=path, architecture=arch, name=str(meta.get(gguf_meta.GENERAL_NAME) or path.stem),
                     file_size=size, n_params=n_params, context_length=ctx_len,
                     expert_count=int(field_value(reader, f"{arch}.expert_count") or 0),
                     chat_template=field_value(reader, gguf_meta.CHAT_TEMPLATE), metadata=meta,
                     kv_cache_bytes=kv_bytes, n_ctx=n_ctx)
