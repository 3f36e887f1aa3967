"""Read a Mixtral Hugging Face checkpoint shard by shard, without loading the model.

Every tensor is memory-mapped from its safetensors shard when asked for, so the export stage holds
one tensor (or one layer's stacked experts) at a time. Both on-disk layouts are read:

- the original release: `model.layers.N.block_sparse_moe.experts.E.w1.weight` (one nn.Linear each)
- transformers 5.x: `model.layers.N.mlp.experts.gate_up_proj` (E, 2I, H: w1 rows, then w3 rows) and
  `model.layers.N.mlp.experts.down_proj` (E, H, I), router `model.layers.N.mlp.gate.weight`

and both are presented under the original names, which is what adapters and the GGUF mapping use.
All checks (config, index, shard presence, shard completeness) run before any long work starts.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"


class CheckpointError(ValueError):
    """A base checkpoint that cannot be exported; the message names the file and what to do."""


@dataclass(frozen=True)
class MixtralShape:
    """The hyper-parameters of a Mixtral config.json that the export needs."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    num_experts: int
    experts_per_token: int
    context_length: int
    rope_theta: float
    rms_norm_eps: float

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


def read_json(path: Path, error: type[ValueError], what_to_do: str) -> dict:
    """A JSON file, or `error` naming the file (and line and column) and what to do."""
    if not path.is_file():
        raise error(f"{path}: missing; {what_to_do}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise error(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON ({exc.msg})") from None


def read_config(folder: Path) -> tuple[dict, MixtralShape]:
    path = folder / "config.json"
    config = read_json(path, CheckpointError, "pass --base the folder of a Hugging Face Mixtral checkpoint")
    archs = config.get("architectures") or []
    if config.get("model_type") != "mixtral" and "MixtralForCausalLM" not in archs:
        raise CheckpointError(
            f"{path}: model_type {config.get('model_type')!r} ({', '.join(archs) or 'no architectures'}) is not "
            "Mixtral; aurora-export converts MixtralForCausalLM checkpoints only")
    try:
        shape = MixtralShape(
            vocab_size=config["vocab_size"],
            hidden_size=config["hidden_size"],
            intermediate_size=config["intermediate_size"],
            num_layers=config["num_hidden_layers"],
            num_heads=config["num_attention_heads"],
            num_kv_heads=config.get("num_key_value_heads", config["num_attention_heads"]),
            num_experts=config["num_local_experts"],
            experts_per_token=config["num_experts_per_tok"],
            context_length=config.get("max_position_embeddings", 32768),
            rope_theta=float(config.get("rope_theta", 1e6)),
            rms_norm_eps=float(config.get("rms_norm_eps", 1e-5)),
        )
    except KeyError as exc:
        raise CheckpointError(f"{path}: key {exc.args[0]!r} missing from a Mixtral config") from None
    return config, shape


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
            try:
                weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            except (json.JSONDecodeError, KeyError) as exc:
                raise CheckpointError(f"{index}: not a safetensors index ({exc}); re-download it") from None
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
        s = self.shape
        names = ["model.embed_tokens.weight"]
        for n in range(s.num_layers):
            p = f"model.layers.{n}."
            names += [p + "input_layernorm.weight", p + "post_attention_layernorm.weight"]
            names += [p + f"self_attn.{x}_proj.weight" for x in "qkvo"]
            if self.fused:
                names += [p + "mlp.gate.weight", p + "mlp.experts.gate_up_proj", p + "mlp.experts.down_proj"]
            else:
                names.append(p + "block_sparse_moe.gate.weight")
                names += [p + f"block_sparse_moe.experts.{e}.{w}.weight"
                          for e in range(s.num_experts) for w in ("w1", "w2", "w3")]
        return names + ["model.norm.weight", "lm_head.weight"]

    # -- reading --------------------------------------------------------------------------------

    def _raw(self, name: str) -> torch.Tensor:
        """Read one tensor with a plain file read: no memory map, so only live tensors count in RSS."""
        shard = self.weight_map[name]
        start, header = self.headers[shard]
        info = header[name]
        begin, end = info["data_offsets"]
        buf = bytearray(end - begin)
        with open(self.folder / shard, "rb") as f:
            f.seek(start + begin)
            f.readinto(buf)
        if not buf:
            return torch.empty(info["shape"], dtype=DTYPES[info["dtype"]])
        return torch.frombuffer(buf, dtype=DTYPES[info["dtype"]]).reshape(info["shape"])

    def tensor(self, name: str) -> torch.Tensor:
        """A tensor under its original Mixtral name, whatever the layout on disk."""
        if not self.fused or ".block_sparse_moe." not in name:
            return self._raw(name)
        # model.layers.N.block_sparse_moe.experts.E.wK.weight / ...block_sparse_moe.gate.weight
        prefix, rest = name.split(".block_sparse_moe.")
        if rest == "gate.weight":
            return self._raw(f"{prefix}.mlp.gate.weight")
        _, e, w, _ = rest.split(".")
        return self.stacked_experts(int(prefix.split(".")[-1]), w)[int(e)]

    def stacked_experts(self, layer: int, w: str) -> torch.Tensor:
        """All experts' `w` (w1, w2 or w3) of one layer, stacked on a new first axis."""
        p = f"model.layers.{layer}."
        if self.fused:
            inter = self.shape.intermediate_size
            if w == "w2":
                return self._raw(p + "mlp.experts.down_proj")
            gate_up = self._raw(p + "mlp.experts.gate_up_proj")
            return gate_up[:, :inter, :] if w == "w1" else gate_up[:, inter:, :]
        return torch.stack([self._raw(p + f"block_sparse_moe.experts.{e}.{w}.weight")
                            for e in range(self.shape.num_experts)])

    def shard_of(self, name: str) -> str:
        if self.fused and ".block_sparse_moe." in name:
            layer = name.split(".")[2]
            kind = "gate" if name.endswith("gate.weight") else ("down_proj" if ".w2." in name else "gate_up_proj")
            key = {"gate": f"model.layers.{layer}.mlp.gate.weight"}.get(kind, f"model.layers.{layer}.mlp.experts.{kind}")
            return self.weight_map[key]
        return self.weight_map[name]

    def shard_sizes(self) -> dict[str, int]:
        return {s: (self.folder / s).stat().st_size for s in set(self.weight_map.values())}

    def original_names(self) -> list[str]:
        """All tensor names in the original (per-expert) layout, in model order."""
        s = self.shape
        names = ["model.embed_tokens.weight"]
        for n in range(s.num_layers):
            p = f"model.layers.{n}."
            names += [p + "input_layernorm.weight"] + [p + f"self_attn.{x}_proj.weight" for x in "qkvo"]
            names += [p + "post_attention_layernorm.weight", p + "block_sparse_moe.gate.weight"]
            names += [p + f"block_sparse_moe.experts.{e}.{w}.weight"
                      for e in range(s.num_experts) for w in ("w1", "w2", "w3")]
        return names + ["model.norm.weight", "lm_head.weight"]
