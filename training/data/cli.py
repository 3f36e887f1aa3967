"""`aurora-data`: the command line over `prepare` and `write_report`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aurora_core.cli import HelpFormatter, add_config_options, config_from_args
from aurora_core.errors import run_main

from .prepare import check_writable_folder, prepare
from .report import write_report
from .settings import FORMATS, OVERLONG, DataConfig


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
    add_config_options(parser, DataConfig, choices={"format": ("auto", *FORMATS), "overlong": OVERLONG})
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_main("aurora-data", lambda: _data(build_parser().parse_args(argv)))


def _data(args) -> int:
    cfg = config_from_args(DataConfig, args)
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
