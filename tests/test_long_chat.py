"""Long chats on the real engine (demo-kit GGUF, small context): when a chat outgrows the context, the oldest turns
are dropped down to about half the context, and either the KV cache is shifted (nothing read again) or the kept
turns are read again once (exact); every later turn reuses the cache."""

from __future__ import annotations

import pytest

from aurora_desktop.conversation import Conversation
from aurora_desktop.engine import ChatEngine, EngineConfig, SamplingSettings, consume

N_CTX, ANSWER = 512, 24
GREEDY = SamplingSettings(temperature=0.0, max_tokens=ANSWER)


def question(i: int) -> str:
    return f"第{i}个问题：请简单介绍一下混合专家模型的路由方法。"


@pytest.fixture(params=[True, False], ids=["shift", "exact"])
def engine(request, exported):
    e = ChatEngine(exported["f16"], EngineConfig(n_ctx=N_CTX, n_threads=2, n_batch=64, context_shift=request.param))
    yield e
    e.close()


def run_turns(engine: ChatEngine, turns: int) -> list[dict]:
    conv = Conversation(system="你是一个乐于助人的助手。")
    rows = []
    for i in range(turns):
        conv.add_user(question(i))
        gen = consume(engine.stream(conv, GREEDY))
        fresh = engine.prompt_tokens(Conversation(conv.system, conv.messages[2 * conv.dropped_pairs:]))
        rows.append({"gen": gen, "evaluated": gen.prompt_tokens - gen.reused_tokens, "fresh": fresh,
                     "held": engine.llm.input_ids[: len(fresh)].tolist(), "new": len(engine._encode(question(i)))})
        conv.add_assistant(gen.text, gen.reply_ids)
    return rows


def test_thirty_turns_past_the_context(engine):
    import llama_cpp

    rows = run_turns(engine, 30)
    full = [k for k, r in enumerate(rows) if r["gen"].dropped_turns]
    assert full and full[0] < 20  # the chat did outgrow the context
    for r in rows:
        assert r["held"] == r["fresh"]  # the KV cache holds exactly a fresh rendering of the kept turns
    memory = llama_cpp.llama_get_memory(engine.llm.ctx)
    assert llama_cpp.llama_memory_seq_pos_max(memory, 0) == engine.llm.n_tokens - 1  # positions are contiguous
    # turn 1 (the cache already full of turn 0) sets what a turn costs: its question, the template's markers
    # around it, and the previous answer's last token and </s> (sampled, not yet evaluated)
    overhead = rows[1]["evaluated"] - rows[1]["new"]
    assert overhead <= 20
    rereads = [k for k, r in enumerate(rows) if k and r["evaluated"] > r["new"] + overhead]
    if engine.shifts:
        assert rereads == []  # no turn read the kept history again
        assert sum(r["gen"].shifted_tokens > 0 for r in rows) >= 1
    else:
        new_text = sum(r["new"] + ANSWER for r in rows)
        assert 1 <= len(rereads) <= new_text // (N_CTX // 2) + 1  # once per half-context of new text at most
        for k in rereads:
            assert rows[k]["evaluated"] <= N_CTX // 2 + overhead  # what was read again is about half the context


def test_the_exact_policy_answers_as_a_fresh_evaluation(exported):
    exact = ChatEngine(exported["f16"], EngineConfig(n_ctx=N_CTX, n_threads=2, context_shift=False))
    fresh = ChatEngine(exported["f16"], EngineConfig(n_ctx=N_CTX, n_threads=2, context_shift=False))
    try:
        conv = Conversation(system="你是一个乐于助人的助手。")
        for i in range(30):
            conv.add_user(question(i))
            gen = consume(exact.stream(conv, GREEDY))
            if gen.dropped_turns and gen.prompt_tokens - gen.reused_tokens > 40:  # a turn that read history again
                fresh.llm.reset()
                kept = Conversation(conv.system, conv.messages[gen.dropped_turns:])
                assert consume(fresh.stream(kept, GREEDY)).text == gen.text
                break
            conv.add_assistant(gen.text, gen.reply_ids)
        else:
            pytest.fail("the chat never outgrew the context")
    finally:
        exact.close()
        fresh.close()
