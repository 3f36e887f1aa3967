"""Write Mixtral (+ merged adapter) as a GGUF file in llama.cpp's layout, one tensor at a time.

llama.cpp runs Mixtral as architecture `llama` with experts: each block's per-expert w1/w3/w2 are
stacked on a new first axis into `ffn_gate_exps`/`ffn_up_exps`/`ffn_down_exps`, the router is
`ffn_gate_inp` (kept F32, like every 1-D norm), and q/k rows are permuted from Hugging Face's
rotate-half order to llama.cpp's interleaved order. Names come from gguf-py's own tables.

The header (metadata and every tensor's name, shape and type) is written first, from shapes alone;
then each tensor is read, merged, converted and appended, so memory holds one tensor at a time.
The file is written under a temporary name and renamed at the end.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import gguf
import numpy as np
import torch
from gguf import MODEL_TENSOR, TENSOR_NAMES, GGMLQuantizationType, LlamaFileType

from .checkpoint import Checkpoint
from .merge import Merger

ARCH = "llama"
EXPORTER = "aurora-export 0.1.0"

# One line per source name: Hugging Face (original Mixtral names) -> gguf-py tensor kind.
GLOBAL_TENSORS = {
    "model.embed_tokens.weight": MODEL_TENSOR.TOKEN_EMBD,
    "model.norm.weight": MODEL_TENSOR.OUTPUT_NORM,
    "lm_head.weight": MODEL_TENSOR.OUTPUT,
}
BLOCK_TENSORS = {
    "input_layernorm.weight": MODEL_TENSOR.ATTN_NORM,
    "self_attn.q_proj.weight": MODEL_TENSOR.ATTN_Q,
    "self_attn.k_proj.weight": MODEL_TENSOR.ATTN_K,
    "self_attn.v_proj.weight": MODEL_TENSOR.ATTN_V,
    "self_attn.o_proj.weight": MODEL_TENSOR.ATTN_OUT,
    "post_attention_layernorm.weight": MODEL_TENSOR.FFN_NORM,
    "block_sparse_moe.gate.weight": MODEL_TENSOR.FFN_GATE_INP,
}
EXPERT_TENSORS = {"w1": MODEL_TENSOR.FFN_GATE_EXP, "w3": MODEL_TENSOR.FFN_UP_EXP, "w2": MODEL_TENSOR.FFN_DOWN_EXP}
ALWAYS_F32 = {MODEL_TENSOR.ATTN_NORM, MODEL_TENSOR.FFN_NORM, MODEL_TENSOR.OUTPUT_NORM, MODEL_TENSOR.FFN_GATE_INP}

# Output types written directly; the rest are made by llama.cpp's quantizer from an F16 file.
FLOAT_TYPES = {
    "f32": (GGMLQuantizationType.F32, LlamaFileType.ALL_F32),
    "f16": (GGMLQuantizationType.F16, LlamaFileType.MOSTLY_F16),
    "bf16": (GGMLQuantizationType.BF16, LlamaFileType.MOSTLY_BF16),
}

# SentencePiece piece kinds -> GGUF token types.
TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_UNUSED, TOKEN_BYTE = 1, 2, 3, 5, 6


def tensor_name(kind: MODEL_TENSOR, block: int | None = None) -> str:
    base = TENSOR_NAMES[kind]
    return (base.format(bid=block) if block is not None else base) + ".weight"


def permute_rows(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """Hugging Face rotate-half q/k rows -> llama.cpp's interleaved rotary order."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


@dataclass
class PlannedTensor:
    name: str  # GGUF name
    shape: tuple[int, ...]  # numpy order (outermost first)
    ggml_type: GGMLQuantizationType
    produce: Callable[[], np.ndarray]  # float32/float16 array of `shape`, or raw bytes for BF16


def _convert(arr: np.ndarray, ggml_type: GGMLQuantizationType) -> np.ndarray:
    if ggml_type == GGMLQuantizationType.F32:
        return arr.astype(np.float32, copy=False)
    if ggml_type == GGMLQuantizationType.F16:
        return arr.astype(np.float16, copy=False)
    return gguf.quants.quantize(arr.astype(np.float32, copy=False), ggml_type)


def _nbytes(shape: tuple[int, ...], ggml_type: GGMLQuantizationType) -> int:
    block, size = gguf.GGML_QUANT_SIZES[ggml_type]
    return int(np.prod(shape)) // block * size


def plan_model(merger: Merger, out_type: str) -> list[PlannedTensor]:
    """Every GGUF tensor with its shape, type and a function that makes its data, in writing order."""
    s = merger.base.shape
    weight_type = FLOAT_TYPES[out_type][0]
    plan: list[PlannedTensor] = []

    def single(hf_name: str, kind: MODEL_TENSOR, block: int | None, shape, n_head: int | None = None):
        ggml_type = GGMLQuantizationType.F32 if kind in ALWAYS_F32 or len(shape) == 1 else weight_type

        def produce() -> np.ndarray:
            t = merger.tensor(hf_name)
            if n_head is not None:
                t = permute_rows(t, n_head)
            return _convert(t.numpy(), ggml_type)

        plan.append(PlannedTensor(tensor_name(kind, block), tuple(shape), ggml_type, produce))

    def stacked(layer: int, w: str, shape):
        def produce() -> np.ndarray:
            dtype = np.float16 if weight_type == GGMLQuantizationType.F16 else np.float32
            out = np.empty(shape, dtype=dtype)
            merger.fill_stacked(layer, w, out)
            return _convert(out, weight_type)

        plan.append(PlannedTensor(tensor_name(EXPERT_TENSORS[w], layer), tuple(shape), weight_type, produce))

    H, I, E, hd = s.hidden_size, s.intermediate_size, s.num_experts, s.head_dim
    single("model.embed_tokens.weight", MODEL_TENSOR.TOKEN_EMBD, None, (s.vocab_size, H))
    for n in range(s.num_layers):
        p = f"model.layers.{n}."
        single(p + "input_layernorm.weight", MODEL_TENSOR.ATTN_NORM, n, (H,))
        single(p + "self_attn.q_proj.weight", MODEL_TENSOR.ATTN_Q, n, (s.num_heads * hd, H), n_head=s.num_heads)
        single(p + "self_attn.k_proj.weight", MODEL_TENSOR.ATTN_K, n, (s.num_kv_heads * hd, H), n_head=s.num_kv_heads)
        single(p + "self_attn.v_proj.weight", MODEL_TENSOR.ATTN_V, n, (s.num_kv_heads * hd, H))
        single(p + "self_attn.o_proj.weight", MODEL_TENSOR.ATTN_OUT, n, (H, s.num_heads * hd))
        single(p + "post_attention_layernorm.weight", MODEL_TENSOR.FFN_NORM, n, (H,))
        single(p + "block_sparse_moe.gate.weight", MODEL_TENSOR.FFN_GATE_INP, n, (E, H))
        stacked(n, "w1", (E, I, H))
        stacked(n, "w3", (E, I, H))
        stacked(n, "w2", (E, H, I))
    single("model.norm.weight", MODEL_TENSOR.OUTPUT_NORM, None, (H,))
    single("lm_head.weight", MODEL_TENSOR.OUTPUT, None, (s.vocab_size, H))
    return plan


def sentencepiece_vocab(model_file: Path) -> tuple[list[bytes], list[float], list[int]]:
    """Tokens, scores and GGUF token types of a SentencePiece model, in id order."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(model_file))
    tokens, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        tokens.append(sp.id_to_piece(i).encode("utf-8"))
        scores.append(sp.get_score(i))
        if sp.is_unknown(i):
            types.append(TOKEN_UNKNOWN)
        elif sp.is_control(i):
            types.append(TOKEN_CONTROL)
        elif sp.is_byte(i):
            types.append(TOKEN_BYTE)
        elif sp.is_unused(i):
            types.append(TOKEN_UNUSED)
        else:
            types.append(TOKEN_NORMAL)
    return tokens, scores, types


def chat_template_for(adapter_folder: Path | None) -> str:
    """The template training used: the adapter's own copy if it carries one, else Aurora's."""
    if adapter_folder is not None:
        for name in ("chat_template.jinja",):
            if (adapter_folder / name).is_file():
                return (adapter_folder / name).read_text(encoding="utf-8")
    from aurora_training.chat_format import CHAT_TEMPLATE

    return CHAT_TEMPLATE


def add_metadata(writer: gguf.GGUFWriter, merger: Merger, file_type: LlamaFileType) -> None:
    base: Checkpoint = merger.base
    s = base.shape
    adapter = merger.adapter
    name = base.folder.name + (f"+{adapter.folder.name}" if adapter else "")
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    writer.add_license("apache-2.0")
    writer.add_base_model_count(1)
    writer.add_base_model_name(0, str(base.config.get("_name_or_path") or base.folder.name))
    writer.add_context_length(s.context_length)
    writer.add_embedding_length(s.hidden_size)
    writer.add_block_count(s.num_layers)
    writer.add_feed_forward_length(s.intermediate_size)
    writer.add_head_count(s.num_heads)
    writer.add_head_count_kv(s.num_kv_heads)
    writer.add_rope_dimension_count(s.head_dim)
    writer.add_rope_freq_base(s.rope_theta)
    writer.add_layer_norm_rms_eps(s.rms_norm_eps)
    writer.add_expert_count(s.num_experts)
    writer.add_expert_used_count(s.experts_per_token)
    writer.add_vocab_size(s.vocab_size)
    writer.add_file_type(file_type)
    writer.add_string("general.aurora.exporter", EXPORTER)
    if adapter is not None:
        writer.add_string("general.aurora.adapter", str(adapter.folder.name))
        writer.add_uint32("general.aurora.lora_rank", adapter.r)
        writer.add_float32("general.aurora.lora_alpha", adapter.alpha)
        writer.add_bool("general.aurora.lora_rslora", adapter.use_rslora)
        writer.add_string("general.aurora.lora_targets", ",".join(sorted(adapter.target_modules)))
        writer.add_string("general.aurora.merged_onto", "nf4-dequantized base" if merger.onto == "nf4"
                          else "16-bit base")
        provenance = adapter.extra.get("aurora") or {}
        if (provenance.get("data") or {}).get("sha256"):
            writer.add_string("general.aurora.train_data_sha256", provenance["data"]["sha256"])
            writer.add_uint32("general.aurora.train_examples", int(provenance["data"]["examples"]))
            writer.add_uint32("general.aurora.train_steps", int(provenance.get("steps", 0)))
        datasets = provenance.get("datasets") or []
        if datasets:
            writer.add_dataset_count(len(datasets))
            for i, d in enumerate(datasets):
                writer.add_dataset_name(i, str(d))
    add_tokenizer(writer, base.folder, adapter.folder if adapter else None)


def add_tokenizer(writer: gguf.GGUFWriter, base_folder: Path, adapter_folder: Path | None) -> None:
    model_file = base_folder / "tokenizer.model"
    if not model_file.is_file():
        raise FileNotFoundError(f"{model_file}: missing; the base checkpoint must carry its SentencePiece tokenizer")
    tokens, scores, types = sentencepiece_vocab(model_file)
    cfg_file = base_folder / "tokenizer_config.json"
    tok_cfg = json.loads(cfg_file.read_text(encoding="utf-8")) if cfg_file.is_file() else {}
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(tokens.index(b"<s>") if b"<s>" in tokens else 1)
    writer.add_eos_token_id(tokens.index(b"</s>") if b"</s>" in tokens else 2)
    writer.add_unk_token_id(types.index(TOKEN_UNKNOWN) if TOKEN_UNKNOWN in types else 0)
    writer.add_add_bos_token(bool(tok_cfg.get("add_bos_token", True)))
    writer.add_add_eos_token(bool(tok_cfg.get("add_eos_token", False)))
    writer.add_chat_template(chat_template_for(adapter_folder))


def write_planned(path: Path, arch: str, plan: list[PlannedTensor], add_kv: Callable[[gguf.GGUFWriter], None],
                  progress: bool = True, desc: str = "gguf") -> Path:
    """Write header then tensors one by one to `path` (via a temporary file renamed at the end)."""
    from tqdm import tqdm

    tmp = path.with_name(f".{path.name}.partial")
    writer = gguf.GGUFWriter(None, arch)
    add_kv(writer)
    for t in plan:
        writer.add_tensor_info(t.name, t.shape, np.dtype(np.float16 if t.ggml_type == GGMLQuantizationType.F16
                                                          else np.float32),
                               _nbytes(t.shape, t.ggml_type), raw_dtype=t.ggml_type)
    try:
        writer.write_header_to_file(tmp)
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        total = sum(_nbytes(t.shape, t.ggml_type) for t in plan)
        with tqdm(total=total, unit="B", unit_scale=True, desc=desc, disable=not progress) as bar:
            for t in plan:
                data = t.produce()
                writer.write_tensor_data(data)
                bar.update(data.nbytes)
                del data
        writer.close()
        os.replace(tmp, path)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_model_gguf(path: Path, merger: Merger, out_type: str, progress: bool = True) -> Path:
    """The merged model as one GGUF of a float type (f32, f16 or bf16)."""
    plan = plan_model(merger, out_type)
    return write_planned(Path(path), ARCH, plan, lambda w: add_metadata(w, merger, FLOAT_TYPES[out_type][1]),
                         progress, desc=f"gguf {out_type}")


def model_nbytes(merger: Merger, out_type: str) -> int:
    return sum(_nbytes(t.shape, t.ggml_type) for t in plan_model(merger, out_type))
