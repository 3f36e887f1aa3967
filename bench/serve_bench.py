"""aurora-serve against the engine in the same process: tokens/s and time to first token through HTTP.

Uses chat_bench's Mixtral-shaped Q8_0 GGUF (4 layers, hidden 1024, 8 experts of 3584; built on first use), the
same greedy settings and prompt for both, median of --repeats alternating runs:

  in-process   ChatEngine.stream
  server       aurora-serve on 127.0.0.1, streamed chat completion read with the official `openai` client

Targets: tokens/s through the server >= 0.95x in-process; time to first token at most 20 ms more.

    python bench/serve_bench.py [--tokens 128] [--repeats 5] [--workdir bench-output/chat]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from chat_bench import SETTINGS, build  # noqa: E402  -- the same model as the chat benchmark

PROMPT = [{"role": "user", "content": "请详细介绍一下混合专家模型的工作原理。"}]


def in_process(engine, tokens: int) -> tuple[float, float]:
    from aurora_desktop.conversation import Conversation
    from aurora_desktop.engine import SamplingSettings, consume

    conv = Conversation()  # the same prompt each time: both paths reuse it from the KV cache
    conv.add_user(PROMPT[0]["content"])
    gen = consume(engine.stream(conv, SamplingSettings(max_tokens=tokens, **SETTINGS)))
    return gen.completion_tokens / (gen.seconds - gen.time_to_first_token), gen.time_to_first_token


def through_server(client, tokens: int) -> tuple[float, float]:
    start, first, count = time.perf_counter(), None, 0
    extra = {k: v for k, v in SETTINGS.items() if k not in ("temperature", "top_p")}  # Aurora's own keys
    for chunk in client.chat.completions.create(model="aurora", messages=PROMPT, stream=True, max_tokens=tokens,
                                                temperature=SETTINGS["temperature"], top_p=SETTINGS["top_p"],
                                                extra_body=extra):
        if chunk.choices and chunk.choices[0].delta.content:
            count += 1
            first = first or time.perf_counter()
        if chunk.usage:
            count = chunk.usage.completion_tokens
    end = time.perf_counter()
    return count / (end - first), first - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=Path("bench-output/chat"))
    parser.add_argument("--threads", type=int, default=1,
                        help="llama.cpp threads for both (default 1: on 2 cores the other core runs the client)")
    args = parser.parse_args()
    import openai

    from aurora_desktop.engine import ChatEngine, EngineConfig

    model = build(args.workdir)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tempfile.mkdtemp()
    server = subprocess.Popen([str(Path(sysconfig.get_path("scripts")) / "aurora-serve"), str(model), "--port",
                               str(port), "--threads", str(args.threads), "--ctx", "4096"], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "XDG_CONFIG_HOME": config})
    key = server.stdout.readline().split("API key: ")[1].split()[0]
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=5)
    engine = ChatEngine(model, EngineConfig(n_ctx=4096, n_threads=args.threads))
    try:
        through_server(client, 4)  # warm both
        in_process(engine, 4)
        local, served = [], []
        for _ in range(args.repeats):  # alternating, so drift hits both
            local.append(in_process(engine, args.tokens))
            served.append(through_server(client, args.tokens))
    finally:
        engine.close()
        server.terminate()
        server.wait(timeout=30)
    tps = [statistics.median(r[0] for r in rows) for rows in (local, served)]
    ttft = [statistics.median(r[1] for r in rows) * 1000 for rows in (local, served)]
    print(f"{model.name}, {args.tokens} tokens, greedy, {args.threads} llama.cpp thread(s), median of {args.repeats} "
          "alternating runs\n")
    print("| path | decode tokens/s | time to first token ms |")
    print("|---|---:|---:|")
    print(f"| in-process ChatEngine.stream | {tps[0]:.1f} | {ttft[0]:.1f} |")
    print(f"| aurora-serve, streamed, official openai client | {tps[1]:.1f} | {ttft[1]:.1f} |")
    print(f"\ntokens/s ratio {tps[1] / tps[0]:.3f} (target >= 0.95 {'met' if tps[1] / tps[0] >= 0.95 else 'MISSED'}); "
          f"added TTFT {ttft[1] - ttft[0]:.1f} ms (target <= 20 {'met' if ttft[1] - ttft[0] <= 20 else 'MISSED'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
