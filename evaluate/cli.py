"""`aurora-eval`: C-Eval, CMMLU and MMLU, 5-shot, by each benchmark's official protocol.

    aurora-eval aurora-q4_k_m.gguf --ceval ceval-exam/ --cmmlu CMMLU/data/ --mmlu data/ --out eval/q4_k_m
    aurora-eval Mixtral-8x7B-Instruct-v0.1 --adapter runs/aurora/adapter --load-in-4bit --cmmlu CMMLU/data
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aurora_core.cli import HelpFormatter
from aurora_core.errors import AuroraError, run_main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="aurora-eval", formatter_class=HelpFormatter,
        description="Score a model on C-Eval (val), CMMLU and MMLU with each benchmark's official prompt, "
        "few-shot examples and answer-token rule, from the next-token distribution (no generation). MODEL is a "
        "GGUF file (llama.cpp; each subject's few-shot prefix is evaluated once and kept in the KV cache) or a "
        "Hugging Face folder (transformers; optionally with a PEFT adapter, optionally in 4-bit). Writes "
        "OUT/predictions.jsonl as it goes (a killed run continues from it), results.json, results.md and "
        "results.png (this run among published results, each with its protocol).")
    p.add_argument("model", nargs="?", help="GGUF file, or Hugging Face model folder")
    p.add_argument("--write-demo-sets", type=Path, metavar="DIR",
                   help="write a few questions in each benchmark's official layout into DIR, and stop")
    p.add_argument("--ceval", type=Path, help="C-Eval folder (dev/, val/, subject_mapping.json)")
    p.add_argument("--cmmlu", type=Path, help="CMMLU data folder (dev/, test/)")
    p.add_argument("--mmlu", type=Path, help="MMLU data folder (dev/, test/)")
    p.add_argument("--out", type=Path, default=Path("eval-results"), help="results folder")
    p.add_argument("--shots", type=int, default=5, help="few-shot examples: the first k dev questions")
    p.add_argument("--max-length", type=int, default=2048,
                   help="prompt tokens; longer prompts drop shots by each benchmark's rule")
    p.add_argument("--limit", type=int, help="score at most N questions per subject (a quick look)")
    p.add_argument("--subjects", help="comma list of subject file names (e.g. college_law,virology)")
    p.add_argument("--mmlu-split", default="test", choices=("test", "val"), help="MMLU split")
    p.add_argument("--chat", action="store_true",
                   help="wrap each prompt in the model's chat template (reported as a different protocol)")
    p.add_argument("--adapter", help="PEFT adapter folder (Hugging Face model only)")
    p.add_argument("--load-in-4bit", action="store_true", help="load the Hugging Face model in NF4")
    p.add_argument("--threads", type=int, help="llama.cpp threads")
    p.add_argument("--force", action="store_true", help="start over in OUT instead of continuing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _eval(args) -> int:
    from aurora_core.files import fingerprint

    from .backends import open_backend
    from .report import table, write_results
    from .run import EvalSettings, evaluate

    if args.write_demo_sets:
        from .demo_sets import write_demo_sets

        for name, folder in write_demo_sets(args.write_demo_sets).items():
            print(f"wrote {folder} ({name} layout)")
        return 0
    if not args.model:
        raise AuroraError("name a MODEL (a GGUF file or a Hugging Face folder)")
    data = {k: getattr(args, k) for k in ("ceval", "cmmlu", "mmlu") if getattr(args, k)}
    if not data:
        raise AuroraError("name at least one benchmark folder: --ceval, --cmmlu or --mmlu")
    if args.shots < 0 or args.max_length < 64 or (args.limit is not None and args.limit < 1):
        raise AuroraError("--shots must be >= 0, --max-length >= 64 and --limit >= 1")
    if not Path(args.model).exists():
        raise AuroraError(f"{args.model}: no such file or folder; name a GGUF file or a Hugging Face folder")
    settings = EvalSettings(model=str(Path(args.model).resolve()), shots=args.shots, max_length=args.max_length,
                            chat=args.chat, split={"mmlu": args.mmlu_split},
                            fingerprint=fingerprint(args.model, args.adapter))
    backend = open_backend(args.model, args.max_length, args.adapter, args.load_in_4bit, args.threads)
    try:
        subjects = [s.strip() for s in args.subjects.split(",")] if args.subjects else None
        results = evaluate(backend, data, args.out, settings, subjects, args.limit, not args.no_progress, args.force)
    finally:
        backend.close()
    paths = write_results(results, args.out, backend.name)
    print(table(results, backend.name))
    print(f"\nwrote {paths['md']}, {paths['json']}, {paths['png']} and {args.out / 'predictions.jsonl'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main("aurora-eval", lambda: _eval(build_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
