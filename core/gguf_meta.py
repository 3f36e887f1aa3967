"""GGUF key names and the metadata reader: the whole hand-over from export to chat.

Keys llama.cpp defines are gguf-py's (`general.*`, `llama.*`, `tokenizer.*`); Aurora's own live
under `general.aurora.*` and are named here once. The reader is `gguf_header.read_header`, which
checks every length against the file before it reads (gguf-py's reader allocates what a field says).
"""

from __future__ import annotations

from pathlib import Path

ARCH = "llama"  # llama.cpp runs Mixtral as `llama` with experts

GENERAL_TYPE = "general.type"
GENERAL_NAME = "general.name"
GENERAL_ARCHITECTURE = "general.architecture"
GENERAL_FILE_TYPE = "general.file_type"
CHAT_TEMPLATE = "tokenizer.chat_template"

AURORA_PREFIX = "general.aurora."
EXPORTER = AURORA_PREFIX + "exporter"
BASE = AURORA_PREFIX + "base"
ADAPTER = AURORA_PREFIX + "adapter"
LORA_RANK = AURORA_PREFIX + "lora_rank"
LORA_ALPHA = AURORA_PREFIX + "lora_alpha"
LORA_RSLORA = AURORA_PREFIX + "lora_rslora"
LORA_TARGETS = AURORA_PREFIX + "lora_targets"
MERGED_ONTO = AURORA_PREFIX + "merged_onto"
CHAT_TEMPLATE_SOURCE = AURORA_PREFIX + "chat_template_source"
TRAIN_DATA_SHA256 = AURORA_PREFIX + "train_data_sha256"
TRAIN_EXAMPLES = AURORA_PREFIX + "train_examples"
TRAIN_STEPS = AURORA_PREFIX + "train_steps"
TRAIN_FINAL_LOSS = AURORA_PREFIX + "train_final_loss"
QUANTIZED_MODULES = AURORA_PREFIX + "qlora_4bit_modules"
DATASET_NAME = "general.dataset.{id}.name"  # gguf-py's add_dataset_name writes these


def dataset_names(metadata: dict) -> list[str]:
    """The `general.dataset.N.name` values of a GGUF's metadata, in N's order."""
    prefix, suffix = DATASET_NAME.split("{id}")
    found = {}
    for key, value in metadata.items():
        if key.startswith(prefix) and key.endswith(suffix) and key[len(prefix):-len(suffix)].isdigit():
            found[int(key[len(prefix):-len(suffix)])] = str(value)
    return [found[i] for i in sorted(found)]


def read_metadata(path: Path) -> dict:
    """Every scalar and string key of a GGUF file (arrays as "[N items]"), read with bounds."""
    from .gguf_header import read_header

    return metadata_of(read_header(path))


def metadata_of(header) -> dict:
    """Every scalar and string key of a read `GGUFHeader`, arrays as "[N items]"."""
    out = dict(header.metadata)
    out.update({k: f"[{n} items]" for k, (_, n) in header.arrays.items()})
    return out


def file_type_name(value, missing: str = "-") -> str:
    """`Q8_0` for llama.cpp's `general.file_type` 7 (gguf-py's LlamaFileType; imported when called)."""
    import gguf

    if value is None:
        return missing
    try:
        return gguf.LlamaFileType(int(value)).name.replace("MOSTLY_", "").replace("ALL_", "")
    except (TypeError, ValueError):
        return str(value)


def escape_control(text: object, limit: int | None = None) -> str:
    """Metadata for a terminal or a label: control characters (ESC sequences) shown escaped, never executed;
    with `limit`, at most that many characters (a file's string can be megabytes), cut with "…"."""
    text = str(text)
    cut = limit is not None and len(text) > limit
    text = "".join(c if c.isprintable() or c in "\n\t" else f"\\x{ord(c):02x}" if ord(c) < 256
                   else f"\\u{ord(c):04x}" for c in (text[:limit] if limit is not None else text))
    return (text[:limit - 1] + "…") if limit is not None and (cut or len(text) > limit) else text
