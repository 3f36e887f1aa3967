"""`aurora-eval`: 5-shot C-Eval, MMLU and CMMLU (not built yet)."""

from __future__ import annotations

import argparse
import sys

from aurora_core.errors import not_built, run_main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aurora-eval",
        description="5-shot evaluation on C-Eval, MMLU and CMMLU, as in the Aurora paper. Not built yet.",
    )
    parser.add_argument("model", help="GGUF file or Hugging Face checkpoint folder")
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_main("aurora-eval", lambda: (build_parser().parse_args(argv), not_built("aurora-eval", "evaluation"))[1])


if __name__ == "__main__":
    sys.exit(main())
