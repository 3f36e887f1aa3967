"""Compare llama.cpp's logits on a GGUF with the Hugging Face model's on the same token ids.

The reference is `MixtralForCausalLM` with the merged weights (base + adapter, via `Merger`), in
float32. For each prompt both models see the same ids (the SentencePiece tokenizer's, with BOS);
the report gives top-1 agreement over every position, the largest and mean absolute logit
difference (also relative to the reference's logit range) and KL(reference ‖ GGUF). A tokenizer
parity check compares llama.cpp's tokenization with SentencePiece's on the prompts.
The Hugging Face reference holds the whole model in float32: use it on models that fit in RAM.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aurora_core.scoring import kl_divergence

PROMPTS = [
    "你好，请介绍一下你自己。",
    "中国的首都是哪里？请用一句话回答。",
    "把下面的句子翻译成英文：我爱我的祖国。",
    "Explain mixture-of-experts models in two sentences.",
    "Write a Python function that returns the sum of 1 to 100.",
    "春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。",
]

# Thresholds per GGUF type: least top-1 agreement, and largest |difference| / logit range.
THRESHOLDS = {"f32": (1.0, 1e-3), "f16": (0.99, None), "bf16": (0.99, None)}
QUANT_MIN_TOP1 = 0.5  # quantized files on a tiny random model: agreement is printed, this is a sanity floor


@dataclass
class VerifyReport:
    file_type: str
    positions: int = 0
    top1: float = 0.0
    max_abs: float = 0.0
    mean_abs: float = 0.0
    logit_range: float = 0.0
    kl: float = 0.0
    tokenizer_mismatches: list[str] = field(default_factory=list)

    @property
    def rel_max(self) -> float:
        return self.max_abs / self.logit_range if self.logit_range else float("inf")

    def failures(self) -> list[str]:
        top1_min, rel_max = THRESHOLDS.get(self.file_type, (QUANT_MIN_TOP1, None))
        out = []
        if self.top1 < top1_min:
            out.append(f"top-1 agreement {self.top1:.4f} < {top1_min}")
        if rel_max is not None and self.rel_max > rel_max:
            out.append(f"max |diff| / range {self.rel_max:.2e} > {rel_max:.0e}")
        if self.tokenizer_mismatches:
            out.append(f"tokenizer differs on {len(self.tokenizer_mismatches)} prompt(s)")
        return out

    def table(self) -> str:
        return "\n".join([
            "| type | positions | top-1 | max abs | mean abs | max/range | KL | tokenizer |",
            "|---|---:|---:|---:|---:|---:|---:|---|",
            f"| {self.file_type} | {self.positions} | {self.top1:.4f} | {self.max_abs:.3e} | {self.mean_abs:.3e} "
            f"| {self.rel_max:.2e} | {self.kl:.2e} | "
            f"{'same' if not self.tokenizer_mismatches else f'{len(self.tokenizer_mismatches)} differ'} |",
        ])


def reference_model(base_dir: Path, adapter_dir: Path | None, onto: str = "base"):
    """MixtralForCausalLM holding the merged weights in float32."""
    import torch
    from transformers import MixtralConfig, MixtralForCausalLM

    from .merge import Merger

    merger = Merger.open(base_dir, adapter_dir, onto)
    base = merger.base
    config = MixtralConfig(**{k: v for k, v in base.config.items() if k not in ("architectures",)})
    model = MixtralForCausalLM(config).float().eval()
    with torch.no_grad():
        params = dict(model.named_parameters())
        for name in base.original_names():
            params[name].copy_(merger.tensor(name))
    return model


def file_type_of(path: Path) -> str:
    from aurora_core import gguf_meta
    from aurora_core.gguf_header import read_header

    return gguf_meta.file_type_name(read_header(path).get(gguf_meta.GENERAL_FILE_TYPE)).lower()


REFERENCE_ORDER = ("f16", "f32", "bf16")  # the KL reference: the F16 export, else the most precise float file


def kl_reference(paths: list[Path]) -> Path:
    """The file the others are compared with, chosen by the file type in its header (never by its name:
    `aurora-bf16.gguf` ends in "f16.gguf" too); the first file when none is a float export."""
    types = {path: file_type_of(path) for path in paths}
    for wanted in REFERENCE_ORDER:
        for path in paths:
            if types[path] == wanted:
                return path
    return paths[0]


def verify(gguf_path: Path, base_dir: Path, adapter_dir: Path | None = None, prompts: list[str] | None = None,
           onto: str = "base", threads: int | None = None) -> VerifyReport:
    import sentencepiece as spm
    import torch
    from llama_cpp import GGML_TYPE_F32, Llama

    prompts = prompts or PROMPTS
    sp = spm.SentencePieceProcessor(model_file=str(Path(base_dir) / "tokenizer.model"))
    report = VerifyReport(file_type_of(gguf_path))
    ids_list = [[sp.bos_id()] + sp.encode(p) for p in prompts]
    n_ctx = max(len(x) for x in ids_list) + 8
    # An F32 KV cache, so that the comparison measures the weights and not llama.cpp's F16 cache.
    llm = Llama(str(gguf_path), n_ctx=n_ctx, logits_all=True, verbose=False, n_threads=threads,
                type_k=GGML_TYPE_F32, type_v=GGML_TYPE_F32)
    model = reference_model(Path(base_dir), adapter_dir, onto)
    diffs, agree, kls, lo, hi = [], 0, [], np.inf, -np.inf
    for prompt, ids in zip(prompts, ids_list):
        if llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=False) != ids:
            report.tokenizer_mismatches.append(prompt)
        llm.reset()
        llm.eval(ids)
        got = np.asarray(llm.scores[: len(ids)], dtype=np.float64)
        with torch.no_grad():
            ref = model(torch.tensor([ids])).logits[0].double().numpy()
        diffs.append(np.abs(got - ref).ravel())
        agree += int((got.argmax(-1) == ref.argmax(-1)).sum())
        lo, hi = min(lo, ref.min()), max(hi, ref.max())
        kls.append(kl_divergence(ref, got))
        report.positions += len(ids)
    d = np.concatenate(diffs)
    report.top1 = agree / report.positions
    report.max_abs, report.mean_abs = float(d.max()), float(d.mean())
    report.logit_range = float(hi - lo)
    report.kl = float(np.concatenate(kls).mean())
    return report


# ---------------------------------------------------------------- quality of each exported type


@dataclass
class QualityRow:
    file: Path
    file_type: str
    perplexity: float
    kl_vs_reference: float
    top1_vs_reference: float


def token_logits(path: Path, chunks: list[list[int]], threads: int | None = None) -> list[np.ndarray]:
    """llama.cpp's logits at every position of each chunk (F32 KV cache)."""
    from llama_cpp import GGML_TYPE_F32

    from aurora_core.llama_runtime import load_llama

    n_ctx = max(len(c) for c in chunks) + 8
    llm = load_llama(path, n_ctx=n_ctx, logits_all=True, n_threads=threads, type_k=GGML_TYPE_F32,
                     type_v=GGML_TYPE_F32)
    try:
        out = []
        for ids in chunks:
            llm.reset()
            llm.eval(ids)
            out.append(np.array(llm.scores[: len(ids)], dtype=np.float64))
        return out
    finally:
        llm.close()


def quality(files: list[Path], reference: Path, text: str, tokenizer: Path, chunk_size: int = 128,
            threads: int | None = None) -> list[QualityRow]:
    """Perplexity of each file on `text` and the mean KL divergence of its next-token distribution from the
    reference's (the F16 export), position by position."""
    import sentencepiece as spm

    from aurora_core.scoring import kl_divergence, log_softmax

    from .imatrix import token_chunks

    sp = spm.SentencePieceProcessor(model_file=str(tokenizer))
    ids = sp.encode(text)
    chunks = token_chunks(ids, sp.bos_id(), chunk_size, whole=False)
    ref = token_logits(reference, chunks, threads)
    rows = []
    for path in files:
        got = ref if path == reference else token_logits(path, chunks, threads)
        nll, kl, agree, n = 0.0, 0.0, 0, 0
        for logits, rlogits, chunk in zip(got, ref, chunks):
            lp = log_softmax(logits[:-1])
            nll -= sum(lp[i, chunk[i + 1]] for i in range(len(chunk) - 1))
            kl += float(kl_divergence(rlogits, logits).sum())
            agree += int((logits.argmax(-1) == rlogits.argmax(-1)).sum())
            n += len(chunk) - 1
        positions = sum(len(c) for c in chunks)
        rows.append(QualityRow(path, file_type_of(path), float(np.exp(nll / n)), kl / positions, agree / positions))
    return rows


def quality_table(rows: list[QualityRow], reference: Path, text_name: str) -> str:
    lines = [f"quality on {text_name} (held out), against {reference.name}:", "",
             "| file | type | perplexity | KL vs reference | top-1 vs reference |", "|---|---|---:|---:|---:|"]
    lines += [f"| {r.file.name} | {r.file_type} | {r.perplexity:.4f} | {r.kl_vs_reference:.2e} | "
              f"{r.top1_vs_reference:.4f} |" for r in rows]
    return "\n".join(lines)
