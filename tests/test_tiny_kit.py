"""The tiny model kit writes the real Mixtral-8x7B-Instruct layout, loadable by transformers."""

from __future__ import annotations

import hashlib
import json

import pytest

from aurora_core.errors import AuroraError
from aurora_training.tiny import TinyBaseConfig, shard_plan, write_tiny_base

SAMPLES = [
    "你好，世界！今天是2024年3月15日，气温12°C。",
    "Hello, world! The answer is 42, not 4 2.",
    "表情符号😀🎉和英文 mixed text 混合在一起。",
    "全角标点：，。？！；（）「」《》保持原样",
    "def f(x):\n    return x * 2  # code with  spaces\tand tabs",
    "罕见字：鱻龘靐齉爩 and digits 0123456789",
]


def expected_tensor_names(layers: int, experts: int) -> set[str]:
    names = {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"}
    for n in range(layers):
        p = f"model.layers.{n}."
        names |= {p + "input_layernorm.weight", p + "post_attention_layernorm.weight",
                  p + "block_sparse_moe.gate.weight"}
        names |= {p + f"self_attn.{x}_proj.weight" for x in "qkvo"}
        names |= {p + f"block_sparse_moe.experts.{e}.{w}.weight" for e in range(experts) for w in ("w1", "w2", "w3")}
    return names


def test_loads_with_auto_classes(tiny_base):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_base, dtype=torch.float32)
    assert type(model).__name__ == "MixtralForCausalLM"
    assert model.config.num_local_experts == 4 and model.config.num_experts_per_tok == 2
    tok = AutoTokenizer.from_pretrained(tiny_base)
    ids = tok("你好，世界", return_tensors="pt").input_ids
    assert ids[0, 0].item() == tok.bos_token_id == 1
    logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], model.config.vocab_size)
    assert torch.isfinite(logits).all()


def test_tensor_names_and_shards_match_the_mixtral_layout(tiny_base):
    from safetensors import safe_open

    index = json.loads((tiny_base / "model.safetensors.index.json").read_text())
    weight_map = index["weight_map"]
    assert set(weight_map) == expected_tensor_names(layers=2, experts=4)
    shards = sorted(set(weight_map.values()))
    assert shards == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    total = 0
    for shard in shards:
        with safe_open(str(tiny_base / shard), "pt") as f:
            keys = set(f.keys())
            assert keys == {k for k, v in weight_map.items() if v == shard}
            for k in keys:
                t = f.get_tensor(k)
                assert str(t.dtype) == "torch.bfloat16"
                total += t.numel() * t.element_size()
    assert index["metadata"]["total_size"] == total
    w1 = "model.layers.0.block_sparse_moe.experts.3.w1.weight"
    with safe_open(str(tiny_base / weight_map[w1]), "pt") as f:
        assert tuple(f.get_slice(w1).get_shape()) == (128, 64)  # (intermediate, hidden), as in nn.Linear
    config = json.loads((tiny_base / "config.json").read_text())
    assert config["architectures"] == ["MixtralForCausalLM"] and config["model_type"] == "mixtral"
    assert config["rope_theta"] == 1e6


@pytest.mark.parametrize("text", SAMPLES)
def test_tokenizer_round_trips(tiny_base, text):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_base)
    ids = tok.encode(text)
    assert tok.decode(ids, skip_special_tokens=True) == text


def test_tokenizer_has_mixtral_settings(tiny_base):
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    proto.ParseFromString((tiny_base / "tokenizer.model").read_bytes())
    assert proto.trainer_spec.model_type == pb.TrainerSpec.BPE
    assert proto.trainer_spec.byte_fallback and proto.trainer_spec.split_digits
    assert proto.normalizer_spec.name == "identity"
    assert proto.normalizer_spec.add_dummy_prefix and not proto.normalizer_spec.remove_extra_whitespaces
    sp = spm.SentencePieceProcessor(model_file=str(tiny_base / "tokenizer.model"))
    assert [sp.id_to_piece(i) for i in range(3)] == ["<unk>", "<s>", "</s>"]
    assert sp.piece_to_id("<0xE4>") > 2  # byte-fallback pieces exist
    # No NFKC: full-width Chinese punctuation is not turned into ASCII before encoding.
    pieces = "".join(sp.encode("你好，世界！", out_type=str))
    assert "，" in pieces and "！" in pieces
    # split_digits: no text piece holds two digits (byte pieces like <0x30> are names, not text).
    text_pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if not sp.is_byte(i)]
    assert any(p.isdigit() for p in text_pieces)
    assert all(sum(ch.isdigit() for ch in p) <= 1 for p in text_pieces)


def test_chat_template_is_in_tokenizer_config(tiny_base):
    from transformers import AutoTokenizer

    from aurora_core.chat_format import CHAT_TEMPLATE

    tok = AutoTokenizer.from_pretrained(tiny_base)
    assert tok.chat_template == CHAT_TEMPLATE
    text = tok.apply_chat_template(
        [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "您好！"}], tokenize=False)
    assert text == "<s> [INST] 你好 [/INST] 您好！</s>"


def _digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tiny_base, tmp_path):
    again = write_tiny_base(tmp_path / "again", TinyBaseConfig())
    assert _digests(again) == _digests(tiny_base)
    other = _digests(write_tiny_base(tmp_path / "other", TinyBaseConfig(seed=1)))
    same = _digests(tiny_base)
    assert other["model-00001-of-00002.safetensors"] != same["model-00001-of-00002.safetensors"]
    assert other["tokenizer.model"] == same["tokenizer.model"]


def test_refuses_to_overwrite_without_force(tiny_base, tmp_path):
    target = tmp_path / "kept"
    target.mkdir()
    (target / "precious.txt").write_text("user data")
    with pytest.raises(AuroraError, match="--force"):
        write_tiny_base(target, TinyBaseConfig())
    assert (target / "precious.txt").read_text() == "user data"
    assert [p.name for p in tmp_path.iterdir()] == ["kept"]  # no temporary folder left behind


def test_bad_shapes_are_rejected_with_the_flag_name():
    with pytest.raises(ValueError, match="--top-k 5 cannot exceed --experts 4"):
        TinyBaseConfig(top_k=5)
    with pytest.raises(ValueError, match="--shards"):
        TinyBaseConfig(shards=1)
    with pytest.raises(ValueError, match="divisible by --heads"):
        TinyBaseConfig(hidden=65)


def test_shard_plan_balances_and_never_leaves_a_shard_empty():
    sizes = {f"t{i}": 10 for i in range(10)}
    groups = shard_plan(sizes, 3)
    assert sum(len(g) for g in groups) == 10 and all(groups)
    assert [n for g in groups for n in g] == list(sizes)  # order kept
    assert all(shard_plan({"big": 100, "small": 1}, 2))
