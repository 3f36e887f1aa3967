"""Aurora's chat ids against Mistral's own encoder (mistral-common), on the real Mixtral tokenizer.

mistral-common ships the real Mixtral-8x7B tokenizer (`tokenizer.model.v1`, 32,000 pieces, byte
fallback) and encodes chats exactly as Mixtral-8x7B-Instruct-v0.1 was trained. Training (ids + labels),
the chat engine (through a GGUF that aurora-export writes with that tokenizer) and a standard consumer
of the stored template (transformers' apply_chat_template) must all give its ids.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from aurora_core.chat_format import CHAT_TEMPLATE, IGNORE_INDEX, Turn, encode_conversation, encode_prompt

mistral_common = pytest.importorskip("mistral_common", reason="the dev extra installs mistral-common")

from mistral_common.protocol.instruct.messages import AssistantMessage, UserMessage  # noqa: E402
from mistral_common.protocol.instruct.request import InstructRequest  # noqa: E402
from mistral_common.tokens.tokenizers.mistral import MistralTokenizer  # noqa: E402

REAL_TOKENIZER = Path(mistral_common.__file__).parent / "data" / "tokenizer.model.v1"

TEXTS = ["你好，请介绍一下你自己。", "What is a mixture of experts?", "写一个 Python 函数：def f(x): return x**2",
         "😀🎉 表情和 emoji", "  前后有空格  ", "trailing ", " leading", "用户写了 </s> 和 <s>",
         "[INST] 假装指令 [/INST]", "全角：，。？！；（）「」", "多行\n第二行\n\n第三行", "数字 12345 和 3.14159",
         "鱻龘靐齉爩", "混合 English 和中文 in one line."]
SYSTEMS = [None, "你是一个乐于助人的助手。", "Be brief."]


def conversations():
    """Conversations of 1 to 5 turns, with and without a system prompt, over every text above."""
    cycle = itertools.cycle(TEXTS)
    out = []
    for n_pairs in range(1, 6):
        for system in SYSTEMS:
            turns = []
            for _ in range(n_pairs):
                turns += [Turn("user", next(cycle)), Turn("assistant", next(cycle))]
            out.append((system, turns))
    return out


@pytest.fixture(scope="module")
def reference():
    return MistralTokenizer.from_file(str(REAL_TOKENIZER))


@pytest.fixture(scope="module")
def sp():
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=str(REAL_TOKENIZER))


def reference_ids(reference, system, turns):
    """mistral-common's v1 instruct encoding of the whole conversation."""
    messages = [UserMessage(content=t.content) if t.role == "user" else AssistantMessage(content=t.content)
                for t in turns]
    return reference.instruct_tokenizer.encode_instruct(InstructRequest(messages=messages,
                                                                         system_prompt=system)).tokens


def test_the_real_tokenizer_is_the_real_one(sp):
    assert sp.get_piece_size() == 32000 and sp.id_to_piece(28705) == "▁"
    assert sum(1 for i in range(sp.get_piece_size()) if sp.is_byte(i)) == 256


@pytest.mark.parametrize("system,turns", conversations(), ids=lambda x: None)
def test_training_ids_equal_mistral_common(reference, sp, system, turns):
    ids, labels = encode_conversation(sp.encode, turns, system, sp.bos_id(), sp.eos_id())
    assert ids == reference_ids(reference, system, turns)
    # Labels: each reply from its first piece (the word-start included) through </s>.
    for k in range(1, len(turns), 2):
        reply = sp.encode(turns[k].content) + [sp.eos_id()]
        head = reference_ids(reference, system, turns[:k])
        assert labels[len(head): len(head) + len(reply)] == reply
        assert all(x == IGNORE_INDEX for x in labels[len(head) - 1: len(head) - 1 + 1])


@pytest.mark.parametrize("system,turns", conversations()[::2], ids=lambda x: None)
def test_prompt_ids_equal_mistral_common(reference, sp, system, turns):
    from mistral_common.protocol.instruct.messages import SystemMessage
    from mistral_common.protocol.instruct.request import ChatCompletionRequest

    prompt = turns[:-1]  # ends with a user turn
    messages = ([SystemMessage(content=system)] if system else []) + [
        UserMessage(content=t.content) if t.role == "user" else AssistantMessage(content=t.content) for t in prompt]
    expected = reference.encode_chat_completion(ChatCompletionRequest(messages=messages)).tokens
    assert encode_prompt(sp.encode, prompt, system, sp.bos_id(), sp.eos_id()) == expected


@pytest.fixture(scope="module")
def hf_tokenizer(tmp_path_factory):
    """The real tokenizer as transformers loads it, with the tokenizer_config.json Aurora writes."""
    from transformers import AutoTokenizer

    from aurora_training.tiny import tokenizer_config

    folder = tmp_path_factory.mktemp("real-tokenizer")
    (folder / "tokenizer.model").write_bytes(REAL_TOKENIZER.read_bytes())
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config()))
    return AutoTokenizer.from_pretrained(folder)


@pytest.mark.parametrize("system,turns", [c for c in conversations() if not any(
    s in t.content for t in c[1] for s in ("<s>", "</s>"))][::2], ids=lambda x: None)
def test_apply_chat_template_on_the_real_tokenizer_gives_the_same_ids(hf_tokenizer, reference, system, turns):
    assert hf_tokenizer.chat_template == CHAT_TEMPLATE
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": t.role, "content": t.content} for t in turns]
    ids = hf_tokenizer.apply_chat_template(messages, tokenize=True)
    ids = ids["input_ids"] if isinstance(ids, dict) else ids
    assert list(ids) == reference_ids(reference, system, turns)


# ---------------------------------------------------------------- through a GGUF, in llama.cpp


@pytest.fixture(scope="module")
def real_vocab_gguf(tmp_path_factory):
    """A tiny Mixtral with the real 32,000-piece tokenizer, exported by aurora-export."""
    from aurora_export.pipeline import ExportConfig, export_gguf
    from aurora_training.tiny import TinyBaseConfig, write_tiny_base

    root = tmp_path_factory.mktemp("real-vocab")
    base = write_tiny_base(root / "base", TinyBaseConfig(hidden=32, intermediate=64, heads=2, kv_heads=1,
                                                          tokenizer=str(REAL_TOKENIZER)))
    return export_gguf(ExportConfig(base, root / "real.gguf", types="f32", progress=False)).files["f32"]


def test_llama_cpp_tokenizes_the_real_vocabulary_like_sentencepiece(real_vocab_gguf, sp):
    from llama_cpp import Llama

    vocab = Llama(str(real_vocab_gguf), vocab_only=True, verbose=False)
    lines = TEXTS + [a + b for a, b in itertools.product(TEXTS[:8], TEXTS[6:])]
    bad = [x for x in lines if vocab.tokenize(x.encode(), add_bos=True, special=False) != [1] + sp.encode(x)]
    assert bad == []


def test_chat_engine_prompt_ids_equal_mistral_common(real_vocab_gguf, reference):
    from mistral_common.protocol.instruct.messages import SystemMessage
    from mistral_common.protocol.instruct.request import ChatCompletionRequest

    from aurora_desktop.conversation import Conversation
    from aurora_desktop.engine import ChatEngine, EngineConfig

    engine = ChatEngine(real_vocab_gguf, EngineConfig(n_ctx=1024))
    try:
        assert engine.warnings == [] and engine.template.source == CHAT_TEMPLATE
        for system, turns in conversations():
            prompt = turns[:-1]
            conv = Conversation(system=system)
            for t in prompt:
                (conv.add_user if t.role == "user" else conv.add_assistant)(t.content)
            messages = ([SystemMessage(content=system)] if system else []) + [
                UserMessage(content=t.content) if t.role == "user" else AssistantMessage(content=t.content)
                for t in prompt]
            expected = reference.encode_chat_completion(ChatCompletionRequest(messages=messages)).tokens
            assert engine.prompt_tokens(conv) == expected, (system, prompt)
    finally:
        engine.close()
