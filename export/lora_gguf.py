"""The adapter alone as a GGUF LoRA that llama.cpp applies at load time.

    Llama(model_path="base-f16.gguf", lora_path="adapter.gguf")

Layout (llama.cpp's): `general.type = "adapter"`, `adapter.type = "lora"`, `adapter.lora.alpha`;
tensors `<base GGUF name>.lora_a` (r × in) and `.lora_b` (out × r), the experts' matrices stacked on a
first axis like the base tensors, and q/k `lora_b` rows permuted like the base q/k rows. llama.cpp
scales by alpha / r with r read from the tensors, so an rsLoRA adapter is written with
alpha' = r · alpha / √r.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import torch
from gguf import GGMLQuantizationType

from aurora_core import gguf_meta, mixtral
from aurora_core.gguf_meta import ARCH

from .checkpoint import Checkpoint
from .gguf_model import EXPORTER, PlannedTensor, permute_rows, write_planned
from .lora import AdapterError, LoraAdapter, check_against

F32 = GGMLQuantizationType.F32
LORA_A, LORA_B = 0, 1  # the two matrices of a pair, as LoraAdapter.pairs holds them


def _matrix(adapter: LoraAdapter, name: str, which: int, n_head: int | None) -> torch.Tensor:
    """LORA_A or LORA_B of `name` in float32; B's rows permuted like the base q/k rows."""
    t = adapter.pairs[name][which].float()
    return permute_rows(t, n_head) if which == LORA_B and n_head is not None else t


def plan_lora(adapter: LoraAdapter, base: Checkpoint) -> list[PlannedTensor]:
    s = base.shape
    for hf in adapter.pairs:
        if ".layers." not in hf:
            raise AdapterError(f"{adapter.folder}: LoRA on {hf} cannot be written as a GGUF LoRA; "
                               "use `aurora-export gguf --adapter` to merge it instead")
    plan: list[PlannedTensor] = []

    def add(name: str, shapes, produce):
        """`.lora_a` and `.lora_b` of one GGUF tensor, each made on its own when it is written."""
        for which, suffix in ((LORA_A, ".lora_a"), (LORA_B, ".lora_b")):
            plan.append(PlannedTensor(name + suffix, tuple(shapes[which]), F32, lambda which=which: produce(which)))

    for ref in mixtral.tensors(s):
        if ref.xid is None:
            if ref.hf_name in adapter.pairs:
                n_head = getattr(s, ref.spec.rope_heads) if ref.spec.rope_heads else None
                add(ref.gguf_name, [t.shape for t in adapter.pairs[ref.hf_name]],
                    lambda which, hf=ref.hf_name, nh=n_head: _matrix(adapter, hf, which, nh).numpy())
        elif ref.xid == 0:
            names = [mixtral.expert_name(ref.bid, e, ref.spec.module) for e in range(s.num_experts)]
            present = [x for x in names if x in adapter.pairs]
            if not present:
                continue
            shapes = [(s.num_experts, *t.shape) for t in adapter.pairs[present[0]]]

            def stacked(which, names=names, shapes=shapes):
                out = np.zeros(shapes[which], np.float32)  # an expert the adapter left alone keeps a zero delta
                for e, x in enumerate(names):
                    if x in adapter.pairs:
                        out[e] = _matrix(adapter, x, which, None).numpy()
                return out

            add(ref.gguf_name, shapes, stacked)
    return plan


def write_lora_gguf(path: Path, adapter: LoraAdapter, base: Checkpoint, progress: bool = True) -> Path:
    check_against(adapter, base)
    if adapter.replaced:
        raise AdapterError(f"{adapter.folder}: trains {sorted(adapter.replaced)[0]} in full (modules_to_save), "
                           "which a GGUF LoRA cannot carry; use `aurora-export gguf --adapter` to merge it")

    def add_kv(writer: gguf.GGUFWriter) -> None:
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string("adapter.type", "lora")
        writer.add_float32("adapter.lora.alpha", adapter.scale * adapter.r)
        writer.add_name(adapter.folder.name)
        writer.add_string(gguf_meta.EXPORTER, EXPORTER)
        writer.add_string(gguf_meta.BASE, base.folder.name)

    return write_planned(Path(path), ARCH, plan_lora(adapter, base), add_kv, progress, desc="gguf lora")
