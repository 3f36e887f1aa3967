"""Write Mixtral (+ merged adapter) as a GGUF file in llama.cpp's layout, one tensor at a time.

llama.cpp runs Mixtral as architecture `llama` with experts: each block's per-expert w1/w3/w2 are
stacked on a new first axis into `ffn_gate_exps`/`ffn_up_exps`/`ffn_down_exps`, the router is
`ffn_gate_inp` (kept F32, like every 1-D norm), and q/k rows are permuted from Hugging Face's
rotate-half order to llama.cpp's interleaved order. Tensor names come from `aurora_core.mixtral`'s
table, which a test checks against gguf-py's own tables (`gguf.TENSOR_NAMES`, `get_tensor_name_map`).

The header (metadata and every tensor's name, shape and type) is written first, from shapes alone;
then each tensor is read, merged, converted and appended, so memory holds one tensor at a time.
The file is written under a temporary name and renamed at the end.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import gguf
import numpy as np
import torch
from gguf import GGMLQuantizationType, LlamaFileType

from aurora_core import __version__, chat_format, gguf_meta, mixtral
from aurora_core.errors import AuroraError
from aurora_core.gguf_meta import ARCH
from aurora_core.mixtral import TensorRef

from .checkpoint import Checkpoint, CheckpointError
from .file_types import FLOAT_TYPES
from .merge import Merger

EXPORTER = f"aurora-export {__version__}"
F16_MAX = 65504.0


class WeightError(AuroraError):
    """A merged weight that cannot be written faithfully (NaN/inf, or beyond the output type's range)."""

# SentencePiece piece kinds -> GGUF token types.
TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_UNUSED, TOKEN_BYTE = 1, 2, 3, 5, 6


def permute_rows(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """Hugging Face rotate-half q/k rows -> llama.cpp's interleaved rotary order."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


@dataclass
class PlannedTensor:
    name: str  # GGUF name
    shape: tuple[int, ...]  # numpy order (outermost first)
    ggml_type: GGMLQuantizationType
    produce: Callable[[], np.ndarray]  # float32/float16 array of `shape`, or raw bytes for BF16


def check_weight(name: str, arr: np.ndarray, ggml_type: GGMLQuantizationType) -> None:
    """Refuse NaN/inf, and values a 16-bit output type would turn into inf, naming the tensor."""
    if not np.isfinite(arr).all():
        raise WeightError(f"tensor {name} holds NaN or inf after the merge; the adapter or the base is corrupt")
    if ggml_type == GGMLQuantizationType.F16:
        peak = float(np.abs(arr).max()) if arr.size else 0.0
        if peak > F16_MAX:
            raise WeightError(f"tensor {name} has values up to {peak:.3g}, beyond F16's {F16_MAX:.0f}; "
                              "export bf16 or f32 instead")


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
    for ref in mixtral.tensors(s):
        if ref.xid is None:
            plan.append(_single(merger, ref, weight_type))
        elif ref.xid == 0:  # all experts of a block, stacked into one GGUF tensor
            plan.append(_stacked(merger, ref, weight_type))
    return plan


def _single(merger: Merger, ref: TensorRef, weight_type: GGMLQuantizationType) -> PlannedTensor:
    s = merger.base.shape
    shape = ref.shape(s)
    ggml_type = GGMLQuantizationType.F32 if ref.spec.f32 or len(shape) == 1 else weight_type
    n_head = getattr(s, ref.spec.rope_heads) if ref.spec.rope_heads else None

    def produce() -> np.ndarray:
        t = merger.tensor(ref.hf_name)
        if n_head is not None:
            t = permute_rows(t, n_head)
        check_weight(ref.gguf_name, t.numpy(), weight_type)
        return _convert(t.numpy(), ggml_type)

    return PlannedTensor(ref.gguf_name, tuple(shape), ggml_type, produce)


def _stacked(merger: Merger, ref: TensorRef, weight_type: GGMLQuantizationType) -> PlannedTensor:
    shape = (merger.base.shape.num_experts, *ref.shape(merger.base.shape))

    def produce() -> np.ndarray:
        out = np.empty(shape, dtype=np.float16 if weight_type == GGMLQuantizationType.F16 else np.float32)
        merger.fill_stacked(ref.bid, ref.spec.module, out,
                            check=lambda e, t: check_weight(f"{ref.gguf_name} (expert {e})", t.numpy(), weight_type))
        return _convert(out, weight_type)

    return PlannedTensor(ref.gguf_name, shape, weight_type, produce)


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


def chat_template_for(base_folder: Path, adapter_folder: Path | None) -> tuple[str, str]:
    """(template, where it came from): the one the adapter was trained with, else the base's own.

    An adapter written by aurora-train carries `chat_template.jinja`; an adapter made elsewhere gets
    Aurora's reference format (the format it was most likely trained on). Without an adapter the
    base checkpoint keeps its own `tokenizer_config.json` template.
    """
    if adapter_folder is not None:
        own = adapter_folder / "chat_template.jinja"
        if own.is_file():
            return own.read_text(encoding="utf-8"), str(own)
        return chat_format.CHAT_TEMPLATE, f"Aurora's built-in {chat_format.TEMPLATE_NAME}"
    cfg_file = base_folder / "tokenizer_config.json"
    template = _tokenizer_config(base_folder).get("chat_template")
    if isinstance(template, str) and template:
        return template, str(cfg_file)
    return chat_format.CHAT_TEMPLATE, f"Aurora's built-in {chat_format.TEMPLATE_NAME} (the base has none)"


def _tokenizer_config(base_folder: Path) -> dict:
    cfg_file = base_folder / "tokenizer_config.json"
    if not cfg_file.is_file():
        return {}
    cfg = mixtral.read_json(cfg_file, "re-download the base checkpoint", CheckpointError)
    return cfg if isinstance(cfg, dict) else {}


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
    writer.add_string(gguf_meta.EXPORTER, EXPORTER)
    if adapter is not None:
        writer.add_string(gguf_meta.ADAPTER, str(adapter.folder.name))
        writer.add_uint32(gguf_meta.LORA_RANK, adapter.r)
        writer.add_float32(gguf_meta.LORA_ALPHA, adapter.alpha)
        writer.add_bool(gguf_meta.LORA_RSLORA, adapter.use_rslora)
        writer.add_string(gguf_meta.LORA_TARGETS, ",".join(sorted(adapter.target_modules)))
        writer.add_string(gguf_meta.MERGED_ONTO, "nf4-dequantized base" if merger.onto == "nf4" else "16-bit base")
        provenance = adapter.provenance
        if provenance is not None:
            for key, value in provenance.gguf_fields().items():
                {str: writer.add_string, int: writer.add_uint32, float: writer.add_float32}[type(value)](key, value)
            writer.add_dataset_count(len(provenance.datasets))
            for i, d in enumerate(provenance.datasets):
                writer.add_dataset_name(i, str(d))
    add_tokenizer(writer, base.folder, adapter.folder if adapter else None)


def add_tokenizer(writer: gguf.GGUFWriter, base_folder: Path, adapter_folder: Path | None) -> None:
    model_file = base_folder / "tokenizer.model"
    if not model_file.is_file():
        raise CheckpointError(f"{model_file}: missing; the base checkpoint must carry its SentencePiece tokenizer")
    tokens, scores, types = sentencepiece_vocab(model_file)
    tok_cfg = _tokenizer_config(base_folder)
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
    template, source = chat_template_for(base_folder, adapter_folder)
    writer.add_chat_template(template)
    writer.add_string(gguf_meta.CHAT_TEMPLATE_SOURCE, source)


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


def model_parameters(merger: Merger) -> int:
    return sum(int(np.prod(t.shape)) for t in plan_model(merger, "f32"))
