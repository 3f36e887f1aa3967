"""The QLoRA model: Mixtral with every attention and expert projection in bitsandbytes NF4, plus LoRA.

transformers 4.57 keeps Mixtral's experts as per-expert `nn.Linear` (`block_sparse_moe.experts.E.w1`),
which bitsandbytes replaces with `Linear4bit`; transformers 5.x fuses them into 3-D parameters that stay
in 16-bit (about 90 GB for Mixtral-8x7B). `quantized_share` measures which one you got, and training
refuses to start a 4-bit run whose experts are not 4-bit.
"""

from __future__ import annotations

import torch

from aurora_core.errors import AuroraError
from aurora_core.quiet import quiet_bitsandbytes
from aurora_core.mixtral import NOT_QUANTIZED_MODULES, QLORA_4BIT_MODULES


class QuantizationError(AuroraError):
    pass


def quantized_share(model: torch.nn.Module) -> float:
    """Share of the attention and expert projection parameters held as bitsandbytes 4-bit."""
    import bitsandbytes as bnb

    total = quantized = 0
    for name, module in model.named_modules():
        parts = name.split(".")
        leaf = parts[-2] if parts[-1] == "base_layer" and len(parts) > 1 else parts[-1]  # peft wraps the layer
        if leaf in QLORA_4BIT_MODULES and isinstance(module, torch.nn.Linear):
            n = module.in_features * module.out_features
            total += n
            if isinstance(module, bnb.nn.Linear4bit):
                quantized += n
        elif leaf == "experts" and not isinstance(module, torch.nn.ModuleList):
            # transformers 5.x: fused expert parameters, never bitsandbytes layers
            total += sum(p.numel() for p in module.parameters(recurse=False))
    return quantized / total if total else 0.0


def load_model(cfg, device: str | torch.device = "cpu"):
    """The base (4-bit when cfg.load_in_4bit) wrapped with LoRA, ready to train."""
    quiet_bitsandbytes()
    from peft import get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading checkpoint shards": aurora-train shows its own progress

    compute = getattr(torch, cfg.compute_dtype)
    kwargs = {"dtype": compute if cfg.load_in_4bit else torch.float32}
    if torch.device(device).type != "cpu" and not cfg.fsdp:
        kwargs["device_map"] = {"": device}  # one whole copy per process (DDP), on this process's GPU
    # (under FSDP, fsdp.load_sharded has transformers load the base into host RAM on rank 0 alone)
    if cfg.load_in_4bit:
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=cfg.double_quant,
            bnb_4bit_compute_dtype=compute, llm_int8_skip_modules=list(NOT_QUANTIZED_MODULES),
            # FSDP flattens a unit's weights into one tensor of one dtype: the 4-bit ones are stored in the
            # compute dtype like the rest (bitsandbytes' quant_storage); uint8 otherwise
            **({"bnb_4bit_quant_storage": compute} if cfg.fsdp else {}))
    if cfg.router_aux_loss_coef > 0:  # the model adds coef x load-balancing loss to its own loss
        kwargs.update(output_router_logits=True, router_aux_loss_coef=cfg.router_aux_loss_coef)
    model = AutoModelForCausalLM.from_pretrained(cfg.base, **kwargs)
    if cfg.load_in_4bit:
        share = quantized_share(model)
        if share < 0.99:
            raise QuantizationError(
                f"{cfg.base}: only {share:.1%} of the attention and expert projections loaded in 4-bit; with "
                "transformers 5.x Mixtral's fused experts stay 16-bit. Install transformers>=4.57,<5")
    model.config.use_cache = False
    if cfg.load_in_4bit and not cfg.fsdp:  # (it casts norms to float32: FSDP needs one dtype per unit)
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
    elif cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    torch.manual_seed(cfg.seed)  # LoRA A initialisation
    model = get_peft_model(model, lora_config(cfg))
    if cfg.fsdp:
        _trained_in_float32(model)
    return model


def _trained_in_float32(model) -> None:
    """Under FSDP the base stays in the compute dtype, but what trains is float32 as without FSDP (AdamW on 16-bit
    weights loses small updates): peft makes LoRA float32, and the router's trained copy (`train_router`) is cast
    here, since FSDP2 wants one dtype for the trained weights of a unit. Its input is cast to float32 too; Mixtral
    takes the router's softmax in float32 anyway."""
    for name, module in model.named_modules():
        if name.endswith(".modules_to_save.default") and any(p.requires_grad for p in module.parameters()):
            module.float()
            module.register_forward_pre_hook(lambda m, args: tuple(a.float() for a in args))


def lora_config(cfg):
    from peft import LoraConfig

    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=list(cfg.target_modules), use_rslora=cfg.use_rslora, bias="none",
                      modules_to_save=["gate"] if cfg.train_router else None, task_type="CAUSAL_LM")
