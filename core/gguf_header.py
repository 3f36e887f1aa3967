"""A GGUF header read with bounds: every count and length is checked against the file before use.

gguf-py's `GGUFReader` allocates whatever a length field says (a UINT8 array whose count is patched to
2^40 makes it allocate without end), and llama.cpp aborts on some values without a message. This reader
refuses such files with a one-line `GGUFHeaderError` naming the file and the field, and never reads
tensor data. Used by the chat's pre-check, `aurora-export inspect` and `verify`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

from .errors import AuroraError

MAGIC = b"GGUF"
MAX_STRING = 64 << 20  # one metadata string (a chat template is a few KB; 64 MiB is generous)
KEEP_STRING = 1 << 20  # of a longer string only this much is read (the rest is skipped): no reader needs more, and
# decoding 50 MB of a hostile `general.name` would hold Python's lock (and a window's timer) for 100+ ms
MAX_ARRAY = 16 << 20  # elements of one metadata array (vocabularies have up to ~260k tokens)
MAX_KV = 1 << 16
MAX_TENSORS = 1 << 20
MAX_DIMS = 4
DEFAULT_ALIGNMENT = 32

# GGUF value types: (struct format, size)
SCALARS = {0: ("<B", 1), 1: ("<b", 1), 2: ("<H", 2), 3: ("<h", 2), 4: ("<I", 4), 5: ("<i", 4), 6: ("<f", 4),
           7: ("<?", 1), 10: ("<Q", 8), 11: ("<q", 8), 12: ("<d", 8)}
STRING, ARRAY = 8, 9
KEEP_ARRAYS = {"tokenizer.ggml.tokens"}  # arrays whose values are read (to check the vocabulary)


class GGUFHeaderError(AuroraError):
    """A GGUF whose header is damaged, truncated or hostile; the message names the file and the field."""


@dataclass
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int  # from the start of the data section

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass
class GGUFHeader:
    path: Path
    version: int
    metadata: dict = field(default_factory=dict)  # scalars and strings (arrays are in `arrays`)
    arrays: dict = field(default_factory=dict)  # key -> (element type, count)
    tokens: list[str] | None = None
    tensors: list[TensorInfo] = field(default_factory=list)
    data_start: int = 0
    file_size: int = 0

    def get(self, key: str, default=None):
        return self.metadata.get(key, default)


class _Cursor:
    def __init__(self, f, size: int, path: Path) -> None:
        self.f, self.size, self.path, self.pos = f, size, path, 0

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            raise GGUFHeaderError(f"{self.path}: truncated or damaged header ({what} needs {n:,} bytes at offset "
                                  f"{self.pos:,}, the file has {self.size:,}); download or export it again")

    def read(self, n: int, what: str) -> bytes:
        self.need(n, what)
        data = self.f.read(n)
        self.pos += n
        return data

    def scalar(self, fmt: str, size: int, what: str):
        return struct.unpack(fmt, self.read(size, what))[0]

    def string(self, what: str, limit: int = MAX_STRING) -> str:
        n = self.scalar("<Q", 8, what)
        if n > limit:
            raise GGUFHeaderError(f"{self.path}: {what} claims {n:,} bytes (more than {limit:,}); the file is "
                                  "damaged or hostile")
        if n <= KEEP_STRING:
            return self.read(n, what).decode("utf-8", errors="replace")
        head = self.read(KEEP_STRING, what).decode("utf-8", errors="ignore")  # a cut character is dropped
        self.skip(n - KEEP_STRING, what)
        return head + "…"

    def skip(self, n: int, what: str) -> None:
        self.need(n, what)
        self.f.seek(n, 1)
        self.pos += n


def read_header(path: str | Path) -> GGUFHeader:
    """The header of a GGUF file, every field bounded; GGUFHeaderError for anything it cannot trust."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        c = _Cursor(f, size, path)
        if c.read(4, "magic") != MAGIC:
            raise GGUFHeaderError(f"{path}: not a GGUF file; export one with aurora-export gguf")
        version = c.scalar("<I", 4, "version")
        if version not in (2, 3):
            raise GGUFHeaderError(f"{path}: GGUF version {version} is not supported (2 or 3)")
        n_tensors = c.scalar("<Q", 8, "tensor count")
        n_kv = c.scalar("<Q", 8, "metadata count")
        if n_tensors > MAX_TENSORS or n_kv > MAX_KV:
            raise GGUFHeaderError(f"{path}: header claims {n_tensors:,} tensors and {n_kv:,} metadata keys; "
                                  "the file is damaged or hostile")
        header = GGUFHeader(path, version, file_size=size)
        for _ in range(n_kv):
            _read_kv(c, header)
        for _ in range(n_tensors):
            name = c.string("tensor name", 1 << 16)
            n_dims = c.scalar("<I", 4, f"tensor {name} dimensions")
            if not 1 <= n_dims <= MAX_DIMS:
                raise GGUFHeaderError(f"{path}: tensor {name!r} has {n_dims} dimensions (1 to {MAX_DIMS})")
            shape = tuple(c.scalar("<Q", 8, f"tensor {name} shape") for _ in range(n_dims))
            if any(d == 0 or d > 1 << 40 for d in shape):
                raise GGUFHeaderError(f"{path}: tensor {name!r} has shape {shape}; the file is damaged")
            ggml_type = c.scalar("<I", 4, f"tensor {name} type")
            offset = c.scalar("<Q", 8, f"tensor {name} offset")
            header.tensors.append(TensorInfo(name, shape, ggml_type, offset))
        alignment = header.get("general.alignment", DEFAULT_ALIGNMENT)
        if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
            raise GGUFHeaderError(f"{path}: general.alignment {alignment!r} is not a power of two")
        header.data_start = (c.pos + alignment - 1) // alignment * alignment
    return header


def _read_kv(c: _Cursor, header: GGUFHeader) -> None:
    key = c.string("metadata key", 1 << 16)
    if key in header.metadata or key in header.arrays:
        raise GGUFHeaderError(f"{header.path}: metadata key {key!r} appears twice; the file is damaged")
    vtype = c.scalar("<I", 4, f"type of {key}")
    if vtype in SCALARS:
        header.metadata[key] = c.scalar(*SCALARS[vtype], key)
    elif vtype == STRING:
        header.metadata[key] = c.string(key)
    elif vtype == ARRAY:
        etype = c.scalar("<I", 4, f"element type of {key}")
        count = c.scalar("<Q", 8, f"length of {key}")
        if count > MAX_ARRAY:
            raise GGUFHeaderError(f"{header.path}: {key} claims {count:,} elements (more than {MAX_ARRAY:,}); "
                                  "the file is damaged or hostile")
        header.arrays[key] = (etype, count)
        if etype in SCALARS:
            c.skip(count * SCALARS[etype][1], key)
        elif etype == STRING:
            c.need(count * 8, key)  # every string has at least its 8-byte length
            values = [c.string(f"{key}[{i}]") for i in range(count)]
            if key in KEEP_ARRAYS:
                header.tokens = values
        else:
            raise GGUFHeaderError(f"{header.path}: {key} is an array of type {etype}, which GGUF files do not use")
    else:
        raise GGUFHeaderError(f"{header.path}: {key} has value type {vtype}, which is not a GGUF type")
