"""aurora-export on the tiny kit: GGUF layout, logits against peft's own merge, LoRA GGUF, bad input."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch

from aurora_export.cli import main

AURORA_EXPORT = str(Path(sysconfig.get_path("scripts")) / "aurora-export")
PROMPTS = ["你好，请介绍一下你自己。", "中国的首都是哪里？", "Explain mixture-of-experts in one sentence.",
           "把下面的句子翻译成英文：我爱我的祖国。", "def add(a, b):\n    return a + b", "2024年3月15日，气温12°C。"]


def llama(path, **kw):
    from llama_cpp import GGML_TYPE_F32, Llama

    return Llama(str(path), n_ctx=256, logits_all=True, verbose=False, n_threads=2,
                 type_k=GGML_TYPE_F32, type_v=GGML_TYPE_F32, **kw)


def sp_of(kit):
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=str(kit / "tokenizer.model"))


def compare(llm, model, sp):
    """Top-1 agreement and max |diff| / logit range of llama.cpp vs a transformers model."""
    agree = total = 0
    worst = 0.0
    for prompt in PROMPTS:
        ids = [1] + sp.encode(prompt)
        llm.reset()
        llm.eval(ids)
        got = np.asarray(llm.scores[: len(ids)])
        with torch.no_grad():
            ref = model(torch.tensor([ids])).logits[0].numpy()
        agree += int((got.argmax(-1) == ref.argmax(-1)).sum())
        total += len(ids)
        worst = max(worst, float(np.abs(got - ref).max() / (ref.max() - ref.min())))
    return agree / total, worst


def test_f32_matches_peft_merge(exported, export_kit, peft_merged):
    top1, rel = compare(llama(exported["f32"]), peft_merged, sp_of(export_kit))
    assert top1 == 1.0
    assert rel <= 1e-3


def test_the_adapter_really_changes_the_model(exported, export_kit, tmp_path):
    """Guard for the test above: without the adapter the logits differ clearly."""
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(export_kit, dtype=torch.float32).eval()
    _, rel = compare(llama(exported["f32"]), base, sp_of(export_kit))
    assert rel > 1e-2


def test_f16_top1(exported, export_kit, peft_merged):
    top1, _ = compare(llama(exported["f16"]), peft_merged, sp_of(export_kit))
    assert top1 >= 0.99


@pytest.mark.parametrize("qtype", ["q8_0", "q6_k", "q5_k_m", "q4_k_m"])
def test_quantized_files_load_generate_and_are_smaller(exported, qtype):
    import gguf

    reader = gguf.GGUFReader(str(exported[qtype]))
    kinds = {t.name: t.tensor_type.name for t in reader.tensors}
    expected = {"q8_0": "Q8_0", "q6_k": "Q6_K", "q5_k_m": "Q5_K", "q4_k_m": "Q4_K"}[qtype]
    assert kinds["blk.0.ffn_gate_exps.weight"] == expected
    assert kinds["blk.0.ffn_gate_inp.weight"] == "F32" and kinds["blk.0.attn_norm.weight"] == "F32"
    assert exported[qtype].stat().st_size < 0.6 * exported["f16"].stat().st_size
    out = llama(exported[qtype]).create_completion("你好", max_tokens=8, temperature=0.0)
    assert out["usage"]["completion_tokens"] >= 1


@pytest.mark.slow  # runs in CI (./run test), not in ./run test --fast
def test_verify_prints_agreement_and_passes_f32(exported, export_kit, export_adapter):
    for t in ("f32", "q4_k_m"):
        result = subprocess.run([AURORA_EXPORT, "verify", str(exported[t]), "--base", str(export_kit),
                                 "--adapter", str(export_adapter)], capture_output=True, text=True, timeout=600)
        row = [line for line in result.stdout.splitlines() if line.startswith(f"| {t} |")]
        assert len(row) == 1, result.stdout + result.stderr
        top1 = float(row[0].split("|")[3])
        assert 0.0 < top1 <= 1.0
        if t == "f32":
            assert result.returncode == 0 and "PASS" in result.stdout and top1 == 1.0
    wrong = subprocess.run([AURORA_EXPORT, "verify", str(exported["f32"]), "--base", str(export_kit)],
                           capture_output=True, text=True, timeout=600)
    assert wrong.returncode == 1 and "FAIL" in wrong.stderr  # without the adapter the file does not match


def test_gguf_layout_and_metadata(exported, export_kit):
    import gguf

    reader = gguf.GGUFReader(str(exported["f16"]))
    field = lambda k: reader.fields[k].parts[reader.fields[k].data[0]]  # noqa: E731
    assert bytes(field("general.architecture")).decode() == "llama"
    assert int(field("llama.expert_count")[0]) == 4 and int(field("llama.expert_used_count")[0]) == 2
    assert float(field("llama.rope.freq_base")[0]) == 1e6
    assert bytes(field("tokenizer.ggml.model")).decode() == "llama"
    from aurora_core.chat_format import CHAT_TEMPLATE

    assert bytes(field("tokenizer.chat_template")).decode() == CHAT_TEMPLATE  # the adapter's own copy
    assert int(field("general.aurora.lora_rank")[0]) == 4
    shapes = {t.name: tuple(int(x) for x in t.shape) for t in reader.tensors}
    assert shapes["blk.1.ffn_gate_exps.weight"] == (256, 512, 4)  # GGUF order: (in, out, experts)
    assert shapes["blk.1.ffn_down_exps.weight"] == (512, 256, 4)
    assert shapes["blk.0.ffn_gate_inp.weight"] == (256, 4)
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types["blk.0.ffn_gate_inp.weight"] == "F32" and types["output_norm.weight"] == "F32"
    assert types["blk.0.attn_q.weight"] == "F16"


def test_inspect_shows_the_essentials(exported):
    result = subprocess.run([AURORA_EXPORT, "inspect", str(exported["q4_k_m"])], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "architecture:  llama, 2 blocks" in out and "experts 4 (used 2)" in out
    assert "blk.*.ffn_gate_exps.weight" in out and "Q4_K" in out
    assert "general.aurora.lora_rank = 4" in out and "[INST]" in out


def mixed_lines(n=240):
    from aurora_training.tiny import corpus_lines

    rng = random.Random(7)
    lines = corpus_lines()
    extra = ["😀🎉👍 表情", "价格 ￥128.50，折扣15%", "a  b   c    d", "\t缩进\t制表符", "x = [i**2 for i in range(10)]",
             "   leading spaces", "trailing spaces   ", "全角：，。？！；（）「」", "ABC123def456", "鱻龘靐齉爩"]
    out = []
    for i in range(n):
        a, b = rng.choice(lines), rng.choice(extra)
        out.append([a, b, a[: rng.randint(1, len(a))] + b, b + str(rng.randint(0, 10**6))][i % 4])
    return out


def test_llama_cpp_tokenizer_matches_sentencepiece(exported, export_kit):
    from llama_cpp import Llama

    sp = sp_of(export_kit)
    vocab = Llama(str(exported["f16"]), vocab_only=True, verbose=False)
    lines = mixed_lines()
    assert len(lines) >= 200
    bad = [x for x in lines if vocab.tokenize(x.encode(), add_bos=True, special=False) != [1] + sp.encode(x)]
    assert bad == []


def test_llama_cpp_python_one_string_path_differs_only_by_its_word_start(exported, export_kit):
    """llama-cpp-python's chat completion renders the GGUF's template as one string and lets llama.cpp
    tokenize it, which adds a word-start to the text after every control token (SentencePiece's legacy
    rule): `<s> [INST]` becomes `▁▁[INST]`. Every fragment is otherwise the reference's; the chat engine,
    which encodes fragment by fragment, has exactly the reference ids (test_reference_format.py)."""
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    from aurora_core.chat_format import Turn, encode_prompt

    llm = Llama(str(exported["f16"]), vocab_only=True, verbose=False)
    template = llm.metadata["tokenizer.chat_template"]
    turns = [Turn("user", "你好！"), Turn("assistant", "您好，有什么可以帮您？"), Turn("user", "What is 2+2?"),
             Turn("assistant", "2+2=4。"), Turn("user", "谢谢，再见。")]
    messages = [{"role": "system", "content": "你是一个乐于助人的助手。"}] + [
        {"role": t.role, "content": t.content} for t in turns]
    result = Jinja2ChatFormatter(template=template, eos_token="</s>", bos_token="<s>",
                                 add_generation_prompt=True)(messages=messages)
    theirs = llm.tokenize(result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True)
    ours = encode_prompt(sp_of(export_kit).encode, turns, "你是一个乐于助人的助手。", 1, 2)

    def fragments(ids):
        out, current = [], []
        for t in ids + [2]:
            if t in (1, 2):
                if current:
                    out.append(llm.detokenize(current).decode("utf-8"))
                current = []
            else:
                current.append(t)
        return out, [t for t in ids if t in (1, 2)]

    (their_text, their_controls), (our_text, our_controls) = fragments(theirs), fragments(ours)
    assert their_controls == our_controls == [1, 2, 2]
    assert their_text == [" " + x for x in our_text] and theirs != ours


def test_lora_gguf_at_load_time_equals_merged(exported, export_kit, export_adapter, tmp_path):
    base_gguf, lora_gguf = tmp_path / "base-f32.gguf", tmp_path / "lora.gguf"
    assert main(["gguf", "--base", str(export_kit), "--out", str(base_gguf), "--type", "f32", "--no-progress"]) == 0
    assert main(["lora", "--base", str(export_kit), "--adapter", str(export_adapter), "--out", str(lora_gguf),
                 "--no-progress"]) == 0
    sp = sp_of(export_kit)
    with_lora, merged = llama(base_gguf, lora_path=str(lora_gguf)), llama(exported["f32"])
    for prompt in PROMPTS:
        ids = [1] + sp.encode(prompt)
        with_lora.reset(), merged.reset()
        with_lora.eval(ids), merged.eval(ids)
        a, b = np.asarray(with_lora.scores[: len(ids)]), np.asarray(merged.scores[: len(ids)])
        assert np.abs(a - b).max() <= 1e-3 * (b.max() - b.min())


def fuse(kit: Path, out: Path) -> Path:
    """Rewrite a checkpoint in transformers-5's fused expert layout."""
    from safetensors.torch import load_file, save_file

    out.mkdir()
    for f in kit.iterdir():
        if not f.name.startswith("model"):
            shutil.copy2(f, out / f.name)
    state = {}
    for shard in sorted(kit.glob("model-*.safetensors")):
        state.update(load_file(str(shard)))
    cfg = json.loads((kit / "config.json").read_text())
    fused = {}
    for n in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{n}."
        experts = range(cfg["num_local_experts"])
        w = {k: [state.pop(p + f"block_sparse_moe.experts.{e}.{k}.weight") for e in experts] for k in ("w1", "w2", "w3")}
        fused[p + "mlp.experts.gate_up_proj"] = torch.stack([torch.cat([a, b]) for a, b in zip(w["w1"], w["w3"])])
        fused[p + "mlp.experts.down_proj"] = torch.stack(w["w2"])
        fused[p + "mlp.gate.weight"] = state.pop(p + "block_sparse_moe.gate.weight")
    state.update(fused)
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out


def test_fused_transformers5_layout_gives_the_same_gguf(export_kit, export_adapter, exported, tmp_path):
    fused = fuse(export_kit, tmp_path / "fused")
    out = tmp_path / "fused-f16.gguf"
    assert main(["gguf", "--base", str(fused), "--adapter", str(export_adapter), "--out", str(out), "--type", "f16",
                 "--no-progress"]) == 0
    import gguf

    a = {t.name: np.asarray(t.data) for t in gguf.GGUFReader(str(out)).tensors}
    b = {t.name: np.asarray(t.data) for t in gguf.GGUFReader(str(exported["f16"])).tensors}
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_merge_writes_a_loadable_checkpoint(export_kit, export_adapter, peft_merged, tmp_path):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "merged"
    assert main(["merge", "--base", str(export_kit), "--adapter", str(export_adapter), "--out", str(out),
                 "--no-progress"]) == 0
    assert (out / "tokenizer.model").is_file() and (out / "model.safetensors.index.json").is_file()
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    ref = peft_merged.state_dict()
    for name, t in model.state_dict().items():
        assert torch.equal(t, ref[name].to(torch.bfloat16).float()), name


def test_merge_onto_nf4_rounds_only_the_qlora_weights(export_kit, export_adapter):
    from aurora_export.checkpoint import Checkpoint
    from aurora_export.lora import load_adapter, nf4_roundtrip
    from aurora_export.merge import Merger

    base, adapter = Checkpoint(export_kit), load_adapter(export_adapter)
    plain, nf4 = Merger(base, adapter, "base"), Merger(base, adapter, "nf4")
    q = "model.layers.0.self_attn.q_proj.weight"
    expected = nf4_roundtrip(base.tensor(q)) + adapter.delta(q)
    assert torch.equal(nf4.tensor(q), expected)
    assert not torch.equal(nf4.tensor(q), plain.tensor(q))
    router = "model.layers.0.block_sparse_moe.gate.weight"
    assert torch.equal(nf4.tensor(router), plain.tensor(router))


def test_rslora_scale(export_kit, tmp_path):
    from conftest import make_peft_adapter

    from aurora_export.lora import load_adapter

    adapter = load_adapter(make_peft_adapter(export_kit, tmp_path / "rs", r=4, alpha=8, use_rslora=True))
    assert adapter.scale == 8 / 2.0
    name = next(iter(adapter.pairs))
    a, b = adapter.pairs[name]
    assert torch.allclose(adapter.delta(name), 4.0 * (b.float() @ a.float()))


# ---------------------------------------------------------------- bad input


def run_export(*argv):
    return subprocess.run([AURORA_EXPORT, *argv], capture_output=True, text=True, timeout=300)


def copy_kit(kit, dst):
    shutil.copytree(kit, dst)
    return dst


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aurora-export: error: "), result.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


def test_truncated_shard(export_kit, tmp_path):
    kit = copy_kit(export_kit, tmp_path / "kit")
    shard = kit / "model-00002-of-00002.safetensors"
    shard.write_bytes(shard.read_bytes()[:-1000])
    out = tmp_path / "o.gguf"
    assert_one_line_error(run_export("gguf", "--base", str(kit), "--out", str(out), "--type", "f16"),
                          str(shard), "truncated", "re-download")
    assert list(tmp_path.glob("*.gguf")) == [] and list(tmp_path.glob(".*partial")) == []


def test_shard_missing_from_index(export_kit, tmp_path):
    kit = copy_kit(export_kit, tmp_path / "kit")
    (kit / "model-00001-of-00002.safetensors").unlink()
    assert_one_line_error(run_export("gguf", "--base", str(kit), "--out", str(tmp_path / "o.gguf")),
                          "model-00001-of-00002.safetensors", "missing")


def test_adapter_for_another_base(export_kit, tiny_base, tmp_path):
    from conftest import make_peft_adapter

    other = make_peft_adapter(tiny_base, tmp_path / "other-adapter")
    result = run_export("gguf", "--base", str(export_kit), "--adapter", str(other), "--out", str(tmp_path / "o.gguf"))
    assert_one_line_error(result, "model.layers.0.self_attn.q_proj.weight", "(256, 256)", "another base")
    assert "A (4, 64)" in result.stderr


def test_non_mixtral_config(export_kit, tmp_path):
    kit = copy_kit(export_kit, tmp_path / "kit")
    cfg = json.loads((kit / "config.json").read_text())
    cfg.update(model_type="llama", architectures=["LlamaForCausalLM"])
    (kit / "config.json").write_text(json.dumps(cfg))
    assert_one_line_error(run_export("gguf", "--base", str(kit), "--out", str(tmp_path / "o.gguf")),
                          "config.json", "'llama'", "is not Mixtral")


def test_existing_output_needs_force(export_kit, tmp_path):
    out = tmp_path / "o.gguf"
    out.write_bytes(b"keep me")
    assert_one_line_error(run_export("gguf", "--base", str(export_kit), "--out", str(out), "--type", "f16"),
                          str(out), "--force")
    assert out.read_bytes() == b"keep me"


def test_unwritable_output_folder(export_kit):
    result = run_export("gguf", "--base", str(export_kit), "--out", "/proc/aurora-test.gguf", "--type", "f16")
    assert_one_line_error(result, "/proc", "cannot write there")


def test_too_full_disk_is_refused_before_work(export_kit, tmp_path, monkeypatch, capsys):
    import shutil as shutil_module
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil_module, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    out = tmp_path / "o.gguf"
    assert main(["gguf", "--base", str(export_kit), "--out", str(out), "--type", "f16,q4_k_m"]) == 2
    err = capsys.readouterr().err
    assert "needs 0.01 GiB free" in err and "has 0.00 GiB" in err
    assert list(tmp_path.iterdir()) == []


def test_interrupted_write_leaves_no_file(export_kit, tmp_path, monkeypatch):
    from aurora_export import gguf_model

    calls = {"n": 0}
    real = gguf_model._convert

    def failing(arr, t):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(arr, t)

    monkeypatch.setattr(gguf_model, "_convert", failing)
    assert main(["gguf", "--base", str(export_kit), "--out", str(tmp_path / "o.gguf"), "--type", "f16",
                 "--no-progress"]) == 130
    assert list(tmp_path.iterdir()) == []


def test_unknown_type_lists_the_choices(export_kit, tmp_path):
    assert_one_line_error(run_export("gguf", "--base", str(export_kit), "--out", str(tmp_path / "o.gguf"),
                                     "--type", "f16,q4_k_z"), "q4_k_z", "q4_k_m")


def test_without_an_adapter_the_base_keeps_its_own_template(export_kit, tmp_path):
    """aurora-export gguf without --adapter writes the base's tokenizer_config.json template and says so."""
    import json
    import shutil

    from aurora_core import gguf_meta

    base = shutil.copytree(export_kit, tmp_path / "base")
    cfg = json.loads((base / "tokenizer_config.json").read_text())
    cfg["chat_template"] = "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}"
    (base / "tokenizer_config.json").write_text(json.dumps(cfg))
    out = tmp_path / "base.gguf"
    result = subprocess.run([AURORA_EXPORT, "gguf", "--base", str(base), "--out", str(out), "--type", "f32",
                             "--no-progress"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"chat template: {base / 'tokenizer_config.json'}" in result.stdout
    meta = gguf_meta.read_metadata(out)
    assert meta[gguf_meta.CHAT_TEMPLATE] == cfg["chat_template"]
    assert gguf_meta.LORA_RANK not in meta


def test_export_gguf_is_the_library_entry(export_kit, export_adapter, tmp_path):
    from aurora_export.pipeline import ExportConfig, export_gguf

    result = export_gguf(ExportConfig(export_kit, tmp_path / "m.gguf", adapter=export_adapter,
                                      types=("f16", "q8_0"), progress=False))
    assert result.files == {"f16": tmp_path / "m-f16.gguf", "q8_0": tmp_path / "m-q8_0.gguf"}
    assert all(p.is_file() for p in result.files.values())
    assert result.chat_template_source.startswith("Aurora's built-in")  # a peft adapter carries no template
    import gguf

    from aurora_core import gguf_meta

    assert gguf_meta.read_metadata(result.files["q8_0"])[gguf_meta.CHAT_TEMPLATE_SOURCE] == result.chat_template_source
    assert result.parameters == sum(int(t.n_elements) for t in gguf.GGUFReader(str(result.files["f16"])).tensors)


@pytest.mark.parametrize("change, message", [
    (dict(types="q4_k_m,q9"), "--type 'q4_k_m,q9': unknown type q9"),
    (dict(types="iq2_xxs"), "--type iq2_xxs needs an importance matrix"),
    (dict(merge_onto="fp8"), "--merge-onto 'fp8': choose base or nf4"),
    (dict(threads=0), "--threads 0: must be at least 1"),
])
def test_export_config_refuses_a_wrong_value_when_made(change, message):
    from aurora_export.pipeline import ExportConfig, ExportError

    with pytest.raises(ExportError, match=re.escape(message)):
        ExportConfig("base", "out.gguf", **change)


def test_kl_reference_is_chosen_by_the_header_not_the_name(exported, tmp_path):
    """`aurora-bf16.gguf` also ends in "f16.gguf"; the reference is the file whose header says F16."""
    from aurora_export.verify import kl_reference

    bf16, f16 = tmp_path / "aurora-bf16.gguf", tmp_path / "aurora-f16.gguf"
    bf16.symlink_to(exported["bf16"])
    f16.symlink_to(exported["f16"])
    assert kl_reference([bf16, f16]) == f16
    misnamed = tmp_path / "model-f16.gguf"  # a BF16 file under an F16 name
    misnamed.symlink_to(exported["bf16"])
    real = tmp_path / "model.gguf"
    real.symlink_to(exported["f16"])
    assert kl_reference([misnamed, real]) == real
    assert kl_reference([exported["q8_0"], exported["f32"]]) == exported["f32"]  # no F16: the most precise float
    assert kl_reference([exported["q8_0"], exported["q4_k_m"]]) == exported["q8_0"]
