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
from gguf import MODEL_TENSOR, GGMLQuantizationType

from .checkpoint import Checkpoint
from .gguf_model import ARCH, BLOCK_TENSORS, EXPERT_TENSORS, EXPORTER, PlannedTensor, permute_rows, tensor_name, \
    write_planned
from .lora import AdapterError, LoraAdapter, check_against

F32 = GGMLQuantizationType.F32


def _pair(adapter: LoraAdapter, name: str, n_head: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = adapter.pairs[name]
    b = b.float()
    if n_head is not None:
        b = permute_rows(b, n_head)
    return a.float(), b


def plan_lora(adapter: LoraAdapter, base: Checkpoint) -> list[PlannedTensor]:
    s = base.shape
    plan: list[PlannedTensor] = []
    heads = {MODEL_TENSOR.ATTN_Q: s.num_heads, MODEL_TENSOR.ATTN_K: s.num_kv_heads}

    def add(name: str, a_shape, b_shape, make):
        plan.append(PlannedTensor(name + ".lora_a", tuple(a_shape), F32, lambda: make()[0]))
        plan.append(PlannedTensor(name + ".lora_b", tuple(b_shape), F32, lambda: make()[1]))

    for n in range(s.num_layers):
        p = f"model.layers.{n}."
        for suffix, kind in BLOCK_TENSORS.items():
            hf = p + suffix
            if hf not in adapter.pairs:
                continue
            a, b = adapter.pairs[hf]
            make = lambda hf=hf, kind=kind: tuple(t.numpy() for t in _pair(adapter, hf, heads.get(kind)))  # noqa: E731
            add(tensor_name(kind, n), a.shape, b.shape, make)
        for w, kind in EXPERT_TENSORS.items():
            names = [p + f"block_sparse_moe.experts.{e}.{w}.weight" for e in range(s.num_experts)]
            present = [x for x in names if x in adapter.pairs]
            if not present:
                continue
            a0, b0 = adapter.pairs[present[0]]

            def make(names=names, a0=a0, b0=b0):
                a = np.zeros((len(names), *a0.shape), np.float32)
                b = np.zeros((len(names), *b0.shape), np.float32)
                for e, x in enumerate(names):  # an expert the adapter left alone keeps a zero delta
                    if x in adapter.pairs:
                        a[e], b[e] = (t.numpy() for t in _pair(adapter, x, None))
                return a, b

            add(tensor_name(kind, n), (s.num_experts, *a0.shape), (s.num_experts, *b0.shape), make)
    for hf in adapter.pairs:
        if ".layers." not in hf:
            raise AdapterError(f"{adapter.folder}: LoRA on {hf} cannot be written as a GGUF LoRA; "
                               "use `aurora-export gguf --adapter` to merge it instead")
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
        writer.add_string("general.aurora.exporter", EXPORTER)
        writer.add_string("general.aurora.base", base.folder.name)

    return write_planned(Path(path), ARCH, plan_lora(adapter, base), add_kv, progress, desc="gguf lora")
