"""Throughput and peak memory of `aurora-data` at the paper's scale.

Generates 180,000 synthetic conversations in the three real formats (two alpaca JSON arrays of the
sizes of alpaca_data_zh_51k and alpaca_gpt4_data_zh, and a shareAI/Firefly JSONL like
ShareGPT-Chinese-English-90k, multi-turn), then times the full clean + token-length run of the
`aurora-data` command (tiny kit tokenizer, --max-tokens 1024, report) in a child process and prints
a table. Target: under 60 s with peak RSS under 1 GiB on a 2-core machine.

    python bench/data_bench.py [--scale 1.0] [--workdir bench-output/data]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

SIZES = {"alpaca_data_zh_51k.json": 51_000, "alpaca_gpt4_data_zh.json": 49_000, "sharegpt_zh_en_90k.jsonl": 80_000}
CATEGORIES = ["Brainstorming", "Coding", "Translation", "Summarization", "Open QA", "Writing", "Math", "Chat"]


def sentences() -> list[str]:
    from aurora_training.tiny import corpus_lines

    return [line for line in corpus_lines() if not line.startswith("#")]


def text(rng: random.Random, pool: list[str], n: int) -> str:
    return "".join(rng.choice(pool) for _ in range(n)) + f" #{rng.randrange(10**9)}"


def generate(folder: Path, scale: float) -> list[Path]:
    rng = random.Random(0)
    pool = sentences()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, size in SIZES.items():
        n = int(size * scale)
        path = folder / name
        paths.append(path)
        with open(path, "w", encoding="utf-8") as f:
            if name.endswith(".json"):
                f.write("[\n")
                for i in range(n):
                    row = {"instruction": text(rng, pool, 1), "input": text(rng, pool, 1) if i % 3 == 0 else "",
                           "output": text(rng, pool, rng.randint(1, 6))}
                    f.write(json.dumps(row, ensure_ascii=False) + (",\n" if i < n - 1 else "\n"))
                f.write("]\n")
            else:
                for i in range(n):
                    pairs = [{"human": text(rng, pool, 1), "assistant": text(rng, pool, rng.randint(1, 5))}
                             for _ in range(rng.choice((1, 1, 2, 3, 4)))]
                    row = {"conversation_id": i, "category": rng.choice(CATEGORIES), "conversation": pairs}
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the paper's 180,000 conversations")
    parser.add_argument("--workdir", type=Path, default=Path("bench-output/data"))
    args = parser.parse_args()

    from aurora_training.tiny import TinyBaseConfig, write_tiny_base

    kit = write_tiny_base(args.workdir / "tiny-base", TinyBaseConfig(), force=True)
    inputs = generate(args.workdir / "inputs", args.scale)
    total_bytes = sum(p.stat().st_size for p in inputs)
    command = [str(Path(sysconfig.get_path("scripts")) / "aurora-data"), *map(str, inputs),
               "--out", str(args.workdir / "out"), "--force", "--no-progress", "--tokenizer", str(kit),
               "--max-tokens", "1024", "--report", str(args.workdir / "report")]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if result.returncode:
        print(result.stderr, file=sys.stderr)
        return result.returncode
    n = sum(int(s * args.scale) for s in SIZES.values())
    print(result.stdout.strip())
    print()
    print("| conversations | input MB | wall s | conversations/s | MB/s | peak RSS MiB | target |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    ok = wall < 60 * args.scale and peak_mib < 1024
    print(f"| {n:,} | {total_bytes / 1e6:.1f} | {wall:.1f} | {n / wall:,.0f} | {total_bytes / 1e6 / wall:.1f} "
          f"| {peak_mib:.0f} | {'met' if ok else 'MISSED'} (< 60 s, < 1024 MiB) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
