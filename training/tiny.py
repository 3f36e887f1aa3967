"""The tiny model kit: a complete Mixtral-8x7B-Instruct-shaped checkpoint, small enough for tests.

`aurora-train tiny-base --out DIR` writes the same files, names and sharding as the real release
(config.json, model-0000K-of-0000N.safetensors + model.safetensors.index.json, tokenizer.model,
tokenizer_config.json with the chat template), so every loader in this project is exercised on
the real on-disk layout. The tokenizer is a SentencePiece BPE model trained on the bilingual text
in `assets/corpus.txt` with the real Mixtral tokenizer's settings. Same seed, same bytes.
"""

from __future__ import annotations

import io
import re
import json
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from aurora_core.chat_format import BOS, CHAT_TEMPLATE, EOS, UNK
from aurora_core.files import new_folder
from aurora_core.mixtral import MixtralShape


@dataclass
class TinyBaseConfig:
    """Shape of the tiny Mixtral. Defaults: 2 layers, hidden 64, 4 experts, top-2."""

    layers: int = 2
    """Number of decoder blocks."""
    hidden: int = 64
    """Hidden size (embedding length)."""
    intermediate: int = 128
    """Feed-forward size of each expert."""
    heads: int = 4
    """Attention heads."""
    kv_heads: int = 2
    """Key/value heads (grouped-query attention, as Mixtral's 32/8)."""
    experts: int = 4
    """Experts per block."""
    top_k: int = 2
    """Experts used per token."""
    vocab: int = 2000
    """Target SentencePiece vocabulary size (the trained size may come out smaller)."""
    context: int = 4096
    """max_position_embeddings written to config.json."""
    shards: int = 2
    """Number of safetensors shards (at least 2, like the real release)."""
    dtype: str = "bfloat16"
    """Weight dtype on disk: bfloat16 (as released), float16 or float32."""
    seed: int = 0
    """Seed for the weights; the tokenizer training is deterministic by itself."""
    tokenizer: str = ""
    """A SentencePiece tokenizer.model to use instead of training one (e.g. the real Mixtral tokenizer)."""

    def __post_init__(self) -> None:
        self.shape()
        if self.shards < 2:
            raise ValueError("--shards must be at least 2 (the real checkpoint is sharded)")
        if self.vocab < 300:
            raise ValueError("--vocab must be at least 300 (256 byte-fallback pieces + 3 controls + text)")
        if self.tokenizer and not Path(self.tokenizer).is_file():
            raise ValueError(f"--tokenizer {self.tokenizer}: no such file; pass a SentencePiece tokenizer.model")
        if self.dtype not in ("bfloat16", "float16", "float32"):
            raise ValueError(f"--dtype {self.dtype!r}: choose bfloat16, float16 or float32")


    def shape(self, vocab_size: int = 32000) -> MixtralShape:
        """The Mixtral shape these knobs make, checked by MixtralShape's own rules (messages name our flags)."""
        try:
            return MixtralShape(vocab_size=vocab_size, hidden_size=self.hidden, intermediate_size=self.intermediate,
                                num_layers=self.layers, num_heads=self.heads, num_kv_heads=self.kv_heads,
                                num_experts=self.experts, experts_per_token=self.top_k, context_length=self.context)
        except ValueError as exc:
            raise ValueError(_SHAPE_FIELD.sub(lambda m: SHAPE_FLAGS[m.group(0)], str(exc))) from None


# MixtralShape's field names -> this kit's flags, for its error messages.
SHAPE_FLAGS = {"hidden_size": "--hidden", "intermediate_size": "--intermediate", "num_layers": "--layers",
               "num_heads": "--heads", "num_kv_heads": "--kv-heads", "num_experts": "--experts",
               "experts_per_token": "--top-k", "context_length": "--context", "vocab_size": "--vocab"}
_SHAPE_FIELD = re.compile(r"\b(" + "|".join(SHAPE_FLAGS) + r")\b")


def corpus_lines() -> list[str]:
    """The bilingual training text shipped with the package, one sentence a line."""
    text = resources.files("aurora_training").joinpath("assets/corpus.txt").read_text("utf-8")
    return [line for line in text.splitlines() if line.strip()]


def train_tokenizer(vocab: int) -> bytes:
    """A SentencePiece BPE model with Mixtral's tokenizer settings, as serialized bytes."""
    import sentencepiece as spm

    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus_lines()),
        model_writer=out,
        model_type="bpe",
        vocab_size=vocab,
        hard_vocab_limit=False,
        character_coverage=0.9995,
        byte_fallback=True,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        remove_extra_whitespaces=False,
        add_dummy_prefix=True,
        normalization_rule_name="identity",
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        unk_piece=UNK,
        bos_piece=BOS,
        eos_piece=EOS,
        num_threads=1,
        minloglevel=2,
    )
    return out.getvalue()


def _mixtral_config(cfg: TinyBaseConfig, vocab_size: int):
    from transformers import MixtralConfig

    return MixtralConfig(
        vocab_size=vocab_size,
        hidden_size=cfg.hidden,
        intermediate_size=cfg.intermediate,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
        num_key_value_heads=cfg.kv_heads,
        num_local_experts=cfg.experts,
        num_experts_per_tok=cfg.top_k,
        max_position_embeddings=cfg.context,
        rope_theta=1e6,
        rms_norm_eps=1e-5,
        router_aux_loss_coef=0.02,
        sliding_window=None,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        architectures=["MixtralForCausalLM"],
        torch_dtype=cfg.dtype,
    )


def _random_state_dict(cfg: TinyBaseConfig, vocab_size: int) -> dict:
    """Weights with the real Mixtral tensor names, drawn from a seeded generator."""
    import torch
    from transformers import MixtralForCausalLM

    config = _mixtral_config(cfg, vocab_size)
    torch.manual_seed(cfg.seed)
    model = MixtralForCausalLM(config)
    with torch.no_grad():
        # Norm weights of exactly 1.0 would hide a norm that an exporter forgot; perturb them.
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.add_(0.1 * torch.randn_like(p))
        # Rows of norm 2 (as in trained models, where logits spread over several units): with the
        # default std of 0.02 a small model's logits could never leave +-1, and nothing could learn.
        model.lm_head.weight.normal_(0.0, 2.0 / cfg.hidden ** 0.5)
    dtype = getattr(torch, cfg.dtype)
    return {k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}


def shard_plan(sizes: dict[str, int], shards: int) -> list[list[str]]:
    """Split tensor names, in order, into `shards` groups of roughly equal byte size."""
    names = list(sizes)
    total = sum(sizes.values())
    groups: list[list[str]] = [[] for _ in range(shards)]
    done = 0
    for name in names:
        k = min(shards - 1, done * shards // max(total, 1))
        groups[k].append(name)
        done += sizes[name]
    # Never leave a shard empty: move the last tensor of the previous non-empty group.
    for k in range(shards):
        if not groups[k]:
            donor = max(range(shards), key=lambda j: len(groups[j]))
            groups[k].append(groups[donor].pop())
    return groups


def write_safetensors_shards(state: dict, out_dir: Path, shards: int, metadata: dict | None = None) -> None:
    """Write `state` as model-0000K-of-0000N.safetensors shards plus the index, like the hub layout."""
    from safetensors.torch import save_file

    sizes = {k: v.numel() * v.element_size() for k, v in state.items()}
    weight_map: dict[str, str] = {}
    for k, group in enumerate(shard_plan(sizes, shards), start=1):
        fname = f"model-{k:05d}-of-{shards:05d}.safetensors"
        save_file({n: state[n] for n in group}, str(out_dir / fname), metadata={"format": "pt", **(metadata or {})})
        weight_map.update({n: fname for n in group})
    index = {"metadata": {"total_size": sum(sizes.values())}, "weight_map": dict(sorted(weight_map.items()))}
    (out_dir / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")


def tokenizer_config() -> dict:
    """tokenizer_config.json as in Mixtral-8x7B-Instruct-v0.1, carrying Aurora's chat template."""
    special = {
        str(i): {"content": tok, "lstrip": False, "normalized": False, "rstrip": False,
                 "single_word": False, "special": True}
        for i, tok in enumerate((UNK, BOS, EOS))
    }
    return {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": special,
        "additional_special_tokens": [],
        "bos_token": BOS,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": EOS,
        "legacy": False,
        "model_max_length": 1000000000000000019884624838656,
        "pad_token": None,
        "sp_model_kwargs": {},
        "spaces_between_special_tokens": False,
        "tokenizer_class": "LlamaTokenizer",
        "unk_token": UNK,
        "use_default_system_prompt": False,
    }


def write_tiny_base(out: Path, cfg: TinyBaseConfig, force: bool = False) -> Path:
    """Build the tiny checkpoint in a temporary folder beside `out`, then move it into place."""
    import sentencepiece as spm

    with new_folder(Path(out), force) as tmp:
        sp_bytes = Path(cfg.tokenizer).read_bytes() if cfg.tokenizer else train_tokenizer(cfg.vocab)
        (tmp / "tokenizer.model").write_bytes(sp_bytes)
        vocab_size = spm.SentencePieceProcessor(model_proto=sp_bytes).get_piece_size()

        config = _mixtral_config(cfg, vocab_size)
        config.save_pretrained(tmp)  # writes config.json
        write_safetensors_shards(_random_state_dict(cfg, vocab_size), tmp, cfg.shards)

        (tmp / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(), indent=2, ensure_ascii=False) + "\n")
        specials = {"bos_token": BOS, "eos_token": EOS, "unk_token": UNK}
        (tmp / "special_tokens_map.json").write_text(json.dumps(specials, indent=2) + "\n")
        gen = {"bos_token_id": 1, "eos_token_id": 2}
        (tmp / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")
        (tmp / "aurora_tiny.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    return Path(out)
