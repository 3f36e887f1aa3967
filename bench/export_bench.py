"""Wall time and peak RSS of `aurora-export gguf --type q4_k_m` against the naive path, in one run.

Builds a Mixtral-shaped bf16 checkpoint of at least 2 GB with the tiny kit (default: 12 layers,
hidden 1024, 8 experts of 3584, 5 shards, 1.06 B parameters) and a rank-8 LoRA adapter on q/k/v/o and
every expert's w1/w2/w3 (B non-zero), then measures, each in its own child process:

  aurora   aurora-export gguf --base --adapter --type q4_k_m (streamed merge -> F16 GGUF -> llama.cpp)
  naive    transformers load + peft merge_and_unload + save_pretrained, then GGUF F16 of the merged
           copy and the same llama.cpp quantizer

Peak RSS is the child's ru_maxrss. Target: aurora's peak <= largest shard + 1 GiB and <= half of
naive's; time no worse than naive's.

    python bench/export_bench.py [--layers 12] [--workdir bench-output/export]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import time
from pathlib import Path

MEASURE = textwrap.dedent("""
    import resource, subprocess, sys, time
    t = time.perf_counter()
    rc = subprocess.run(sys.argv[1:]).returncode
    print(rc, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
""")

NAIVE = textwrap.dedent("""
    import shutil, sys
    from pathlib import Path
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    from aurora_export.checkpoint import Checkpoint
    from aurora_export.gguf_model import write_model_gguf
    from aurora_export.merge import Merger
    from aurora_export.quantize import quantize
    base, adapter, work = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16)
    model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    merged = work / "merged"
    model.save_pretrained(merged, max_shard_size="1GB")
    del model
    for f in ("tokenizer.model", "tokenizer_config.json"):
        shutil.copy2(base / f, merged / f)
    f16 = work / "naive-f16.gguf"
    write_model_gguf(f16, Merger(Checkpoint(merged)), "f16", progress=False)
    quantize(f16, work / "naive-q4_k_m.gguf", "q4_k_m", progress=False)
""")


def make_adapter(base: Path, out: Path, r: int = 8) -> Path:
    """A PEFT-format LoRA adapter written directly (loading a 1 B model through peft just to save it is slow)."""
    import torch
    from safetensors.torch import save_file

    from aurora_core import mixtral

    _, shape = mixtral.read_config(base)
    g = torch.Generator().manual_seed(0)
    tensors = {}
    for ref in mixtral.tensors(shape):
        if ref.spec.qlora_4bit:  # LoRA on every projection QLoRA holds in 4-bit
            o, i = ref.shape(shape)
            key = "base_model.model." + ref.hf_name[: -len(".weight")]
            tensors[f"{key}.lora_A.weight"] = torch.randn(r, i, generator=g) / i ** 0.5
            tensors[f"{key}.lora_B.weight"] = torch.randn(o, r, generator=g) * 0.01
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    (out / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": 2 * r, "lora_dropout": 0.0,
        "bias": "none", "base_model_name_or_path": str(base), "use_rslora": False, "fan_in_fan_out": False,
        "target_modules": list(mixtral.QLORA_4BIT_MODULES),
    }, indent=2))
    return out


def measure(argv: list[str]) -> tuple[float, int]:
    out = subprocess.run([sys.executable, "-c", MEASURE, *argv], capture_output=True, text=True)
    rc, wall, peak = out.stdout.split()[-3:]
    if int(rc):
        raise SystemExit(f"{argv[:3]} failed:\n{out.stderr[-3000:]}")
    return float(wall), int(peak)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--intermediate", type=int, default=3584)
    parser.add_argument("--shards", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=Path("bench-output/export"))
    args = parser.parse_args()

    from aurora_training.tiny import TinyBaseConfig, write_tiny_base

    work = args.workdir
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    t = time.perf_counter()
    base = write_tiny_base(work / "base", TinyBaseConfig(layers=args.layers, hidden=args.hidden,
                                                         intermediate=args.intermediate, heads=8, kv_heads=2,
                                                         experts=8, top_k=2, shards=args.shards))
    adapter = make_adapter(base, work / "adapter")
    shards = sorted(base.glob("model-*.safetensors"))
    size = sum(p.stat().st_size for p in shards)
    largest = max(p.stat().st_size for p in shards)
    print(f"built {size / 1e9:.2f} GB checkpoint ({len(shards)} shards, largest {largest / 2**20:,.0f} MiB) "
          f"in {time.perf_counter() - t:.0f} s", flush=True)

    exe = str(Path(sysconfig.get_path("scripts")) / "aurora-export")
    aurora = measure([exe, "gguf", "--base", str(base), "--adapter", str(adapter), "--out",
                      str(work / "aurora-q4_k_m.gguf"), "--type", "q4_k_m", "--no-progress"])
    naive = measure([sys.executable, "-c", NAIVE, str(base), str(adapter), str(work)])

    limit = largest + 2**30
    print()
    print("| path | wall s | peak RSS MiB | output MiB |")
    print("|---|---:|---:|---:|")
    for name, (wall, peak), out in (("aurora-export gguf (streamed)", aurora, work / "aurora-q4_k_m.gguf"),
                                    ("naive: peft merge + save_pretrained + GGUF", naive, work / "naive-q4_k_m.gguf")):
        print(f"| {name} | {wall:.1f} | {peak / 2**20:,.0f} | {out.stat().st_size / 2**20:,.0f} |")
    print()
    print(f"checkpoint {size / 1e9:.2f} GB bf16, largest shard {largest / 2**20:,.0f} MiB")
    print(f"peak RSS ratio aurora/naive: {aurora[1] / naive[1]:.2f} (target <= 0.50); "
          f"aurora peak vs largest shard + 1 GiB: {aurora[1] / 2**20:,.0f} <= {limit / 2**20:,.0f} MiB "
          f"{'met' if aurora[1] <= limit else 'MISSED'}")
    print(f"time ratio aurora/naive: {aurora[0] / naive[0]:.2f} (target <= 1.00)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
