"""`aurora-chat`: offline multi-turn chat in the terminal (not built yet)."""

from __future__ import annotations

import argparse
import sys

from . import not_built


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aurora-chat",
        description="Chat with a GGUF model in the terminal, offline, through llama.cpp. "
        "Not built yet (issue #6).",
    )
    parser.add_argument("model", help="GGUF model file")
    parser.add_argument("--prompt", help="answer one prompt and exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)
    return not_built("aurora-chat", "the chat REPL", 6)


if __name__ == "__main__":
    sys.exit(main())
