"""Shared fixtures: the tiny Mixtral kit, built once per test session by the product's own command."""

from __future__ import annotations

import os
import shutil

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory):
    """A tiny Mixtral-8x7B-Instruct-shaped checkpoint folder (bf16 weights, as released)."""
    from aurora_training.tiny import TinyBaseConfig, write_tiny_base

    return write_tiny_base(tmp_path_factory.mktemp("kit") / "tiny-base", TinyBaseConfig())


@pytest.fixture(scope="session")
def export_kit(tmp_path_factory):
    """A tiny Mixtral wide enough (hidden 256, experts' rows 512) for llama.cpp's k-quants to apply."""
    from aurora_training.tiny import TinyBaseConfig, write_tiny_base

    return write_tiny_base(tmp_path_factory.mktemp("kit") / "tiny-256",
                           TinyBaseConfig(hidden=256, intermediate=512, heads=4, kv_heads=2))


def make_peft_adapter(base, out, seed=0, r=4, alpha=8, targets=("q_proj", "k_proj", "v_proj", "o_proj", "w1", "w2", "w3"),
                      **lora_kwargs):
    """A real PEFT LoRA adapter on `base`, with non-zero B matrices so that merges can be checked."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    config = LoraConfig(r=r, lora_alpha=alpha, target_modules=list(targets), init_lora_weights=False, **lora_kwargs)
    peft_model = get_peft_model(model, config)
    with torch.no_grad():  # peft's non-default init draws B large; keep the merged model's logits in a sane range
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.mul_(0.05)
    peft_model.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def export_adapter(export_kit, tmp_path_factory):
    return make_peft_adapter(export_kit, tmp_path_factory.mktemp("adapter") / "lora")


@pytest.fixture(scope="session")
def peft_merged(export_kit, export_adapter):
    """The reference: peft's own merge_and_unload of the adapter into the base, float32."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(export_kit, dtype=torch.float32)
    return PeftModel.from_pretrained(model, export_adapter).merge_and_unload().eval()


@pytest.fixture(scope="session")
def exported(export_kit, export_adapter, tmp_path_factory):
    """aurora-export gguf in all float and k-quant types, run once through the command's main()."""
    from aurora_export.cli import main

    out = tmp_path_factory.mktemp("gguf") / "aurora.gguf"
    assert main(["gguf", "--base", str(export_kit), "--adapter", str(export_adapter), "--out", str(out),
                 "--type", "f32,f16,bf16,q8_0,q6_k,q5_k_m,q4_k_m", "--no-progress"]) == 0
    return {t: out.with_name(f"aurora-{t}.gguf") for t in ("f32", "f16", "bf16", "q8_0", "q6_k", "q5_k_m", "q4_k_m")}


@pytest.fixture
def kit(export_kit, tmp_path):
    """A copy of the export kit that a test may damage."""
    return shutil.copytree(export_kit, tmp_path / "kit")


@pytest.fixture
def adapter(export_adapter, tmp_path):
    """A copy of the adapter that a test may damage."""
    return shutil.copytree(export_adapter, tmp_path / "adapter")
