"""`aurora-export inspect`: what a GGUF file holds, read from its header alone."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path

import gguf

from aurora_core import gguf_meta
from aurora_core.gguf_meta import escape_control


def describe(path: Path) -> str:
    reader = gguf.GGUFReader(str(path))
    kv = gguf_meta.metadata_of(reader)
    arch = kv.get("general.architecture", "?")
    groups: dict[str, Counter] = defaultdict(Counter)
    for t in reader.tensors:
        group = re.sub(r"^blk\.\d+\.", "blk.*.", t.name)
        groups[group][t.tensor_type.name] += 1
    size = path.stat().st_size
    n_params = sum(int(t.n_elements) for t in reader.tensors)
    lines = [
        f"file:          {path} ({size / 2**20:,.1f} MiB, {n_params:,} parameters, "
        f"{8 * sum(int(t.n_bytes) for t in reader.tensors) / max(n_params, 1):.2f} bits/weight)",
        f"type:          {kv.get('general.type', 'model')}, file type {_file_type(kv.get('general.file_type'))}",
        f"architecture:  {arch}, {kv.get(f'{arch}.block_count', '?')} blocks, "
        f"embedding {kv.get(f'{arch}.embedding_length', '?')}, "
        f"experts {kv.get(f'{arch}.expert_count', '-')} (used {kv.get(f'{arch}.expert_used_count', '-')}), "
        f"context {kv.get(f'{arch}.context_length', '?')}, rope base {kv.get(f'{arch}.rope.freq_base', '?')}",
        f"vocabulary:    {kv.get(f'{arch}.vocab_size', '?')} tokens, model {kv.get('tokenizer.ggml.model', '-')}",
        "tensors by group (quant type x count):",
    ]
    for group in sorted(groups):
        lines.append(f"  {group:<28} " + ", ".join(f"{k} x{v}" for k, v in sorted(groups[group].items())))
    lines.append("provenance:")
    for key in sorted(k for k in kv if k.startswith(("general.", "adapter.")) and k != "general.architecture"):
        lines.append(f"  {key} = {escape_control(kv[key])}")
    template = kv.get("tokenizer.chat_template")
    lines.append("chat template:" + (f"\n  {escape_control(template)}" if template else " (none)"))
    return "\n".join(lines)


def _file_type(value) -> str:
    """`Q8_0` for llama.cpp's file type 7."""
    try:
        return gguf.LlamaFileType(int(value)).name.replace("MOSTLY_", "").replace("ALL_", "")
    except (TypeError, ValueError):
        return str(value)
