"""Merge a LoRA adapter into the Mixtral base, tensor by tensor, never holding the whole model.

`Merger` hands out merged float32 tensors under the original Mixtral names; the GGUF writer and
`write_merged_checkpoint` (a merged Hugging Face folder, shard by shard) both read from it.

Merge target (`onto`):
- "base" (default): W16 + scale·B·A, onto the original 16-bit weights.
- "nf4": NF4(W16) dequantized + scale·B·A, onto the weights the adapter was actually trained
  against in QLoRA (NF4, double quantisation, block 64), as axolotl offers. Only the weights that
  QLoRA held in 4-bit (attention and expert projections) are rounded; others stay as they are.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from aurora_core import mixtral
from aurora_core.errors import AuroraError
from aurora_core.files import new_folder

from .checkpoint import INDEX_FILE, Checkpoint
from .file_types import MERGE_ONTO
from .lora import LoraAdapter, check_against, nf4_roundtrip

TOKENIZER_FILES = ("tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "generation_config.json")


class Merger:
    """Merged tensors of base + adapter, computed one at a time in float32."""

    def __init__(self, base: Checkpoint, adapter: LoraAdapter | None = None, onto: str = "base") -> None:
        if onto not in MERGE_ONTO:
            raise AuroraError(f"--merge-onto {onto!r}: choose base or nf4")
        if adapter is not None:
            check_against(adapter, base)
        self.base = base
        self.adapter = adapter
        self.onto = onto

    @classmethod
    def open(cls, base: str | Path, adapter: str | Path | None = None, onto: str = "base") -> "Merger":
        """The checkpoint folder and adapter folder, checked against each other."""
        from .lora import load_adapter

        return cls(Checkpoint(base), load_adapter(adapter) if adapter else None, onto)

    def tensor(self, name: str) -> torch.Tensor:
        """The merged weight `name` (original Mixtral name) in float32."""
        if self.adapter is not None and name in self.adapter.replaced:
            return self.adapter.replaced[name].float()  # trained in full (modules_to_save), e.g. the router
        weight = self.base.tensor(name)
        delta = self.adapter.delta(name) if self.adapter is not None else None
        if delta is None:
            return weight.float()
        if self.onto == "nf4" and mixtral.lookup(name).spec.qlora_4bit:
            return nf4_roundtrip(weight) + delta
        return weight.float() + delta

    def fill_stacked(self, layer: int, module: str, out: np.ndarray, check: Callable | None = None) -> None:
        """Write every expert's merged `module` (w1, w2 or w3) of `layer` into out[e] (any float dtype), expert
        by expert; `check(e, tensor)` sees each float32 tensor before it is cast to out's dtype."""
        for e in range(self.base.shape.num_experts):
            t = self.tensor(mixtral.expert_name(layer, e, module))
            if check is not None:
                check(e, t)
            out[e] = t.numpy()


def write_merged_checkpoint(merger: Merger, out: Path, force: bool = False, progress: bool = True) -> Path:
    """A merged Hugging Face checkpoint in the original layout, written base shard by base shard."""
    from safetensors.torch import save_file
    from tqdm import tqdm

    base = merger.base
    with new_folder(Path(out), force) as tmp:
        by_shard: dict[str, list[str]] = {}
        for name in base.original_names():
            by_shard.setdefault(base.shard_of(name), []).append(name)
        shards = sorted(by_shard)
        dtype = getattr(torch, str(base.config.get("torch_dtype") or base.config.get("dtype") or "bfloat16"))
        weight_map: dict[str, str] = {}
        total = 0
        bar = tqdm(total=len(base.original_names()), unit="tensor", desc="merge", disable=not progress)
        for k, shard in enumerate(shards, start=1):
            fname = f"model-{k:05d}-of-{len(shards):05d}.safetensors"
            tensors = {}
            for name in by_shard[shard]:
                tensors[name] = merger.tensor(name).to(dtype).contiguous()
                total += tensors[name].numel() * tensors[name].element_size()
                bar.update(1)
            save_file(tensors, str(tmp / fname), metadata={"format": "pt"})
            weight_map.update({n: fname for n in tensors})
            del tensors
        bar.close()
        index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
        (tmp / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
        config = dict(base.config)
        config["architectures"] = ["MixtralForCausalLM"]
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        for f in TOKENIZER_FILES:
            if (base.folder / f).is_file():
                shutil.copy2(base.folder / f, tmp / f)
    return Path(out)
