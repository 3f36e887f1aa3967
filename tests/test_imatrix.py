"""The importance matrix: llama.cpp's quantizer takes it (and refuses i-quants without one), experts count the
tokens the Hugging Face router sends them, and the same matrix gives the same bytes."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from aurora_export.imatrix import ImatrixError, build, chunks_of, read, shipped_text, text_of


@pytest.fixture(scope="module")
def imatrix_file(export_kit, export_adapter, tmp_path_factory):
    out = tmp_path_factory.mktemp("im") / "imatrix.gguf"
    return build(export_kit, export_adapter, [shipped_text("zh")], out, chunk_size=128, max_chunks=6, progress=False)


def test_file_layout(imatrix_file):
    from aurora_core.gguf_header import read_header

    header = read_header(imatrix_file)
    assert header.get("general.type") == "imatrix"
    assert header.get("imatrix.chunk_count") == 6 and header.get("imatrix.chunk_size") == 128
    assert header.arrays["imatrix.datasets"][1] == 1
    shapes = {t.name: t.shape for t in header.tensors}  # GGUF order: (n_in, n_mat)
    assert shapes["blk.0.attn_q.weight.in_sum2"] == (256, 1) and shapes["blk.0.attn_q.weight.counts"] == (1, 1)
    assert shapes["blk.1.ffn_gate_exps.weight.in_sum2"] == (256, 4)
    assert shapes["blk.1.ffn_down_exps.weight.in_sum2"] == (512, 4)
    data = read(imatrix_file)
    np.testing.assert_allclose(data.sums["blk.0.attn_q.weight"], data.sums["blk.0.attn_k.weight"])  # one input
    assert data.counts["blk.0.attn_q.weight"][0] == 6 * 128


def test_expert_counts_equal_the_routers_choices(imatrix_file, export_kit, export_adapter):
    """Tokens per expert, from the Hugging Face forward pass of the merged model (its own router logits)."""
    import sentencepiece as spm
    import torch

    from aurora_export.verify import reference_model

    model = reference_model(Path(export_kit), Path(export_adapter))
    sp = spm.SentencePieceProcessor(model_file=str(Path(export_kit) / "tokenizer.model"))
    chunks = chunks_of([text_of(shipped_text("zh"))], sp, 128, 6)
    routed = np.zeros((model.config.num_hidden_layers, model.config.num_local_experts))
    with torch.no_grad():
        for chunk in chunks:
            out = model(torch.tensor([chunk]), output_router_logits=True)
            for layer, logits in enumerate(out.router_logits):
                top = torch.topk(logits, model.config.num_experts_per_tok, dim=-1).indices
                routed[layer] += np.bincount(top.flatten().numpy(), minlength=routed.shape[1])
    data = read(imatrix_file)
    for layer in range(routed.shape[0]):
        for kind in ("ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"):
            np.testing.assert_array_equal(data.counts[f"blk.{layer}.{kind}.weight"], routed[layer])
    assert routed.sum() == 6 * 128 * 2 * routed.shape[0]


QUANTIZE = r"""
import ctypes, sys, llama_cpp
p = llama_cpp.llama_model_quantize_default_params()
p.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_IQ2_XXS
print(llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), ctypes.byref(p)))
"""


def test_llama_cpp_quantizes_i_quants_with_it_and_refuses_without(exported, imatrix_file, tmp_path):
    from aurora_export.quantize import quantize

    src = exported["f16"]
    without = subprocess.run([sys.executable, "-c", QUANTIZE, str(src), str(tmp_path / "no.gguf")],
                             capture_output=True, text=True, timeout=300)
    assert without.stdout.strip() != "0"  # llama.cpp's own refusal (no importance matrix)
    data = read(imatrix_file)
    a = quantize(src, tmp_path / "a.gguf", "iq2_xxs", progress=False, imatrix=data)
    b = quantize(src, tmp_path / "b.gguf", "iq2_xxs", progress=False, imatrix=data)
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    assert digest(a) == digest(b)
    from aurora_core.model_check import check_gguf

    assert check_gguf(a).n_params == check_gguf(src).n_params
    plain = quantize(src, tmp_path / "plain.gguf", "q2_k", progress=False)
    guided = quantize(src, tmp_path / "guided.gguf", "q2_k", progress=False, imatrix=data)
    assert digest(plain) != digest(guided)  # the matrix changed the rounding


def test_not_an_imatrix_is_one_line(exported):
    with pytest.raises(ImatrixError, match="not an importance matrix"):
        read(exported["f16"])


def test_the_command(export_kit, tmp_path):
    from aurora_export.cli import main

    out = tmp_path / "i.gguf"
    assert main(["imatrix", "--base", str(export_kit), "--text", "en", "--out", str(out), "--chunk-size", "64",
                 "--chunks", "2", "--no-progress"]) == 0
    assert read(out).chunk_count == 2 and read(out).chunk_size == 64
    assert main(["gguf", "--base", str(export_kit), "--out", str(tmp_path / "x.gguf"), "--type", "iq3_xxs",
                 "--no-progress"]) == 2  # i-quants need --imatrix


@pytest.fixture(scope="module")
def llama_quantize():
    """llama.cpp's own llama-quantize, built once from the llama.cpp llama-cpp-python 0.3.36 vendors (cached)."""
    out = Path.home() / ".cache" / "aurora" / "llama-tools"
    script = Path(__file__).parent / "tools" / "llama_tools.sh"
    subprocess.run([str(script), str(out), sys.executable], check=True, capture_output=True, timeout=3600)
    return out / "bin" / "llama-quantize"


def test_llama_cpps_own_imatrix_loader_reads_our_file(llama_quantize, exported, imatrix_file, tmp_path):
    """llama-quantize --imatrix: llama.cpp's file loader (tools/quantize: load_imatrix) takes the file."""
    src = exported["f16"]
    ok = subprocess.run([str(llama_quantize), "--imatrix", str(imatrix_file), str(src), str(tmp_path / "iq2.gguf"),
                         "IQ2_XXS", "2"], capture_output=True, text=True, timeout=600)
    assert ok.returncode == 0, ok.stdout[-2000:] + ok.stderr[-2000:]
    log = ok.stdout + ok.stderr
    assert f"loaded {len(read(imatrix_file).sums)} importance matrix entries from {imatrix_file}" in log
    refused = subprocess.run([str(llama_quantize), str(src), str(tmp_path / "no.gguf"), "IQ2_XXS", "2"],
                             capture_output=True, text=True, timeout=600)
    assert refused.returncode != 0  # llama.cpp's tool, too, refuses an i-quant without a matrix
