"""Hostile GGUF files, made from a valid one: metadata overridden with gguf-py, or bytes patched."""

from __future__ import annotations

import struct
from pathlib import Path

import gguf
import numpy as np


def rewrite(src: Path, dst: Path, changes: dict | None = None, tokens: list[str] | None = None,
            extra: dict | None = None) -> Path:
    """A copy of `src` with metadata `changes` ({key: (value, GGUFValueType)}), the vocabulary replaced by
    `tokens`, and `extra` keys added; tensors copied as they are."""
    changes, extra = changes or {}, extra or {}
    reader = gguf.GGUFReader(str(src))
    arch = bytes(reader.fields["general.architecture"].parts[-1]).decode()
    writer = gguf.GGUFWriter(str(dst), arch)
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        value = field.contents()
        if name in changes:
            value, vtype = changes.pop(name)
            sub = None
        if name == "tokenizer.ggml.tokens" and tokens is not None:
            value = tokens
        writer.add_key_value(name, value, vtype, sub_type=sub)
    for name, (value, vtype) in {**changes, **extra}.items():
        writer.add_key_value(name, value, vtype, sub_type=gguf.GGUFValueType.UINT8 if vtype == gguf.GGUFValueType.ARRAY else None)
    for t in reader.tensors:
        writer.add_tensor(t.name, np.asarray(t.data), raw_dtype=t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dst


def patch_array_count(path: Path, key: str, count: int) -> None:
    """Overwrite the element count of array `key` (the 8 bytes after its element type)."""
    data = bytearray(path.read_bytes())
    name = struct.pack("<Q", len(key)) + key.encode()
    i = data.index(name) + len(name) + 4 + 4  # value type, element type
    data[i:i + 8] = struct.pack("<Q", count)
    path.write_bytes(bytes(data))


def patch_string_length(path: Path, key: str, length: int) -> None:
    """Overwrite the length of string value `key`."""
    data = bytearray(path.read_bytes())
    name = struct.pack("<Q", len(key)) + key.encode()
    i = data.index(name) + len(name) + 4
    data[i:i + 8] = struct.pack("<Q", length)
    path.write_bytes(bytes(data))


def rename_key(path: Path, old: str, new: str) -> None:
    """Rename a metadata key in place (same length), e.g. to make a duplicate key."""
    assert len(old) == len(new)
    data = path.read_bytes()
    path.write_bytes(data.replace(struct.pack("<Q", len(old)) + old.encode(),
                                  struct.pack("<Q", len(new)) + new.encode(), 1))
