"""Read a Mixtral Hugging Face checkpoint shard by shard, without loading the model.

Every tensor is read from its safetensors shard with a plain file read when asked for (no memory map, so
only live tensors count in RSS), and the export stage holds one tensor (or one layer's stacked experts) at
a time; in the fused layout one expert's weight is read alone, not the whole fused tensor. Both on-disk
layouts are read:

- the original release: `model.layers.N.block_sparse_moe.experts.E.w1.weight` (one nn.Linear each)
- transformers 5.x: `model.layers.N.mlp.experts.gate_up_proj` (E, 2I, H: w1 rows, then w3 rows) and
  `model.layers.N.mlp.experts.down_proj` (E, H, I), router `model.layers.N.mlp.gate.weight`

and both are presented under the original names, which is what adapters and the GGUF mapping use.
All checks (config, index, shard presence, shard completeness) run before any long work starts.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import struct
from math import prod
from pathlib import Path

import torch

from aurora_core import mixtral
from aurora_core.errors import AuroraError
from aurora_core.mixtral import MixtralShape

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"


class CheckpointError(AuroraError):
    """A base checkpoint that cannot be exported; the message names the file and what to do."""


def keep_big_buffers_out_of_the_heap() -> None:
    """Tensors are read and freed one after another, each tens of MB: glibc's malloc raises its mmap threshold to
    the size of each freed buffer, so the next ones come from the heap, which fragments and never shrinks (RSS
    grew by a tensor's size per tensor: 1.8 GB instead of 0.8 GB for `imatrix` on the export-bench checkpoint).
    A fixed 1 MiB threshold gives every big buffer back to the system when it is freed (at some cost in time: each
    buffer is a fresh mapping, so `imatrix` uses it and the GGUF writer, which peaked at 606 MiB without it and
    ran 14% slower with it, does not). Elsewhere than glibc: nothing."""
    libc = ctypes.util.find_library("c")
    if libc and hasattr(ctypes.CDLL(libc), "mallopt"):
        ctypes.CDLL(libc).mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD


def read_config(folder: Path) -> tuple[dict, MixtralShape]:
    try:
        return mixtral.read_config(folder)
    except mixtral.ModelConfigError as exc:
        raise CheckpointError(f"{exc}; pass --base the folder of a Hugging Face Mixtral checkpoint") from None


DTYPES = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32, "F64": torch.float64,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}


def _check_shard(path: Path) -> tuple[int, dict]:
    """(data start, header) of a safetensors file, after checking that the file is complete."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise CheckpointError(f"{path}: truncated ({size} bytes, no safetensors header); re-download it")
        (n,) = struct.unpack("<Q", raw)
        if n > size - 8:
            raise CheckpointError(f"{path}: truncated ({size} bytes, header alone says {n + 8}); re-download it")
        try:
            header = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise CheckpointError(f"{path}: not a safetensors file (unreadable header); re-download it") from None
    header.pop("__metadata__", None)
    end = max((info["data_offsets"][1] for info in header.values()), default=0)
    if 8 + n + end > size:
        raise CheckpointError(f"{path}: truncated ({size} bytes, its header says {8 + n + end}); re-download it")
    return 8 + n, header


class Checkpoint:
    """A Mixtral checkpoint folder, checked at open and read tensor by tensor."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise CheckpointError(f"{self.folder}: no such folder; pass --base a Hugging Face Mixtral checkpoint")
        self.config, self.shape = read_config(self.folder)
        self.weight_map = self._weight_map()
        self.fused = any(".mlp.experts.gate_up_proj" in name for name in self.weight_map)
        self._check_complete()

    def _weight_map(self) -> dict[str, str]:
        self.headers: dict[str, tuple[int, dict]] = {}
        index = self.folder / INDEX_FILE
        if index.is_file():
            index_data = mixtral.read_json(index, "re-download it", CheckpointError)
            weight_map = index_data.get("weight_map") if isinstance(index_data, dict) else None
            if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
                raise CheckpointError(f"{index}: not a safetensors index (no 'weight_map' of tensor -> shard); "
                                      "re-download it")
            shards = sorted(set(weight_map.values()))
            for shard in shards:
                if not (self.folder / shard).is_file():
                    raise CheckpointError(f"{self.folder / shard}: shard named in {INDEX_FILE} is missing; "
                                          "re-download it")
            for shard in shards:
                listed = {k for k, v in weight_map.items() if v == shard}
                self.headers[shard] = _check_shard(self.folder / shard)
                missing = listed - set(self.headers[shard][1])
                if missing:
                    raise CheckpointError(f"{self.folder / shard}: lacks {sorted(missing)[0]} that {INDEX_FILE} "
                                          "places there; re-download the shard")
            return weight_map
        single = self.folder / SINGLE_FILE
        if single.is_file():
            self.headers[SINGLE_FILE] = _check_shard(single)
            return {name: SINGLE_FILE for name in self.headers[SINGLE_FILE][1]}
        raise CheckpointError(f"{self.folder}: no {INDEX_FILE} or {SINGLE_FILE}; pass --base a checkpoint with "
                              "safetensors weights")

    def _check_complete(self) -> None:
        missing = [n for n in self.expected_names() if n not in self.weight_map]
        if missing:
            raise CheckpointError(f"{self.folder}: tensor {missing[0]} is missing "
                                  f"({len(missing)} missing in all); the checkpoint is incomplete")

    def expected_names(self) -> list[str]:
        """Stored tensor names this checkpoint must have, in its own layout."""
        if not self.fused:
            return self.original_names()
        return list(dict.fromkeys(self.stored_name(name) for name in self.original_names()))

    # -- reading --------------------------------------------------------------------------------

    def _raw(self, name: str, offset: int = 0, shape: tuple[int, ...] | None = None) -> torch.Tensor:
        """Read one stored tensor with a plain file read: no memory map, so only live tensors count in RSS.
        With `shape`: only the contiguous part of it that starts `offset` elements in."""
        shard = self.weight_map[name]
        start, header = self.headers[shard]
        info = header[name]
        dtype = DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        if shape is not None:
            itemsize = torch.empty(0, dtype=dtype).element_size()
            begin, end = begin + offset * itemsize, begin + (offset + prod(shape)) * itemsize
        buf = bytearray(end - begin)
        with open(self.folder / shard, "rb") as f:
            f.seek(start + begin)
            f.readinto(buf)
        shape = info["shape"] if shape is None else shape
        if not buf:
            return torch.empty(shape, dtype=dtype)
        return torch.frombuffer(buf, dtype=dtype).reshape(shape)

    def tensor(self, name: str) -> torch.Tensor:
        """A tensor under its original Mixtral name, whatever the layout on disk."""
        if not self.fused or ".block_sparse_moe." not in name:
            return self._raw(name)
        ref = mixtral.lookup(name)
        if ref.xid is None:  # the router
            return self._raw(self.stored_name(name))
        inter, hidden = self.shape.intermediate_size, self.shape.hidden_size
        if ref.spec.module == "w2":  # down_proj (E, H, I): expert e is one contiguous (H, I) block
            return self._raw(self.stored_name(name), ref.xid * hidden * inter, (hidden, inter))
        first_row = ref.xid * 2 * inter + (0 if ref.spec.module == "w1" else inter)  # gate_up (E, 2I, H)
        return self._raw(self.stored_name(name), first_row * hidden, (inter, hidden))

    def stacked_experts(self, layer: int, w: str) -> torch.Tensor:
        """All experts' `w` (w1, w2 or w3) of one layer, stacked on a new first axis."""
        p = f"model.layers.{layer}."
        if self.fused:
            inter = self.shape.intermediate_size
            if w == "w2":
                return self._raw(p + "mlp.experts.down_proj")
            gate_up = self._raw(p + "mlp.experts.gate_up_proj")
            return gate_up[:, :inter, :] if w == "w1" else gate_up[:, inter:, :]
        return torch.stack([self._raw(mixtral.expert_name(layer, e, w)) for e in range(self.shape.num_experts)])

    def stored_name(self, name: str) -> str:
        """The name under which `name` (original layout) is stored in this checkpoint's files."""
        if not self.fused or ".block_sparse_moe." not in name:
            return name
        ref = mixtral.lookup(name)
        prefix = f"model.layers.{ref.bid}.mlp."
        if ref.xid is None:
            return prefix + "gate.weight"
        return prefix + ("experts.down_proj" if ref.spec.module == "w2" else "experts.gate_up_proj")

    def shard_of(self, name: str) -> str:
        return self.weight_map[self.stored_name(name)]

    def shard_sizes(self) -> dict[str, int]:
        return {s: (self.folder / s).stat().st_size for s in set(self.weight_map.values())}

    def original_names(self) -> list[str]:
        """All tensor names in the original (per-expert) layout, in model order."""
        return mixtral.hf_names(self.shape)
