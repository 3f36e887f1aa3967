"""Long chats: what a turn costs once a chat outgrows the context, and how close a shifted cache is to exact.

    python bench/long_chat_bench.py [--model bench-output/export/aurora-q4_k_m.gguf] [--turns 40] [--ctx 1024]

The model: the Mixtral-shaped export-bench model in Q4_K_M (12 layers, hidden 1024, 8 experts, 1.06 B
parameters; `python bench/export_bench.py` makes it), the largest kit on these machines. Random weights, so
the answers are noise, but the cost of reading a prompt is the real one.

(a) The same 40-turn chat (greedy answers of 32 tokens) in three modes, one after another in this run:
    before  the engine before this change: the fewest oldest pairs dropped each turn and no shift, so once
            the chat is full the prompt's prefix changes every turn and every turn reads the kept history
    shift   dropped down to half the context and the KV cache shifted (the default)
    exact   dropped down to half the context and the kept turns read again, once
    Evaluated prompt tokens and time to first token (TTFT) per turn; the target for shift: the median TTFT of
    the turns after the context is full <= 2x the median of turns 2-5.
(b) Shift against exact: at every turn from the first shift on, the shifted cache's next-token distribution
    and greedy answer against a fresh evaluation of the same kept turns (a second engine): how often the
    top-1 token agrees and how often the whole answer is the same.
(c) A 3,000-token chat reopened (n_ctx 4,096), each in a new engine: TTFT of its next turn restored from its
    saved KV state, read again from scratch, and a fresh one-turn chat; the state file's bytes per token against
    the KV formula (layers x 2 x KV heads x head dim x 2 bytes at f16). Targets: >= 10x faster than reading it
    again, <= 1.5x the fresh chat.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ANSWER = 32


def question(i: int) -> str:
    return f"第{i + 1}个问题：请用几句话解释混合专家模型中的路由器是如何选择专家的，并举一个例子。"


def before_fit(engine, conversation, max_tokens, drop_oldest=True):
    """The engine's fit before this change (the peer): the fewest whole pairs that make the prompt fit."""
    from aurora_desktop.conversation import Conversation

    n_ctx, messages = engine.llm.n_ctx(), conversation.messages

    def ids_without(pairs: int) -> list[int]:
        return engine.prompt_tokens(Conversation(system=conversation.system, messages=messages[2 * pairs:]))

    ids = ids_without(0)
    if len(ids) + max_tokens <= n_ctx:
        return ids, 0
    lo, hi = 1, max(0, (len(messages) - 1) // 2)
    best, dropped = ids_without(hi), hi
    while lo < hi:
        mid = (lo + hi) // 2
        candidate = ids_without(mid)
        if len(candidate) + max_tokens <= n_ctx:
            best, dropped, hi = candidate, mid, mid
        else:
            lo = mid + 1
    return best, 2 * dropped


def run_mode(model: Path, mode: str, turns: int, n_ctx: int) -> list[tuple[int, float, int]]:
    """(evaluated tokens, TTFT s, dropped messages) per turn."""
    from aurora_desktop.conversation import Conversation
    from aurora_desktop.engine import ChatEngine, EngineConfig, SamplingSettings, consume

    engine = ChatEngine(model, EngineConfig(n_ctx=n_ctx, n_threads=2, context_shift=mode == "shift"))
    if mode == "before":
        engine.fit = lambda conv, max_tokens, drop_oldest=True: before_fit(engine, conv, max_tokens, drop_oldest)
    conv, rows = Conversation(system="你是一个乐于助人的中文助手。"), []
    try:
        for i in range(turns):
            conv.add_user(question(i))
            gen = consume(engine.stream(conv, SamplingSettings(temperature=0.0, max_tokens=ANSWER)))
            rows.append((gen.prompt_tokens - gen.reused_tokens, gen.time_to_first_token, gen.dropped_turns))
            conv.add_assistant(gen.text, gen.reply_ids)
    finally:
        engine.close()
    return rows


def shift_vs_exact(model: Path, turns: int, n_ctx: int) -> tuple[int, int, int]:
    """(turns compared, top-1 agreements, identical greedy answers) from the first shift on."""
    from aurora_desktop.conversation import Conversation
    from aurora_desktop.engine import ChatEngine, EngineConfig, SamplingSettings, consume

    shifted = ChatEngine(model, EngineConfig(n_ctx=n_ctx, n_threads=2))
    fresh = ChatEngine(model, EngineConfig(n_ctx=n_ctx, n_threads=2, context_shift=False))
    greedy = SamplingSettings(temperature=0.0, max_tokens=ANSWER)
    conv, compared, top1, same, started = Conversation(system="你是一个乐于助人的中文助手。"), 0, 0, 0, False
    try:
        for i in range(turns):
            conv.add_user(question(i))
            gen = consume(shifted.stream(conv, greedy))
            started = started or gen.shifted_tokens > 0
            if started:  # greedy: the first token sampled is the top-1 of the next-token distribution
                fresh.llm.reset()
                kept = Conversation(conv.system, conv.messages[gen.dropped_turns:])
                reference = consume(fresh.stream(kept, greedy))
                compared += 1
                top1 += gen.sampled_ids[:1] == reference.sampled_ids[:1]
                same += gen.text == reference.text
            conv.add_assistant(gen.text, gen.reply_ids)
    finally:
        shifted.close()
        fresh.close()
    return compared, top1, same


def reopen(model: Path, work: Path, n_ctx: int = 4096, size: int = 3000) -> dict:
    from aurora_desktop.conversation import Conversation
    from aurora_desktop.engine import ChatEngine, EngineConfig, SamplingSettings, consume

    config, quick = EngineConfig(n_ctx=n_ctx, n_threads=2), SamplingSettings(temperature=0.0, max_tokens=8)
    reply = "混合专家模型的路由器为每个词元计算各专家的得分，选出得分最高的两个专家，并按权重合并它们的输出。"
    engine = ChatEngine(model, config)
    conv, i = Conversation(system="你是一个乐于助人的中文助手。"), 0
    while len(engine.prompt_tokens(conv)) < size:
        conv.add_user(question(i))
        conv.add_assistant(reply)
        i += 1
    conv.add_user("请总结我们刚才的讨论。")
    gen = consume(engine.stream(conv, quick))
    conv.add_assistant(gen.text, gen.reply_ids)
    state = work / "reopened.kv"
    state_bytes, tokens = engine.save_state(state), engine.llm.n_tokens
    formula = engine.info.kv_cache_bytes / engine.info.n_ctx
    engine.close()
    conv.add_user("最后一个问题：哪种方法最好？")
    q8 = ChatEngine(model, EngineConfig(n_ctx=n_ctx, n_threads=2, kv_cache_type="q8_0"))
    try:
        consume(q8.stream(conv, SamplingSettings(temperature=0.0, max_tokens=1)))
        q8_bytes, q8_tokens = q8.save_state(work / "reopened-q8_0.kv"), q8.llm.n_tokens
    finally:
        q8.close()
    out = {"tokens": tokens, "state_bytes": state_bytes, "formula_per_token": formula,
           "q8_per_token": q8_bytes / q8_tokens}
    for name, conversation, path in (("restored", conv, state), ("read again", conv, None),
                                     ("fresh one-turn chat", Conversation(conv.system, conv.messages[-1:]), None)):
        engine = ChatEngine(model, config)
        try:
            out[name] = consume(engine.stream(conversation, quick, state=path)).time_to_first_token
        finally:
            engine.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("bench-output/export/aurora-q4_k_m.gguf"))
    parser.add_argument("--turns", type=int, default=40)
    parser.add_argument("--ctx", type=int, default=1024)
    args = parser.parse_args()
    if not args.model.is_file():
        print(f"{args.model}: missing; make it with python bench/export_bench.py", file=sys.stderr)
        return 2
    results = {mode: run_mode(args.model, mode, args.turns, args.ctx) for mode in ("before", "shift", "exact")}
    print(f"(a) {args.turns} turns at n_ctx {args.ctx}, answers of {ANSWER} tokens, {args.model.name}\n")
    print("| turn | " + " | ".join(f"{m} evaluated | {m} TTFT ms" for m in results) + " |")
    print("|---:|" + "---:|---:|" * len(results))
    for k in range(args.turns):
        print(f"| {k + 1} | " + " | ".join(f"{rows[k][0]} | {rows[k][1] * 1000:.0f}" for rows in results.values())
              + " |")
    print()
    print("| mode | tokens evaluated in all | median TTFT turns 2-5 ms | median TTFT once full ms | ratio | target |")
    print("|---|---:|---:|---:|---:|---|")
    for mode, rows in results.items():
        full = next((k for k, r in enumerate(rows) if r[2]), len(rows))
        early = statistics.median(r[1] for r in rows[1:5])
        late = statistics.median(r[1] for r in rows[full:]) if full < len(rows) else float("nan")
        target = f"<= 2 {'met' if late / early <= 2 else 'MISSED'}" if mode == "shift" else ""
        print(f"| {mode} | {sum(r[0] for r in rows):,} | {early * 1000:.0f} | {late * 1000:.0f} | {late / early:.2f} | "
              f"{target} |")
    compared, top1, same = shift_vs_exact(args.model, args.turns, args.ctx)
    r = reopen(args.model, args.model.parent)
    print(f"\n(c) a {r['tokens']:,}-token chat reopened, n_ctx 4,096 (time to first token of its next turn):\n")
    print("| reopened chat | TTFT ms | ratio |")
    print("|---|---:|---:|")
    for name in ("restored", "read again", "fresh one-turn chat"):
        print(f"| {name} | {r[name] * 1000:.0f} | {r[name] / r['restored']:.2f} |")
    speedup, vs_fresh = r["read again"] / r["restored"], r["restored"] / r["fresh one-turn chat"]
    print(f"\nrestored vs read again: {speedup:.1f}x faster (target >= 10 {'met' if speedup >= 10 else 'MISSED'}); "
          f"restored vs a fresh chat: {vs_fresh:.2f}x (target <= 1.5 {'met' if vs_fresh <= 1.5 else 'MISSED'})")
    print(f"state file {r['state_bytes'] / 2**20:.1f} MiB = {r['state_bytes'] / r['tokens']:,.0f} bytes per token; "
          f"KV formula {r['formula_per_token']:,.0f} bytes per token; with the q8_0 K/V cache "
          f"{r['q8_per_token']:,.0f} bytes per token ({r['q8_per_token'] / (r['state_bytes'] / r['tokens']):.2f} of f16)")
    print(f"\n(b) shift vs a fresh evaluation of the same kept turns, {compared} turns from the first shift on: "
          f"next-token top-1 agrees {top1}/{compared}, the whole greedy answer is the same {same}/{compared}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
