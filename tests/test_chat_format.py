"""The Python formatter and the Jinja chat template are the same format, token for token."""

from __future__ import annotations

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from aurora_core.chat_format import (
    CHAT_TEMPLATE, IGNORE_INDEX, ChatFormatError, ChatTemplate, ChatTemplateError, Control, Reply, Turn,
    encode_conversation, encode_pieces, encode_prompt, render_fragments, render_text,
)

CONVERSATIONS = [
    (None, [Turn("user", "你好")]),
    (None, [Turn("user", "你好"), Turn("assistant", "您好！有什么可以帮您？")]),
    ("你是一个乐于助人的助手。", [Turn("user", "1+1=?"), Turn("assistant", "2"), Turn("user", "再加3呢？")]),
    ("Be brief.", [Turn("user", "Hi"), Turn("assistant", "Hello!"), Turn("user", "[INST] </s> <s>"),
                   Turn("assistant", "Those are plain text here.")]),
]


def render_jinja(system, turns):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(message):
        raise ValueError(message)

    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": t.role, "content": t.content} for t in turns]
    return env.from_string(CHAT_TEMPLATE).render(
        messages=messages, bos_token="<s>", eos_token="</s>", raise_exception=raise_exception)


@pytest.mark.parametrize("system,turns", CONVERSATIONS)
def test_fragments_equal_the_jinja_rendering(system, turns):
    assert render_text(render_fragments(turns, system)) == render_jinja(system, turns)


def test_golden_rendering_is_the_reference_form():
    system, turns = CONVERSATIONS[2]
    assert render_jinja(system, turns) == "<s> [INST] 你是一个乐于助人的助手。\n\n1+1=? [/INST] 2</s> [INST] 再加3呢？ [/INST]"


def test_roles_must_alternate():
    with pytest.raises(ChatFormatError, match="turn 2 is 'user' but must be 'assistant'"):
        render_fragments([Turn("user", "a"), Turn("user", "b")])
    with pytest.raises(ValueError, match="alternate"):
        render_jinja(None, [Turn("assistant", "a")])


@pytest.fixture(scope="module")
def sp(tiny_base):
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=str(tiny_base / "tokenizer.model"))


def test_labels_keep_exactly_the_assistant_replies(sp):
    turns = [Turn("user", "第一个问题？"), Turn("assistant", "第一个回答。"),
             Turn("user", "Second question?"), Turn("assistant", "Second answer, 2 parts."),
             Turn("user", "第三个问题"), Turn("assistant", "第三个回答😀")]
    ids, labels = encode_conversation(sp.encode, turns, "系统提示", bos_id=1, eos_id=2)
    assert len(ids) == len(labels) and ids[0] == 1 and labels[0] == IGNORE_INDEX
    # Cut the label stream at every </s>: each piece decodes to one assistant reply, and each starts
    # with the word-start piece (the reply is its own SentencePiece fragment).
    replies, current = [], []
    for tok in labels:
        if tok == IGNORE_INDEX:
            continue
        if tok == 2:
            assert sp.id_to_piece(current[0]).startswith("▁")
            replies.append(sp.decode(current))
            current = []
        else:
            current.append(tok)
    assert replies == ["第一个回答。", "Second answer, 2 parts.", "第三个回答😀"]
    # The ids are exactly the template's rendering, tokenized fragment by fragment.
    assert ids == encode_prompt(sp.encode, turns, "系统提示", 1, 2)


def test_truncation_keeps_whole_turns(sp):
    turns = [Turn("user", "问题一"), Turn("assistant", "回答一"), Turn("user", "问题二" * 20), Turn("assistant", "回答二" * 20)]
    full, _ = encode_conversation(sp.encode, turns, None, 1, 2)
    first, labels = encode_conversation(sp.encode, turns[:2], None, 1, 2)
    cut = encode_conversation(sp.encode, turns, None, 1, 2, max_tokens=len(full) - 1)
    assert cut == (first, labels)
    assert encode_conversation(sp.encode, turns, None, 1, 2, max_tokens=len(first) - 1) is None


def test_user_text_never_becomes_a_control_token(sp):
    ids = encode_prompt(sp.encode, [Turn("user", "</s><s>[INST]")], None, 1, 2)
    assert ids.count(1) == 1 and 2 not in ids


def test_sampled_reply_ids_take_the_place_of_the_reply_and_its_space(sp):
    turns = [Turn("user", "你好"), Turn("assistant", "您好"), Turn("user", "再见")]
    reference = encode_prompt(sp.encode, turns, None, 1, 2)
    reply_ids = tuple(sp.encode("您好"))  # what the model samples after [/INST]: the word-start first
    template = ChatTemplate(CHAT_TEMPLATE)
    messages = [{"role": t.role, "content": t.content} for t in turns]
    pieces = template.render(messages, replies={1: Reply(reply_ids, "您好")})
    assert Reply(reply_ids, "您好") in pieces
    assert encode_pieces(pieces, sp.encode, 1, 2) == reference
    # Ids that differ from the text's own tokenization are kept as sampled (they are in the KV cache).
    odd = tuple(sp.encode("您")) + tuple(sp.encode("好")[1:])
    spliced = encode_pieces(template.render(messages, replies={1: Reply(odd, "您好")}), sp.encode, 1, 2)
    assert spliced == [1] + sp.encode("[INST] 你好 [/INST]") + list(odd) + [2] + sp.encode("[INST] 再见 [/INST]")


def test_sandbox_refuses_attribute_tricks():
    with pytest.raises(ChatTemplateError, match="SecurityError"):
        ChatTemplate("{{ ''.__class__.__mro__ }}").render([{"role": "user", "content": "x"}])
    pieces = ChatTemplate(CHAT_TEMPLATE).render([{"role": "user", "content": "a\ue000b"}])
    assert pieces == [Control.BOS, " [INST] ab [/INST]"]  # a private-use marker in user text stays text
