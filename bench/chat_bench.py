"""Chat engine speed against a bare llama-cpp-python loop, and time to first token as history grows.

Builds a Mixtral-shaped GGUF of a few hundred MB (tiny kit: 4 layers, hidden 1024, 8 experts of 3584,
exported to Q8_0), then, in one run with the same file and settings:

  (1) decode tokens/s of `ChatEngine.stream` against a bare `Llama.generate` loop that detokenizes
      each token (median of --repeats alternating runs; target ratio >= 0.97);
  (2) time to first token of turn 10 against turn 1 of one conversation with equal-length user
      messages (the KV cache is reused, so only the new tokens are evaluated; target <= 1.5x), and
      what turn 10 costs when the cache is not reused.

    python bench/chat_bench.py [--tokens 128] [--repeats 5] [--workdir bench-output/chat]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

SETTINGS = dict(temperature=0.0, top_p=1.0, top_k=40, min_p=0.0, repeat_penalty=1.0)


def build(workdir: Path) -> Path:
    from aurora_export.cli import main as export
    from aurora_training.tiny import TinyBaseConfig, write_tiny_base

    gguf = workdir / "chat-bench-q8_0.gguf"
    if not gguf.exists():
        base = write_tiny_base(workdir / "base", TinyBaseConfig(layers=4, hidden=1024, intermediate=3584, heads=8,
                                                                kv_heads=2, experts=8, shards=2), force=True)
        assert export(["gguf", "--base", str(base), "--out", str(gguf), "--type", "q8_0", "--no-progress"]) == 0
    return gguf


def bare_loop(llm, prompt_ids: list[int], n: int) -> float:
    """Decode tokens/s of the plainest llama-cpp-python loop: generate, detokenize, count."""
    llm.reset()
    first = None
    count = 0
    for token in llm.generate(prompt_ids, top_k=SETTINGS["top_k"], top_p=1.0, min_p=0.0, temp=0.0,
                              repeat_penalty=1.0):
        if first is None:
            first = time.perf_counter()
        if token == llm.token_eos():
            break
        llm.detokenize([token])
        count += 1
        if count >= n:
            break
    return (count - 1) / (time.perf_counter() - first)


def engine_run(engine, conv, n: int) -> float:
    from aurora_desktop.engine import SamplingSettings, consume

    engine.llm.reset()
    return consume(engine.stream(conv, SamplingSettings(max_tokens=n, seed=1, **SETTINGS))).tokens_per_second


def fit_one_pair_at_a_time(engine, conversation, max_tokens: int) -> int:
    """The previous fitting (re-render and re-tokenize everything per dropped pair): the quadratic peer."""
    from aurora_desktop.conversation import Conversation

    messages, dropped = list(conversation.messages), 0
    while True:
        ids = engine.prompt_tokens(Conversation(system=conversation.system, messages=messages))
        if len(ids) + max_tokens <= engine.llm.n_ctx() or len(messages) <= 1:
            return dropped
        engine._token_cache.clear()  # it tokenized every fragment again
        messages, dropped = messages[2:], dropped + 2


def fitting_costs(engine) -> list[tuple[int, float, float | None, int]]:
    """(messages, seconds to fit now, seconds the previous way or None, messages dropped)."""
    from aurora_desktop.conversation import Conversation

    rows = []
    for n in (100, 1_000, 10_000):
        conv = Conversation(system="你是一个乐于助人的助手。")
        for i in range(n // 2):
            conv.add_user(f"第{i}个问题：请介绍一下中国的一个城市。")
            conv.add_assistant(f"第{i}个回答：这座城市历史悠久，风景优美，值得一游。")
        conv.add_user("最后的问题")
        engine._token_cache.clear()
        t = time.perf_counter()
        _, dropped = engine.fit(conv, 512)
        now = time.perf_counter() - t
        before = None
        if n <= 1_000:
            engine._token_cache.clear()
            t = time.perf_counter()
            assert fit_one_pair_at_a_time(engine, conv, 512) == dropped
            before = time.perf_counter() - t
        rows.append((n + 1, now, before, dropped))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=Path("bench-output/chat"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)

    from aurora_desktop.conversation import Conversation
    from aurora_desktop.engine import ChatEngine, EngineConfig, SamplingSettings, consume

    gguf = build(args.workdir)
    engine = ChatEngine(gguf, EngineConfig(n_ctx=4096, n_threads=2))
    conv = Conversation(system="你是一个乐于助人的助手。")
    conv.add_user("请详细介绍一下长城的历史。")
    prompt_ids = engine.prompt_tokens(conv)

    bare, ours = [], []
    for _ in range(args.repeats):
        bare.append(bare_loop(engine.llm, prompt_ids, args.tokens))
        ours.append(engine_run(engine, conv, args.tokens))
    b, o = statistics.median(bare), statistics.median(ours)

    engine.llm.reset()
    chat = Conversation(system="你是一个乐于助人的助手。")
    ttft = []
    for turn in range(1, 11):
        chat.add_user(f"第{turn:02d}个问题：请用一句话回答。")
        gen = consume(engine.stream(chat, SamplingSettings(max_tokens=32, seed=1, **SETTINGS)))
        ttft.append((gen.time_to_first_token, gen.prompt_tokens, gen.reused_tokens))
        chat.add_assistant(gen.text, gen.reply_ids)
    # The same turn-10 prompt without the cache: what a client that re-sends the history pays.
    chat.messages.pop()
    engine.llm.reset()
    cold10 = consume(engine.stream(chat, SamplingSettings(max_tokens=1, seed=1, **SETTINGS))).time_to_first_token

    fits = fitting_costs(engine)
    print(f"model: {gguf.name} ({gguf.stat().st_size / 2**20:,.0f} MiB), {args.tokens} tokens, "
          f"median of {args.repeats}, 2 threads")
    print()
    print("| measure | bare llama-cpp-python | aurora engine | ratio | target |")
    print("|---|---:|---:|---:|---|")
    print(f"| decode tokens/s | {b:,.1f} | {o:,.1f} | {o / b:.3f} | >= 0.97 {'met' if o / b >= 0.97 else 'MISSED'} |")
    t1, t10 = ttft[0][0], ttft[9][0]
    print()
    print("| time to first token | turn 1 | turn 10 | ratio | target |")
    print("|---|---:|---:|---:|---|")
    print(f"| KV cache reused (ms) | {t1 * 1e3:.1f} | {t10 * 1e3:.1f} | {t10 / t1:.2f} "
          f"| <= 1.5 {'met' if t10 / t1 <= 1.5 else 'MISSED'} |")
    print(f"| turn 10 re-evaluated from scratch (ms) | {t1 * 1e3:.1f} | {cold10 * 1e3:.1f} | {cold10 / t1:.2f} "
          "| (what no reuse costs) |")
    print()
    print("turn: prompt tokens / reused from cache / TTFT ms")
    for i, (t, p, r) in enumerate(ttft, start=1):
        print(f"  {i:2d}: {p:5d} / {r:5d} / {t * 1e3:6.1f}")
    print()
    print(f"| fitting a long chat into n_ctx {engine.llm.n_ctx():,} | now (bisection, fragments tokenized once) "
          "| one pair at a time (before) | messages dropped |")
    print("|---:|---:|---:|---:|")
    for n, now, before, dropped in fits:
        print(f"| {n:,} messages | {now * 1e3:,.0f} ms | {f'{before * 1e3:,.0f} ms' if before else 'not run (minutes)'} "
              f"| {dropped:,} |")
    engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
