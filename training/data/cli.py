"""`aurora-data`: the command line over `prepare` and `write_report`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aurora_core.cli import HelpFormatter
from aurora_core.errors import run_main

from .prepare import check_writable_folder, prepare
from .report import write_report
from .settings import FORMATS, DataConfig

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aurora-data",
        description="Turn alpaca_data_zh_51k, alpaca_gpt4_data_zh and ShareGPT-Chinese-English-90k (or any "
        "file in the alpaca, firefly, sharegpt or openai-messages format) into cleaned, training-ready "
        "conversations: OUT/train.jsonl, OUT/validation.jsonl and OUT/manifest.json. Every cleaning rule "
        "is counted; --report DIR writes report.md with the paper's Table 1 layout and charts.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", type=Path, help="dataset files (.json arrays or .jsonl)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--force", action="store_true", help="replace prepared data already in --out")
    parser.add_argument("--report", type=Path, help="write report.md and PNG charts into this folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    defaults = DataConfig()
    parser.add_argument("--format", default=defaults.format, choices=("auto", *FORMATS), help="input format")
    parser.add_argument("--min-chars", type=int, default=defaults.min_chars, help="shortest allowed turn")
    parser.add_argument("--min-chinese", type=float, default=defaults.min_chinese,
                        help="least Chinese share: CJK chars / (CJK chars + Latin words)")
    parser.add_argument("--keep-english", action="store_true", help="keep conversations below --min-chinese")
    parser.add_argument("--near-dup", action="store_true", help="also drop near duplicates (SimHash)")
    parser.add_argument("--tokenizer", help="tokenizer.model or base checkpoint folder, for --max-tokens")
    parser.add_argument("--max-tokens", type=int, default=defaults.max_tokens,
                        help="longest conversation in template tokens (needs --tokenizer)")
    parser.add_argument("--overlong", default=defaults.overlong, choices=("drop", "cut"),
                        help="drop an over-long conversation, or cut it at a turn boundary")
    parser.add_argument("--val-ratio", type=float, default=defaults.val_ratio, help="validation share")
    parser.add_argument("--skip-invalid", action="store_true",
                        help="go on past malformed lines and unknown records, counting them")
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_main("aurora-data", lambda: _data(build_parser().parse_args(argv)))


def _data(args) -> int:
    cfg = DataConfig(format=args.format, min_chars=args.min_chars, min_chinese=args.min_chinese,
                     keep_english=args.keep_english, near_dup=args.near_dup, tokenizer=args.tokenizer,
                     max_tokens=args.max_tokens, overlong=args.overlong, val_ratio=args.val_ratio,
                     skip_invalid=args.skip_invalid)
    if args.report:
        check_writable_folder(args.report, "--report")
    report = prepare(args.inputs, args.out, cfg, force=args.force, progress=not args.no_progress)
    if args.report:
        write_report(report, args.report)
    kept = report.split["train"] + report.split["validation"]
    print(f"kept {kept:,} of {sum(report.read.values()):,} conversations "
          f"({report.split['train']:,} train, {report.split['validation']:,} validation) in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
