"""Mixtral's config and its tensor table: one place for every name, shape and 4-bit flag.

In the style of gguf-py's `tensor_mapping.py`: one row per Hugging Face tensor (original
per-expert layout), with its GGUF name, its shape from the config, whether QLoRA holds it in
4-bit, and how the GGUF writer treats it. Every module that needs a name or a shape asks here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from . import files
from .errors import AuroraError


class ModelConfigError(AuroraError):
    """A config.json that does not describe a Mixtral this project can handle."""


@dataclass(frozen=True)
class MixtralShape:
    """The hyper-parameters of a Mixtral config.json, validated."""

    vocab_size: int = 32000
    hidden_size: int = 4096
    intermediate_size: int = 14336
    num_layers: int = 32
    num_heads: int = 32
    num_kv_heads: int = 8
    num_experts: int = 8
    experts_per_token: int = 2
    context_length: int = 32768
    rope_theta: float = 1e6
    rms_norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads", "num_kv_heads",
                     "num_experts", "experts_per_token", "context_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive whole number, not {value!r}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} must be divisible by num_heads {self.num_heads}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads {self.num_heads} must be divisible by num_kv_heads {self.num_kv_heads}")
        if self.head_dim % 2:
            raise ValueError(f"head size (hidden_size / num_heads = {self.head_dim}) must be even for rotary "
                             "embeddings")
        if self.experts_per_token > self.num_experts:
            raise ValueError(f"experts_per_token {self.experts_per_token} cannot exceed num_experts "
                             f"{self.num_experts}")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @classmethod
    def from_config(cls, config: dict) -> "MixtralShape":
        """From a parsed config.json; KeyError/ValueError/TypeError on a missing or bad value."""
        return cls(
            vocab_size=config["vocab_size"], hidden_size=config["hidden_size"],
            intermediate_size=config["intermediate_size"], num_layers=config["num_hidden_layers"],
            num_heads=config["num_attention_heads"],
            num_kv_heads=config.get("num_key_value_heads", config["num_attention_heads"]),
            num_experts=config["num_local_experts"], experts_per_token=config["num_experts_per_tok"],
            context_length=config.get("max_position_embeddings", 32768),
            rope_theta=float(config.get("rope_theta", 1e6)), rms_norm_eps=float(config.get("rms_norm_eps", 1e-5)))


MIXTRAL_8X7B = MixtralShape()


def read_json(path: Path, what_to_do: str, error: type[AuroraError] = ModelConfigError):
    """A checkpoint's JSON file (files.read_json; a ModelConfigError unless told otherwise)."""
    return files.read_json(path, what_to_do, error)


def read_config(folder: Path) -> tuple[dict, MixtralShape]:
    """config.json of a Mixtral checkpoint folder and its validated shape."""
    path = Path(folder) / "config.json"
    config = read_json(path, "pass the folder of a Hugging Face Mixtral checkpoint")
    if not isinstance(config, dict):
        raise ModelConfigError(f"{path}: is not a JSON object; pass a Hugging Face Mixtral checkpoint")
    if config.get("model_type") != "mixtral":
        raise ModelConfigError(f"{path}: model_type {config.get('model_type')!r} is not Mixtral; "
                               "Aurora handles MixtralForCausalLM checkpoints only")
    try:
        return config, MixtralShape.from_config(config)
    except KeyError as exc:
        raise ModelConfigError(f"{path}: key {exc.args[0]!r} missing from a Mixtral config") from None
    except (TypeError, ValueError) as exc:
        raise ModelConfigError(f"{path}: {exc}") from None


# ---------------------------------------------------------------- the tensor table


@dataclass(frozen=True)
class TensorSpec:
    """One Hugging Face tensor of Mixtral (original per-expert layout)."""

    hf: str  # with {bid} (block) and {xid} (expert)
    gguf: str  # llama.cpp's name, with {bid}; experts are stacked into one GGUF tensor per block
    shape: Callable[[MixtralShape], tuple[int, ...]]  # the Hugging Face (out, in) shape
    module: str  # the module's leaf name as peft targets it ("" for norms and embeddings)
    qlora_4bit: bool = False  # held in bitsandbytes NF4 during QLoRA
    f32: bool = False  # written as F32 in every GGUF (norms, router)
    rope_heads: str | None = None  # rows permuted to llama.cpp's rotary order by this many heads


def _attn(s: MixtralShape) -> int:
    return s.num_heads * s.head_dim


def _kv(s: MixtralShape) -> int:
    return s.num_kv_heads * s.head_dim


GLOBAL_TENSORS = (
    TensorSpec("model.embed_tokens.weight", "token_embd.weight", lambda s: (s.vocab_size, s.hidden_size), "embed_tokens"),
)
BLOCK_TENSORS = (
    TensorSpec("model.layers.{bid}.input_layernorm.weight", "blk.{bid}.attn_norm.weight",
               lambda s: (s.hidden_size,), "", f32=True),
    TensorSpec("model.layers.{bid}.self_attn.q_proj.weight", "blk.{bid}.attn_q.weight",
               lambda s: (_attn(s), s.hidden_size), "q_proj", qlora_4bit=True, rope_heads="num_heads"),
    TensorSpec("model.layers.{bid}.self_attn.k_proj.weight", "blk.{bid}.attn_k.weight",
               lambda s: (_kv(s), s.hidden_size), "k_proj", qlora_4bit=True, rope_heads="num_kv_heads"),
    TensorSpec("model.layers.{bid}.self_attn.v_proj.weight", "blk.{bid}.attn_v.weight",
               lambda s: (_kv(s), s.hidden_size), "v_proj", qlora_4bit=True),
    TensorSpec("model.layers.{bid}.self_attn.o_proj.weight", "blk.{bid}.attn_output.weight",
               lambda s: (s.hidden_size, _attn(s)), "o_proj", qlora_4bit=True),
    TensorSpec("model.layers.{bid}.post_attention_layernorm.weight", "blk.{bid}.ffn_norm.weight",
               lambda s: (s.hidden_size,), "", f32=True),
    TensorSpec("model.layers.{bid}.block_sparse_moe.gate.weight", "blk.{bid}.ffn_gate_inp.weight",
               lambda s: (s.num_experts, s.hidden_size), "gate", f32=True),
)
EXPERT_TENSORS = (
    TensorSpec("model.layers.{bid}.block_sparse_moe.experts.{xid}.w1.weight", "blk.{bid}.ffn_gate_exps.weight",
               lambda s: (s.intermediate_size, s.hidden_size), "w1", qlora_4bit=True),
    TensorSpec("model.layers.{bid}.block_sparse_moe.experts.{xid}.w3.weight", "blk.{bid}.ffn_up_exps.weight",
               lambda s: (s.intermediate_size, s.hidden_size), "w3", qlora_4bit=True),
    TensorSpec("model.layers.{bid}.block_sparse_moe.experts.{xid}.w2.weight", "blk.{bid}.ffn_down_exps.weight",
               lambda s: (s.hidden_size, s.intermediate_size), "w2", qlora_4bit=True),
)
OUTPUT_TENSORS = (
    TensorSpec("model.norm.weight", "output_norm.weight", lambda s: (s.hidden_size,), "", f32=True),
    TensorSpec("lm_head.weight", "output.weight", lambda s: (s.vocab_size, s.hidden_size), "lm_head"),
)
ALL_SPECS = GLOBAL_TENSORS + BLOCK_TENSORS + EXPERT_TENSORS + OUTPUT_TENSORS

QLORA_4BIT_MODULES = tuple(dict.fromkeys(t.module for t in ALL_SPECS if t.qlora_4bit))
"""Leaf names of the modules QLoRA holds in 4-bit: q/k/v/o and every expert's w1/w2/w3."""
ATTENTION_MODULES = tuple(t.module for t in BLOCK_TENSORS if t.qlora_4bit)
"""The 4-bit modules of the attention (q/k/v/o); the rest of QLORA_4BIT_MODULES are the experts'."""
NOT_QUANTIZED_MODULES = ("gate", "lm_head")
"""Linear modules left in 16-bit: the router (tiny, exported from the 16-bit base) and the output."""


def _pattern(hf: str) -> re.Pattern:
    return re.compile("^" + re.escape(hf).replace(r"\{bid\}", r"(?P<bid>\d+)").replace(r"\{xid\}", r"(?P<xid>\d+)") + "$")


_PATTERNS = [(spec, _pattern(spec.hf)) for spec in ALL_SPECS]


@dataclass(frozen=True)
class TensorRef:
    """A concrete Hugging Face tensor: its table row, block and expert."""

    spec: TensorSpec
    bid: int | None = None
    xid: int | None = None

    @property
    def hf_name(self) -> str:
        return self.spec.hf.format(bid=self.bid, xid=self.xid)

    @property
    def gguf_name(self) -> str:
        return self.spec.gguf.format(bid=self.bid)

    def shape(self, s: MixtralShape) -> tuple[int, ...]:
        return self.spec.shape(s)


def lookup(hf_name: str) -> TensorRef | None:
    """The table row of a Hugging Face tensor name, or None for a name Mixtral does not have."""
    for spec, pattern in _PATTERNS:
        m = pattern.match(hf_name)
        if m:
            d = m.groupdict()
            return TensorRef(spec, int(d["bid"]) if "bid" in d else None, int(d["xid"]) if "xid" in d else None)
    return None


def tensors(s: MixtralShape) -> Iterator[TensorRef]:
    """Every Hugging Face tensor of the model, in model order (experts expert by expert)."""
    for spec in GLOBAL_TENSORS:
        yield TensorRef(spec)
    for bid in range(s.num_layers):
        for spec in BLOCK_TENSORS:
            yield TensorRef(spec, bid)
        for xid in range(s.num_experts):
            for spec in EXPERT_TENSORS:
                yield TensorRef(spec, bid, xid)
    for spec in OUTPUT_TENSORS:
        yield TensorRef(spec)


def hf_names(s: MixtralShape) -> list[str]:
    return [t.hf_name for t in tensors(s)]


def expert_name(bid: int, xid: int, module: str) -> str:
    spec = next(t for t in EXPERT_TENSORS if t.module == module)
    return spec.hf.format(bid=bid, xid=xid)


def module_shape(module: str, s: MixtralShape) -> tuple[int, int]:
    """(out, in) of a linear module by its leaf name (q_proj, w1, gate, lm_head, ...)."""
    for spec in ALL_SPECS:
        if spec.module == module and len(spec.shape(s)) == 2:
            return spec.shape(s)
    raise KeyError(module)


def module_counts(s: MixtralShape) -> dict[str, int]:
    """How many times each linear module occurs in the model (per layer, per expert)."""
    per = {spec.module: s.num_layers for spec in BLOCK_TENSORS if spec.module}
    per.update({spec.module: s.num_layers * s.num_experts for spec in EXPERT_TENSORS})
    return per
