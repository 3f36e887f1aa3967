"""Quantization quality on Chinese text with no, English-calibrated and Chinese-calibrated importance matrices.

    python bench/quant_quality.py [--steps 300] [--skip-memory]

1. A Mixtral-shaped tiny model (2 layers, hidden 256, 4 experts) that has learned something: 4-bit QLoRA on
   the demo's 13 Chinese conversations (aurora-train, as ./run demo does), merged and exported to F16.
2. Importance matrices from Aurora's shipped English and Chinese calibration texts (aurora-export imatrix).
3. Q2_K, Q3_K_M, IQ3_XXS and Q4_K_M with (a) no importance matrix, (b) the English one, (c) the Chinese one
   (IQ3_XXS cannot be made without one); each scored on the held-out Chinese text (kept apart from the
   calibration text) and on the demo's own answers: perplexity, and mean KL divergence from the F16 export.
4. Memory: `aurora-export imatrix` on the export benchmark's 2.2 GB Mixtral-shaped checkpoint (12 layers,
   hidden 1024, 8 experts, 5 shards), peak RSS against its largest shard + 2 GiB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sysconfig.get_path("scripts"))
TYPES = ("q2_k", "q3_k_m", "iq3_xxs", "q4_k_m")


def run(*argv) -> None:
    subprocess.run([str(a) for a in argv], check=True, capture_output=True, text=True)


def trained_model(work: Path, steps: int) -> tuple[Path, Path, Path]:
    base, data, out = work / "base", work / "data", work / "run"
    run(BIN / "aurora-train", "tiny-base", "--out", base, "--force", "--hidden", "256", "--intermediate", "512",
        "--heads", "4", "--kv-heads", "2")
    run(BIN / "aurora-data", ROOT / "packaging/demo/alpaca_demo_zh.json", "--out", data, "--force", "--val-ratio",
        "0", "--tokenizer", base, "--no-progress")
    if out.exists():
        import shutil

        shutil.rmtree(out)
    run(BIN / "aurora-train", "run", ROOT / "packaging/demo/train.yaml", f"base={base}", f"data={data}",
        f"out={out}", f"max_steps={steps}", "--no-progress")
    run(BIN / "aurora-export", "gguf", "--base", base, "--adapter", out / "adapter", "--out", work / "model-f16.gguf",
        "--type", "f16", "--force", "--no-progress")
    return base, out / "adapter", work / "model-f16.gguf"


def demo_answers() -> str:
    rows = json.loads((ROOT / "packaging/demo/alpaca_demo_zh.json").read_text())
    return "\n".join(r["output"] for r in rows)


def peak_rss(argv: list) -> tuple[float, int]:
    code = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
            "rc = subprocess.run(sys.argv[1:]).returncode; "
            "print(rc, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)")
    out = subprocess.run([sys.executable, "-c", code, *map(str, argv)], capture_output=True, text=True)
    rc, secs, peak = out.stdout.split()[-3:]
    if int(rc):
        raise SystemExit(out.stderr[-2000:])
    return float(secs), int(peak)


def memory(work: Path) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    from export_bench import make_adapter

    from aurora_training.tiny import TinyBaseConfig, write_tiny_base

    base = work / "big-base"
    if not (base / "config.json").exists():
        write_tiny_base(base, TinyBaseConfig(layers=12, hidden=1024, intermediate=3584, heads=8, kv_heads=2,
                                             experts=8, top_k=2, shards=5), force=True)
        make_adapter(base, work / "big-adapter")
    shards = sorted(base.glob("model-*.safetensors"))
    largest = max(p.stat().st_size for p in shards)
    secs, peak = peak_rss([BIN / "aurora-export", "imatrix", "--base", base, "--adapter", work / "big-adapter",
                           "--text", "zh", "--out", work / "big-imatrix.gguf", "--chunk-size", "512", "--force",
                           "--no-progress"])
    limit = largest + 2 * 2**30
    print("\n| imatrix on the export benchmark's checkpoint | seconds | peak RSS MiB | largest shard + 2 GiB | target |")
    print("|---|---:|---:|---:|---|")
    print(f"| {sum(p.stat().st_size for p in shards) / 1e9:.2f} GB, 12 layers, {len(shards)} shards | {secs:.1f} | "
          f"{peak / 2**20:,.0f} | {limit / 2**20:,.0f} | {'met' if peak <= limit else 'MISSED'} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--memory-only", action="store_true")
    parser.add_argument("--workdir", type=Path, default=Path("bench-output/quant"))
    args = parser.parse_args()
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    if args.memory_only:
        memory(work)
        return 0

    from aurora_export.imatrix import build, read, shipped_text, text_of
    from aurora_export.quantize import quantize
    from aurora_export.verify import quality

    t = time.perf_counter()
    base, adapter, f16 = trained_model(work, args.steps)
    matrices = {}
    for lang in ("en", "zh"):
        path = build(base, adapter, [shipped_text(lang)], work / f"imatrix-{lang}.gguf", chunk_size=128,
                     progress=False)
        matrices[lang] = read(path)
    files = {}
    for qtype in TYPES:
        for calib in ("none", "en", "zh"):
            if calib == "none" and qtype.startswith("iq"):
                continue
            dst = work / f"model-{qtype}-{calib}.gguf"
            quantize(f16, dst, qtype, progress=False, imatrix=None if calib == "none" else matrices[calib])
            files[(qtype, calib)] = dst
    texts = {"held-out Chinese": text_of(shipped_text("heldout-zh")), "the demo's answers": demo_answers()}
    results = {}
    for name, text in texts.items():
        rows = quality([f16, *files.values()], f16, text, base / "tokenizer.model", chunk_size=64)
        results[name] = {r.file: r for r in rows}
    print(f"model: tiny Mixtral (2 layers, hidden 256, 4 experts), QLoRA {args.steps} steps on the demo data; "
          f"F16 reference; {time.perf_counter() - t:.0f} s")
    for name in texts:
        ref = results[name][f16]
        print(f"\n{name}: F16 perplexity {ref.perplexity:.3f}")
        print("| type | perplexity: none / en / zh | KL vs F16: none / en / zh |")
        print("|---|---|---|")
        for qtype in TYPES:
            cells = [results[name].get(files.get((qtype, c))) for c in ("none", "en", "zh")]
            ppl = " / ".join(f"{r.perplexity:.3f}" if r else "n/a" for r in cells)
            kl = " / ".join(f"{r.kl_vs_reference:.4f}" if r else "n/a" for r in cells)
            print(f"| {qtype} | {ppl} | {kl} |")
    if not args.skip_memory:
        memory(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
