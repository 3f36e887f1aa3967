"""`aurora-train estimate`: GPU memory of a QLoRA run, part by part, for the real Mixtral-8x7B shape.

The parts: the 4-bit weights with their quantisation constants, the weights left in 16/32-bit
(embeddings, lm_head, router, norms), the LoRA weights with their gradients and optimizer state,
activations with gradient checkpointing (one checkpointed input per layer, one layer recomputed,
the logits), and the CUDA context. A model, not a measurement: bench/qlora_gpu.py measures.

`per_gpu` spreads it over N GPUs: under DDP every GPU holds all of it; under FSDP the weights, the LoRA weights,
their gradients and optimizer state are split N ways, each GPU also holds the units gathered at once (the one
running and the next, prefetched), its own activations and all of the 4-bit weights' quantization constants
(bitsandbytes keeps them on the module, outside what FSDP shards); with offload the shards live in host RAM
instead.
"""

from __future__ import annotations

from aurora_core.mixtral import (ATTENTION_MODULES, MIXTRAL_8X7B, QLORA_4BIT_MODULES, MixtralShape, module_counts,
                                 module_shape)

from .config import TrainConfig


GiB = 2**30


def module_shapes(s: MixtralShape) -> dict[str, tuple[int, int, int]]:
    """Per module kind QLoRA holds in 4-bit: (in, out, count over the model)."""
    counts = module_counts(s)
    return {m: (module_shape(m, s)[1], module_shape(m, s)[0], counts[m]) for m in QLORA_4BIT_MODULES}


def estimate(cfg: TrainConfig, s: MixtralShape = MIXTRAL_8X7B) -> list[tuple[str, float]]:
    """(part, bytes) rows; the last row is the total."""
    shapes = module_shapes(s)
    quantized = sum(i * o * n for i, o, n in shapes.values())
    per_param = 0.5 + ((1 / 64 + 4 / (64 * 256)) if cfg.double_quant else 4 / 64)
    act = 2 if cfg.compute_dtype != "float32" else 4
    weights4 = quantized * per_param if cfg.load_in_4bit else quantized * act
    # prepare_model_for_kbit_training keeps embeddings and lm_head in float32
    other = 2 * s.vocab_size * s.hidden_size * 4 + s.num_layers * (s.num_experts * s.hidden_size + 2 * s.hidden_size) * 4
    lora = sum(cfg.lora_r * (i + o) * n for name, (i, o, n) in shapes.items() if name in cfg.target_modules)
    state_bytes = {"paged_adamw_8bit": 2, "adamw_8bit": 2, "paged_adamw": 8, "adamw": 8}[cfg.optimizer]
    lora_bytes = lora * (4 + 4 + state_bytes)  # fp32 weights, fp32 grads, optimizer state
    tokens = cfg.batch_size * cfg.cutoff_len
    if cfg.gradient_checkpointing:
        saved = s.num_layers * tokens * s.hidden_size * act
        one_layer = tokens * (4 * s.hidden_size + 2 * (s.num_kv_heads * s.hidden_size // s.num_heads)) * act \
            + cfg.batch_size * s.num_heads * cfg.cutoff_len * 4 \
            + tokens * s.experts_per_token * s.intermediate_size * 3 * act \
            + tokens * s.experts_per_token * cfg.lora_r * act
    else:
        saved = 0
        one_layer = s.num_layers * (tokens * (6 * s.hidden_size + s.experts_per_token * s.intermediate_size * 3) * act)
    logits = tokens * s.vocab_size * 4 * 3  # fp32 logits, their softmax and gradient
    overhead = 1.0 * GiB  # CUDA context, allocator slack
    rows = [
        (f"4-bit weights + constants ({quantized / 1e9:.1f} B params)" if cfg.load_in_4bit
         else f"16-bit weights ({quantized / 1e9:.1f} B params)", weights4),
        ("embeddings, lm_head, router, norms (fp32)", other),
        (f"LoRA r={cfg.lora_r}: {lora / 1e6:.0f} M params, fp32 + grads + {cfg.optimizer} state", lora_bytes),
        ("activations: checkpointed layer inputs" if cfg.gradient_checkpointing else "activations", saved),
        ("activations: one layer recomputed" if cfg.gradient_checkpointing else "activations: all layers", one_layer),
        (f"logits ({cfg.batch_size} x {cfg.cutoff_len} x {s.vocab_size}, fp32)", logits),
        ("CUDA context and allocator slack", overhead),
    ]
    rows.append(("total", sum(b for _, b in rows)))
    return rows


def table(rows: list[tuple[str, float]]) -> str:
    lines = ["| part | GiB |", "|---|---:|"]
    lines += [f"| {name} | {b / GiB:,.2f} |" for name, b in rows]
    return "\n".join(lines)


def per_gpu(cfg: TrainConfig, gpus: int = 1, fsdp: bool = False, offload: bool = False,
            s: MixtralShape = MIXTRAL_8X7B) -> tuple[list[tuple[str, float]], float]:
    """(part, bytes per GPU) rows with the total last, and the host RAM the run holds beyond the usual (offload:
    every rank's shards). DDP and one GPU: `estimate` as it is."""
    rows = dict(estimate(cfg, s)[:-1])
    names = list(rows)
    weights, other, lora, saved, layer, logits, context = (rows[n] for n in names)
    if not fsdp or gpus < 2:
        out = list(rows.items())
        out.append(("total", sum(rows.values())))
        return out, 0.0
    other = other / 2 if cfg.compute_dtype != "float32" else other  # under FSDP they stay in the compute dtype
    lora_bytes = lora if cfg.optimizer == "adamw" else lora / (4 + 4 + 2) * (4 + 4 + 8)  # 8-bit state: AdamW's
    # bitsandbytes keeps a 4-bit weight's constants (absmax, nested absmax) on its module, not in the parameter that
    # FSDP shards: every GPU holds all of them, offload or not
    shapes = module_shapes(s)
    quantized = sum(i * o * n for i, o, n in shapes.values())
    packed = quantized * 0.5 if cfg.load_in_4bit else weights
    constants = weights - packed
    sharded = (packed + other + lora_bytes) / gpus
    # gathered during a step: the root's weights stay whole from the forward into the backward (FSDP2's default for
    # the root), each unit's only while it runs, plus the next one prefetched
    attention = sum(i * o * n for m, (i, o, n) in shapes.items() if m in ATTENTION_MODULES)
    share = attention / quantized  # of the 4-bit weights (and of LoRA, roughly)
    lora_whole = lora_bytes / 16 * 8  # a unit's LoRA weights and gradients gather whole; AdamW's state stays sharded
    unit = (packed + lora_whole) / s.num_layers
    if cfg.fsdp_wrap == "moe_block":  # attention is the root's
        root, unit = other + share * (packed + lora_whole), unit * (1 - share)
    else:
        root = other
    host = 0.0
    if offload:
        host, sharded = sharded * gpus, 0.0
    where = " — in host RAM" if offload else ""
    out = [(f"shard of the weights, LoRA, grads and optimizer state (1/{gpus}){where}", sharded),
           ("4-bit quantization constants (every GPU holds all of them)", constants),
           ("root weights held whole during a step: embeddings, lm_head, norms, routers"
            + (", all attention" if cfg.fsdp_wrap == "moe_block" else ""), root),
           (f"two {cfg.fsdp_wrap.replace('_', ' ')}s gathered (running + prefetched)", 2 * unit),
           (names[3], saved), (names[4], layer), (names[5], logits), (names[6], context)]
    out.append(("total", sum(b for _, b in out)))
    return out, host
