"""`aurora-export`: the export stage's command table (not built yet)."""

from __future__ import annotations

import argparse
import sys

from aurora_training.cli import not_built

COMMANDS = {
    "gguf": "merge the adapter into the base and write GGUF files (f16, q8_0, q4_k_m, ...)",
    "merge": "write a merged Hugging Face checkpoint, shard by shard",
    "lora": "write the adapter alone as a GGUF LoRA",
    "verify": "compare llama.cpp's logits on a GGUF with the Hugging Face model's",
    "inspect": "print what a GGUF file holds",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aurora-export",
        description="Aurora export: turn the Mixtral base and the QLoRA adapter into GGUF files that "
        "llama.cpp runs. Not built yet (issue #3).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=f"{help_text} (not built yet)")
        p.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return not_built(f"aurora-export {args.command}", COMMANDS[args.command], 3)


if __name__ == "__main__":
    sys.exit(main())
