"""aurora-eval throughput: the few-shot prefix kept in llama.cpp's KV cache vs each full prompt evaluated anew.

    python bench/eval_bench.py

A Mixtral-shaped GGUF (4 layers, hidden 512, 8 experts, Q8_0) scores 2 CMMLU-layout subjects of 40
questions, 5-shot, both ways in one run; then the same model as a Hugging Face folder through transformers.
"""

from __future__ import annotations

import csv
import sys
import tempfile
import time
from pathlib import Path


def make_sets(root: Path, per_subject: int = 40) -> Path:
    from aurora_eval.demo_sets import QUESTIONS

    rows = QUESTIONS["general"] + QUESTIONS["math"]
    for key in ("elementary_commonsense", "elementary_mathematics"):
        for split, n in (("dev", 5), ("test", per_subject)):
            path = root / "cmmlu" / split / f"{key}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w", encoding="utf-8", newline="") as f:
                w = csv.writer(f)
                w.writerow(["", "Question", "A", "B", "C", "D", "Answer"])
                for i in range(n):
                    q = rows[i % len(rows)]
                    w.writerow([i, f"{q[0]}（第{i}题）", *q[1:]])
    return root / "cmmlu"


def model(work: Path) -> tuple[Path, Path]:
    from aurora_export.pipeline import ExportConfig, export_gguf
    from aurora_training.tiny import TinyBaseConfig, write_tiny_base

    base, gguf = work / "base", work / "eval-bench-q8_0.gguf"
    if not gguf.exists():
        write_tiny_base(base, TinyBaseConfig(layers=4, hidden=512, intermediate=1024, heads=8, kv_heads=2, experts=8,
                                             dtype="float32"), force=True)
        export_gguf(ExportConfig(base, gguf, types="q8_0", force=True, progress=False))
    return base, gguf


def timed(backend, data, out, settings) -> tuple[float, int, int]:
    from aurora_eval.run import evaluate

    t = time.perf_counter()
    results = evaluate(backend, data, out, settings, progress=False, force=True)
    seconds = time.perf_counter() - t
    return seconds, results["benchmarks"]["cmmlu"]["questions"], backend.evaluated


def main() -> int:
    from aurora_eval.backends import GGUFBackend, HFBackend
    from aurora_eval.run import EvalSettings

    work = Path("bench-output/eval")
    work.mkdir(parents=True, exist_ok=True)
    base, gguf = model(work)
    with tempfile.TemporaryDirectory() as tmp:
        data = {"cmmlu": make_sets(Path(tmp))}
        settings = EvalSettings(model=str(gguf))
        rows = []
        for label, reuse in (("prefix kept in the KV cache", True), ("each full prompt evaluated", False)):
            backend = GGUFBackend(gguf, 2048, threads=2, reuse_prefix=reuse)
            try:
                secs, n, tokens = timed(backend, data, Path(tmp) / label[:6], settings)
            finally:
                backend.close()
            rows.append((f"llama.cpp, {label}", n, secs, tokens))
        hf = HFBackend(base)
        secs, n, tokens = timed(hf, data, Path(tmp) / "hf", EvalSettings(model=str(base)))
        rows.append(("transformers (float32), each full prompt", n, secs, tokens))
    print(f"model: {gguf.name} ({gguf.stat().st_size / 2**20:,.0f} MiB) and its Hugging Face folder; CMMLU layout, "
          "5-shot, 2 subjects x 40 questions, 2 threads")
    print()
    print("| backend | questions | seconds | questions/s | prompt tokens evaluated |")
    print("|---|---:|---:|---:|---:|")
    for label, n, secs, tokens in rows:
        print(f"| {label} | {n} | {secs:.2f} | {n / secs:.1f} | {tokens:,} |")
    speedup = (rows[0][1] / rows[0][2]) / (rows[1][1] / rows[1][2])
    print(f"\nprefix reuse speed-up: {speedup:.2f}x (target >= 3x) {'met' if speedup >= 3 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
