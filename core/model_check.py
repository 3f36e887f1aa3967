"""Check a GGUF file before llama.cpp opens it: a bad file gets a clear message, never a crash.

Reads the header with the `gguf` package (no tensor data is touched) and checks: it is a GGUF, it
is complete (every tensor's data lies inside the file), its architecture is one llama.cpp runs,
and it fits in the memory this machine has available.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from . import gguf_meta
from .errors import AuroraError
from .gguf_header import MAGIC, GGUFHeaderError, read_header


DEFAULT_N_CTX = 4096  # tokens of context when the user chooses none (chat, window, memory check)


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
    return total_memory()


def total_memory() -> int:
    """Physical memory of this computer in bytes."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def kv_cache_bytes(layers: int, kv_width: int, n_ctx: int, bytes_per_element: float = 2.0) -> int:
    """llama.cpp's K and V cache: layers x 2 x (KV heads x head dim) x tokens x bytes per element."""
    return int(2 * layers * kv_width * n_ctx * bytes_per_element)


def supported_architectures() -> set[str]:
    import gguf

    return set(gguf.MODEL_ARCH_NAMES.values())


MAX_EXPERTS = 256  # llama.cpp's LLAMA_MAX_EXPERTS
MAX_CONTEXT = 1 << 24
MAX_LAYERS = 4096


def check_gguf(path: str | Path, n_ctx: int = DEFAULT_N_CTX, memory: int | None = None,
               kv_bytes_per_element: float = 2.0) -> ModelInfo:
    """ModelInfo of a loadable GGUF, or ModelCheckError saying what is wrong.

    The header is read with bounds (`aurora_core.gguf_header`), and the values llama.cpp asserts on
    (and aborts the process for, with no message) are checked first. `n_ctx` is the context the engine
    will allocate; 0 means the model's own (llama.cpp's rule).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelCheckError(f"{path}: no such file; choose a .gguf model file")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != MAGIC:
        raise ModelCheckError(f"{path}: not a GGUF file (starts with {magic!r}); export one with aurora-export gguf")
    try:
        header = read_header(path)
    except GGUFHeaderError as exc:
        raise ModelCheckError(str(exc)) from None
    size = header.file_size
    arch = header.get(gguf_meta.GENERAL_ARCHITECTURE)
    if header.get(gguf_meta.GENERAL_TYPE) == "adapter":
        raise ModelCheckError(f"{path}: is a LoRA adapter, not a model; open the base model and pass this "
                              "file as the LoRA")
    if not isinstance(arch, str) or arch not in supported_architectures():
        raise ModelCheckError(f"{path}: architecture {arch!r} is not one llama.cpp runs; "
                              "export the model with aurora-export gguf")
    check_complete(header, "download or export it again")
    hp = _hyper_parameters(header, arch)
    _check_finite(header)
    _check_vocabulary(header)
    n_ctx = n_ctx or hp["context_length"]
    kv_bytes = kv_cache_bytes(hp["block_count"], hp["embedding_length"] * hp["head_count_kv"] // hp["head_count"],
                              n_ctx, kv_bytes_per_element)
    need = size + kv_bytes
    have = available_memory() if memory is None else memory
    if need > have:
        raise ModelCheckError(
            f"{path}: needs about {need / 2**30:.1f} GiB of memory (model {size / 2**30:.1f} GiB + context "
            f"{kv_bytes / 2**30:.1f} GiB) but {have / 2**30:.1f} GiB is available; choose a smaller "
            "quantization (q4_k_m) or a shorter context")
    meta = {k: v for k, v in header.metadata.items() if k.startswith("general.")}
    template = header.get(gguf_meta.CHAT_TEMPLATE)
    return ModelInfo(path=path, architecture=arch, name=display_name(meta.get(gguf_meta.GENERAL_NAME), path),
                     file_size=size, n_params=sum(t.n_elements for t in header.tensors),
                     context_length=hp["context_length"], expert_count=hp["expert_count"],
                     chat_template=template if isinstance(template, str) else None, metadata=meta,
                     kv_cache_bytes=kv_bytes, n_ctx=n_ctx)


def check_complete(header, what_to_do: str, error: type[AuroraError] = ModelCheckError) -> None:
    """Every tensor's data lies inside the file, or `error` naming it as truncated and saying what to do."""
    end = header.data_start + max((t.offset + tensor_nbytes(t, header.path) for t in header.tensors), default=0)
    if end > header.file_size:
        raise error(f"{header.path}: truncated ({header.file_size:,} bytes, its tensors need {end:,}); {what_to_do}")


def tensor_nbytes(t, path: Path) -> int:
    import gguf

    try:
        block, type_size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(t.ggml_type)]
    except (ValueError, KeyError):
        raise ModelCheckError(f"{path}: tensor {t.name!r} has type {t.ggml_type}, which llama.cpp does not know")
    if t.shape[0] % block:
        raise ModelCheckError(f"{path}: tensor {t.name!r} rows of {t.shape[0]} do not fit its blocks of {block}")
    return t.n_elements // block * type_size


def _hyper_parameters(header, arch: str) -> dict[str, int]:
    """The values llama.cpp asserts on, checked; ModelCheckError naming the key otherwise."""
    path = header.path

    def value(key: str, lo: int, hi: int, default: int | None = None) -> int:
        v = header.get(f"{arch}.{key}", default)
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise ModelCheckError(f"{path}: {arch}.{key} = {v!r} is not a number from {lo} to {hi}; "
                                  "the file is damaged or was written wrongly")
        return v

    hp = {"block_count": value("block_count", 1, MAX_LAYERS),
          "context_length": value("context_length", 1, MAX_CONTEXT),
          "embedding_length": value("embedding_length", 1, 1 << 20),
          "head_count": value("attention.head_count", 1, 1 << 12)}
    hp["head_count_kv"] = value("attention.head_count_kv", 1, hp["head_count"], hp["head_count"])
    if hp["head_count"] % hp["head_count_kv"]:
        raise ModelCheckError(f"{path}: {hp['head_count']} attention heads do not divide into "
                              f"{hp['head_count_kv']} key/value heads")
    hp["expert_count"] = value("expert_count", 0, MAX_EXPERTS, 0)
    if hp["expert_count"]:
        hp["expert_used_count"] = value("expert_used_count", 1, hp["expert_count"])
    elif header.get(f"{arch}.expert_used_count", 0):
        raise ModelCheckError(f"{path}: {arch}.expert_used_count is set but the model has no experts")
    return hp


def _check_finite(header) -> None:
    """Every float in the metadata (rope base, norm epsilon, token scores, ...) is a finite number."""
    for key, v in header.metadata.items():
        values = v if isinstance(v, list) else (v,)
        bad = next((x for x in values if isinstance(x, float) and not math.isfinite(x)), None)
        if bad is not None:
            raise ModelCheckError(f"{header.path}: {key} = {bad} is not a finite number; the file is damaged or "
                                  "was written wrongly")


MAX_NAME_CHARS = 120


def display_name(name, path: Path) -> str:
    """general.name for labels and terminals: control characters shown escaped, at most MAX_NAME_CHARS (the
    file's own can be megabytes)."""
    text = name.strip() if isinstance(name, str) and name.strip() else path.stem
    return " ".join(gguf_meta.escape_control(text, MAX_NAME_CHARS).split("\n"))


def _check_vocabulary(header) -> None:
    tokens = header.tokens
    if not tokens:
        raise ModelCheckError(f"{header.path}: has no vocabulary (tokenizer.ggml.tokens); export it again")
    empty = next((i for i, t in enumerate(tokens) if t == ""), None)
    if empty is not None:
        raise ModelCheckError(f"{header.path}: token {empty} of the vocabulary is empty; the file is damaged")
    if len(set(tokens)) != len(tokens):
        seen: set[str] = set()
        dup = next(i for i, t in enumerate(tokens) if t in seen or seen.add(t))
        raise ModelCheckError(f"{header.path}: token {dup} ({tokens[dup]!r}) appears twice in the vocabulary; "
                              "the file is damaged")
    for key in ("tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id"):
        v = header.get(key)
        if v is not None and not (isinstance(v, int) and 0 <= v < len(tokens)):
            raise ModelCheckError(f"{header.path}: {key} = {v!r} is outside the vocabulary of {len(tokens):,}")
