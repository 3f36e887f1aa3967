"""`aurora-desktop`: the PySide6 chat window (not built yet)."""

from __future__ import annotations

import argparse
import sys

from aurora_core.errors import not_built


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aurora-desktop",
        description="Aurora Desktop: a PySide6 window for offline multi-turn Chinese chat with a GGUF model "
        "exported by aurora-export. Not built yet.",
    )
    parser.add_argument("model", nargs="?", help="GGUF model file to open")
    return parser


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)
    return not_built("aurora-desktop", "the desktop window")


if __name__ == "__main__":
    sys.exit(main())
