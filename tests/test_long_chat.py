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


# ---------------------------------------------------------------- a chat's KV cache on disk


def five_turns(engine: ChatEngine, state=None) -> Conversation:
    conv = Conversation(system="你是一个乐于助人的助手。")
    for i in range(5):
        conv.add_user(question(i))
        gen = consume(engine.stream(conv, GREEDY, state=state))
        conv.add_assistant(gen.text, gen.reply_ids)
    return conv


def test_a_restored_chat_answers_as_one_read_from_scratch(exported, tmp_path):
    config = EngineConfig(n_ctx=N_CTX, n_threads=2)
    first = ChatEngine(exported["f16"], config)
    try:
        conv = five_turns(first)
        state = tmp_path / "chat.kv"
        size = first.save_state(state)
        assert size > 0 and state.stat().st_size == size
    finally:
        first.close()
    conv.add_user("最后一个问题：总结一下。")
    restored, scratch = ChatEngine(exported["f16"], config), ChatEngine(exported["f16"], config)
    try:
        gen = consume(restored.stream(conv, GREEDY, state=state))
        reference = consume(scratch.stream(conv, GREEDY))
        assert gen.sampled_ids == reference.sampled_ids and gen.text == reference.text  # token for token
        new = len(restored._encode("最后一个问题：总结一下。"))
        assert gen.restored_tokens > 200 and gen.prompt_tokens - gen.reused_tokens <= new + 20
        assert reference.prompt_tokens - reference.reused_tokens == reference.prompt_tokens  # read from scratch
    finally:
        restored.close()
        scratch.close()


def test_a_state_that_does_not_fit_is_ignored(exported, tmp_path, caplog):
    engine = ChatEngine(exported["f16"], EngineConfig(n_ctx=N_CTX, n_threads=2))
    try:
        conv = five_turns(engine)
        good = tmp_path / "good.kv"
        engine.save_state(good)
        data = good.read_bytes()
        cases = {"truncated.kv": data[: len(data) // 2], "random.kv": bytes(range(256)) * 64,
                 "flipped.kv": data[:-10] + bytes(b ^ 0xFF for b in data[-10:])}
        for name, content in cases.items():
            (tmp_path / name).write_bytes(content)
        other = ChatEngine(exported["q8_0"], EngineConfig(n_ctx=N_CTX, n_threads=2))  # another model
        wider = ChatEngine(exported["f16"], EngineConfig(n_ctx=2 * N_CTX, n_threads=2))  # another n_ctx
        try:
            conv.add_user("还在吗？")
            for eng, state in [(engine, tmp_path / n) for n in cases] + [(other, good), (wider, good)]:
                eng.cache_owner = None
                eng.llm.reset()
                caplog.clear()
                gen = consume(eng.stream(conv, GREEDY, state=state))
                assert gen.restored_tokens == 0 and gen.completion_tokens > 0, state
                assert gen.reused_tokens == 0  # read from scratch, with a line in the log
                assert any(str(state) in r.getMessage() and "read instead" in r.getMessage() for r in caplog.records)
        finally:
            other.close()
            wider.close()
    finally:
        engine.close()


def test_the_repl_saves_and_loads_the_kv_cache_beside_the_json(exported, tmp_path):
    import io

    from aurora_desktop.chat_cli import Repl, state_of

    saved = tmp_path / "chat.json"
    config = EngineConfig(n_ctx=N_CTX, n_threads=2)
    first = ChatEngine(exported["f16"], config)
    try:
        repl = Repl(first, Conversation(), GREEDY, out=io.StringIO())
        for i in range(3):
            repl.conv.add_user(question(i))
            repl.answer()
        repl.command(f"/save {saved}")
        assert "and the KV cache" in repl.out.getvalue() and state_of(saved).is_file()
    finally:
        first.close()
    second = ChatEngine(exported["f16"], config)
    try:
        restored = []
        original = second.restore_state
        second.restore_state = lambda path: restored.append(original(path)) or restored[-1]
        repl = Repl(second, Conversation(), GREEDY, out=io.StringIO())
        repl.command(f"/load {saved}")
        repl.conv.add_user("继续")
        repl.answer()
        assert restored and restored[0] > 100  # the loaded chat was not read again
    finally:
        second.close()
