"""`aurora-data`: read, clean and format the Chinese instruction datasets (not built yet)."""

from __future__ import annotations

import argparse
import sys

from aurora_desktop import not_built


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aurora-data",
        description="Turn alpaca_data_zh_51k, alpaca_gpt4_data_zh and ShareGPT-Chinese-English-90k into "
        "cleaned, training-ready conversations with a report. Not built yet (issue #4).",
    )
    parser.add_argument("inputs", nargs="*", help="dataset files")
    return parser


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)
    return not_built("aurora-data", "data preparation", 4)


if __name__ == "__main__":
    sys.exit(main())
