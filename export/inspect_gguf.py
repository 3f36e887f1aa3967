"""`aurora-export inspect`: what a GGUF file holds, read from its header alone (with bounds)."""

from __future__ import annotations

import re
from collections import Counter, defaultdict

from aurora_core.gguf_meta import escape_control, file_type_name, metadata_of


VALUE_CHARS = 300  # a metadata value on one line; a file's string can be megabytes
TEMPLATE_CHARS = 4000


def report(header) -> tuple[str, str | None]:
    """(the report, what is wrong with the file or None): a truncated file is described, then refused."""
    path = header.path
    kv = metadata_of(header)
    arch = kv.get("general.architecture", "?")
    groups: dict[str, Counter] = defaultdict(Counter)
    for t in header.tensors:
        groups[re.sub(r"^blk\.\d+\.", "blk.*.", t.name)][_type_name(t.ggml_type)] += 1
    n_params = sum(t.n_elements for t in header.tensors)
    size = header.file_size
    arch = escape_control(arch, 40)
    lines = [
        f"file:          {path} ({size / 2**20:,.1f} MiB, {n_params:,} parameters, "
        f"{8 * (size - header.data_start) / max(n_params, 1):.2f} bits/weight)",
        f"type:          {escape_control(kv.get('general.type', 'model'))}, "
        f"file type {file_type_name(kv.get('general.file_type'), 'None')}",
        f"architecture:  {arch}, {kv.get(f'{arch}.block_count', '?')} blocks, "
        f"embedding {kv.get(f'{arch}.embedding_length', '?')}, "
        f"experts {kv.get(f'{arch}.expert_count', '-')} (used {kv.get(f'{arch}.expert_used_count', '-')}), "
        f"context {kv.get(f'{arch}.context_length', '?')}, rope base {kv.get(f'{arch}.rope.freq_base', '?')}"[:500],
        f"vocabulary:    {kv.get(f'{arch}.vocab_size', len(header.tokens or []))} tokens, "
        f"model {escape_control(kv.get('tokenizer.ggml.model', '-'))}",
        "tensors by group (quant type x count):",
    ]
    for group in sorted(groups):
        lines.append(f"  {escape_control(group, VALUE_CHARS):<28} " + ", ".join(f"{k} x{v}" for k, v in sorted(groups[group].items())))
    lines.append("provenance:")
    for key in sorted(k for k in kv if k.startswith(("general.", "adapter.")) and k != "general.architecture"):
        lines.append(f"  {escape_control(key, VALUE_CHARS)} = {escape_control(kv[key], VALUE_CHARS)}")
    template = kv.get("tokenizer.chat_template")
    shown = escape_control(template, TEMPLATE_CHARS) if template else ""
    more = f"\n  ({len(str(template)):,} characters in all)" if template and len(str(template)) > TEMPLATE_CHARS else ""
    lines.append("chat template:" + (f"\n  {shown}{more}" if template else " (none)"))
    return "\n".join(lines), _problem(header)


def _problem(header) -> str | None:
    from aurora_core.model_check import ModelCheckError, check_complete

    try:
        check_complete(header, "download or export it again")
    except ModelCheckError as exc:
        return str(exc)
    return None


def _type_name(ggml_type: int) -> str:
    import gguf

    try:
        return gguf.GGMLQuantizationType(ggml_type).name
    except ValueError:
        return f"type {ggml_type}"
