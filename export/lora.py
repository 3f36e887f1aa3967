"""A PEFT LoRA adapter read from disk, and the one function for its weight delta.

    W' = W + scale · B · A,   scale = alpha / r   (alpha / √r with use_rslora)

accumulated in float32, for every target the adapter holds: the attention projections and every
expert's w1/w2/w3. Merge, GGUF export and the tests all use `delta`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from aurora_core import mixtral
from aurora_core.errors import AuroraError
from aurora_core.quiet import quiet_bitsandbytes
from aurora_core.mixtral import read_json
from aurora_core.provenance import Provenance

from .checkpoint import Checkpoint

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
# base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight -> model.layers.0.self_attn.q_proj.weight
PEFT_KEY = re.compile(r"^base_model\.model\.(?P<module>.+)\.lora_(?P<ab>[AB])(?:\.[^.]+)?\.weight$")


class AdapterError(AuroraError):
    """An adapter that cannot be applied; the message names the file or tensor and what to do."""


@dataclass
class LoraAdapter:
    """The adapter folder's config and its A/B matrices keyed by the base tensor name."""

    folder: Path
    r: int
    alpha: float
    use_rslora: bool
    target_modules: list[str]
    base_model: str | None
    pairs: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)  # name -> (A, B)
    replaced: dict[str, torch.Tensor] = field(default_factory=dict)  # modules_to_save: whole new weights
    extra: dict = field(default_factory=dict)  # the rest of adapter_config.json
    provenance: Provenance | None = None  # what training wrote beside the adapter

    @property
    def scale(self) -> float:
        return self.alpha / math.sqrt(self.r) if self.use_rslora else self.alpha / self.r

    def delta(self, name: str) -> torch.Tensor | None:
        """scale · B · A in float32 for base tensor `name`, or None when the adapter does not touch it."""
        if name not in self.pairs:
            return None
        a, b = self.pairs[name]
        d = (b.float() @ a.float()) * self.scale
        if not torch.isfinite(d).all():
            raise AdapterError(f"{self.folder / ADAPTER_WEIGHTS}: {name} has NaN or inf in its LoRA delta; "
                               "the adapter is corrupt")
        return d


def load_adapter(folder: str | Path) -> LoraAdapter:
    folder = Path(folder)
    cfg_path = folder / ADAPTER_CONFIG
    cfg = read_json(cfg_path, "pass --adapter the folder that training wrote", AdapterError)
    if not isinstance(cfg, dict):
        raise AdapterError(f"{cfg_path}: is not a JSON object; pass --adapter the folder that training wrote")
    if cfg.get("peft_type", "LORA") != "LORA":
        raise AdapterError(f"{cfg_path}: peft_type {cfg.get('peft_type')!r} is not LORA")
    if cfg.get("rank_pattern") or cfg.get("alpha_pattern"):
        raise AdapterError(f"{cfg_path}: rank_pattern/alpha_pattern are not supported; train with one r and alpha")
    if cfg.get("use_dora"):
        raise AdapterError(f"{cfg_path}: DoRA adapters are not supported; train a plain LoRA")
    weights = folder / ADAPTER_WEIGHTS
    if not weights.is_file():
        raise AdapterError(f"{weights}: missing; the adapter folder is incomplete")
    from safetensors.torch import load_file

    try:
        raw = load_file(str(weights))
    except Exception as exc:  # safetensors raises its own error types
        raise AdapterError(f"{weights}: unreadable ({exc}); re-copy the adapter") from None
    try:
        r, alpha = int(cfg["r"]), float(cfg["lora_alpha"])
    except KeyError as exc:
        raise AdapterError(f"{cfg_path}: key {exc.args[0]!r} is missing; the adapter config is incomplete") from None
    except (TypeError, ValueError):
        raise AdapterError(f"{cfg_path}: 'r' and 'lora_alpha' must be numbers") from None
    if r < 1:
        raise AdapterError(f"{cfg_path}: r = {r} must be at least 1; the adapter config is corrupt")
    if not math.isfinite(alpha) or alpha <= 0:
        raise AdapterError(f"{cfg_path}: lora_alpha = {alpha} must be a positive finite number; the adapter config "
                           "is corrupt")
    for key, tensor in raw.items():  # every command refuses a corrupt adapter here, before any work
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise AdapterError(f"{weights}: tensor {key} holds NaN or inf; the adapter is corrupt (retrain, or "
                               "resume from an earlier checkpoint)")
    adapter = LoraAdapter(folder=folder, r=r, alpha=alpha,
                          use_rslora=bool(cfg.get("use_rslora", False)),
                          target_modules=list(cfg.get("target_modules") or []),
                          base_model=cfg.get("base_model_name_or_path"), extra=cfg)
    halves: dict[str, dict[str, torch.Tensor]] = {}
    saved = tuple(cfg.get("modules_to_save") or ())
    for key, tensor in raw.items():
        m = PEFT_KEY.match(key)
        if m:
            halves.setdefault(m["module"] + ".weight", {})[m["ab"]] = tensor
        elif key.startswith("base_model.model.") and key.rsplit(".", 2)[-2] in saved:
            adapter.replaced[key[len("base_model.model."):]] = tensor  # e.g. a trained router
        else:
            raise AdapterError(f"{weights}: tensor {key} is not a LoRA A/B matrix or a modules_to_save weight")
    for name, ab in halves.items():
        if set(ab) != {"A", "B"}:
            raise AdapterError(f"{weights}: {name} has lora_{''.join(ab)} without its pair")
        adapter.pairs[name] = (ab["A"], ab["B"])
    if not adapter.pairs and not adapter.replaced:
        raise AdapterError(f"{weights}: holds no LoRA tensors")
    ranks = {a.shape[0] for a, _ in adapter.pairs.values()}
    if ranks and ranks != {adapter.r}:
        raise AdapterError(f"{cfg_path}: says r = {adapter.r} but the LoRA tensors in {weights.name} have rank "
                           f"{', '.join(map(str, sorted(ranks)))}; the scale alpha/r would be wrong: fix 'r' in the "
                           "config (or re-save the adapter)")
    adapter.provenance = Provenance.load(folder)
    return adapter


def check_against(adapter: LoraAdapter, base: Checkpoint) -> None:
    """Every adapter tensor must name a base tensor and fit its shape; raise naming the first that does not."""
    order = {name: i for i, name in enumerate(base.original_names())}
    s = base.shape
    for name in sorted(adapter.pairs, key=lambda n: order.get(n, -1)):  # report the first in model order
        a, b = adapter.pairs[name]
        if name not in order:
            raise AdapterError(f"{adapter.folder / ADAPTER_WEIGHTS}: {name} is not a tensor of the base at "
                               f"{base.folder}; the adapter was trained for another model")
        out_dim, in_dim = _linear_shape(name, s)
        if a.shape[1] != in_dim or b.shape[0] != out_dim or a.shape[0] != b.shape[1]:
            raise AdapterError(
                f"{adapter.folder / ADAPTER_WEIGHTS}: {name}: adapter A {tuple(a.shape)} and B {tuple(b.shape)} "
                f"do not fit the base weight ({out_dim}, {in_dim}); the adapter was trained for another base")
    for name, t in adapter.replaced.items():
        if name not in order or tuple(t.shape) != _linear_shape(name, s):
            raise AdapterError(f"{adapter.folder / ADAPTER_WEIGHTS}: {name} {tuple(t.shape)} does not replace a "
                               f"weight of the base at {base.folder}; the adapter was trained for another base")


def _linear_shape(name: str, s) -> tuple[int, int]:
    ref = mixtral.lookup(name)
    if ref is None or len(ref.shape(s)) != 2:
        raise AdapterError(f"{name}: LoRA on this module is not supported by the export")
    return ref.shape(s)


def nf4_roundtrip(weight: torch.Tensor) -> torch.Tensor:
    """The weight as the 4-bit base showed it during QLoRA training (NF4, double quant, block 64)."""
    quiet_bitsandbytes()
    import bitsandbytes.functional as bnbf

    w = weight.to(torch.bfloat16).contiguous()
    q, state = bnbf.quantize_4bit(w, blocksize=64, quant_type="nf4", compress_statistics=True)
    return bnbf.dequantize_4bit(q, state).to(torch.float32)
