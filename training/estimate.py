"""`aurora-train estimate`: GPU memory of a QLoRA run, part by part, for the real Mixtral-8x7B shape.

The parts: the 4-bit weights with their quantisation constants, the weights left in 16/32-bit
(embeddings, lm_head, router, norms), the LoRA weights with their gradients and optimizer state,
activations with gradient checkpointing (one checkpointed input per layer, one layer recomputed,
the logits), and the CUDA context. A model, not a measurement: bench/qlora_gpu.py measures.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import TrainConfig


@dataclass(frozen=True)
class Shape:
    vocab: int = 32000
    hidden: int = 4096
    intermediate: int = 14336
    layers: int = 32
    heads: int = 32
    kv_heads: int = 8
    experts: int = 8
    top_k: int = 2

    @classmethod
    def from_config(cls, c: dict) -> "Shape":
        return cls(c["vocab_size"], c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"],
                   c["num_attention_heads"], c.get("num_key_value_heads", c["num_attention_heads"]),
                   c["num_local_experts"], c["num_experts_per_tok"])


MIXTRAL_8X7B = Shape()
GiB = 2**30


def module_shapes(s: Shape) -> dict[str, tuple[int, int, int]]:
    """Per module kind: (in, out, count over the model)."""
    hd = s.hidden // s.heads
    return {
        "q_proj": (s.hidden, s.heads * hd, s.layers), "k_proj": (s.hidden, s.kv_heads * hd, s.layers),
        "v_proj": (s.hidden, s.kv_heads * hd, s.layers), "o_proj": (s.heads * hd, s.hidden, s.layers),
        "w1": (s.hidden, s.intermediate, s.layers * s.experts), "w3": (s.hidden, s.intermediate, s.layers * s.experts),
        "w2": (s.intermediate, s.hidden, s.layers * s.experts),
    }


def estimate(cfg: TrainConfig, s: Shape = MIXTRAL_8X7B) -> list[tuple[str, float]]:
    """(part, bytes) rows; the last row is the total."""
    shapes = module_shapes(s)
    quantized = sum(i * o * n for i, o, n in shapes.values())
    per_param = 0.5 + ((1 / 64 + 4 / (64 * 256)) if cfg.double_quant else 4 / 64)
    act = 2 if cfg.compute_dtype != "float32" else 4
    weights4 = quantized * per_param if cfg.load_in_4bit else quantized * act
    # prepare_model_for_kbit_training keeps embeddings and lm_head in float32
    other = 2 * s.vocab * s.hidden * 4 + s.layers * (s.experts * s.hidden + 2 * s.hidden) * 4
    lora = sum(cfg.lora_r * (i + o) * n for name, (i, o, n) in shapes.items() if name in cfg.target_modules)
    state_bytes = {"paged_adamw_8bit": 2, "adamw_8bit": 2, "paged_adamw": 8, "adamw": 8}[cfg.optimizer]
    lora_bytes = lora * (4 + 4 + state_bytes)  # fp32 weights, fp32 grads, optimizer state
    tokens = cfg.batch_size * cfg.cutoff_len
    if cfg.gradient_checkpointing:
        saved = s.layers * tokens * s.hidden * act
        one_layer = tokens * (4 * s.hidden + 2 * (s.kv_heads * s.hidden // s.heads)) * act \
            + cfg.batch_size * s.heads * cfg.cutoff_len * 4 \
            + tokens * s.top_k * s.intermediate * 3 * act \
            + tokens * s.top_k * cfg.lora_r * act
    else:
        saved = 0
        one_layer = s.layers * (tokens * (6 * s.hidden + s.top_k * s.intermediate * 3) * act)
    logits = tokens * s.vocab * 4 * 3  # fp32 logits, their softmax and gradient
    overhead = 1.0 * GiB  # CUDA context, allocator slack
    rows = [
        (f"4-bit weights + constants ({quantized / 1e9:.1f} B params)" if cfg.load_in_4bit
         else f"16-bit weights ({quantized / 1e9:.1f} B params)", weights4),
        ("embeddings, lm_head, router, norms (fp32)", other),
        (f"LoRA r={cfg.lora_r}: {lora / 1e6:.0f} M params, fp32 + grads + {cfg.optimizer} state", lora_bytes),
        ("activations: checkpointed layer inputs" if cfg.gradient_checkpointing else "activations", saved),
        ("activations: one layer recomputed" if cfg.gradient_checkpointing else "activations: all layers", one_layer),
        (f"logits ({cfg.batch_size} x {cfg.cutoff_len} x {s.vocab}, fp32)", logits),
        ("CUDA context and allocator slack", overhead),
    ]
    rows.append(("total", sum(b for _, b in rows)))
    return rows


def table(rows: list[tuple[str, float]]) -> str:
    lines = ["| part | GiB |", "|---|---:|"]
    lines += [f"| {name} | {b / GiB:,.2f} |" for name, b in rows]
    return "\n".join(lines)
