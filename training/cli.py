"""`aurora-train`: the training side's command table.

    aurora-train tiny-base --out DIR      write the tiny Mixtral-shaped checkpoint kit
    aurora-train run CONFIG.yaml          QLoRA fine-tuning (not built yet)
    aurora-train estimate CONFIG.yaml     GPU memory estimate (not built yet)
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields

from aurora_desktop import not_built  # one message for every command whose feature is missing

from .tiny import TinyBaseConfig, write_tiny_base


def _tiny_base(args: argparse.Namespace) -> int:
    cfg = TinyBaseConfig(**{f.name: getattr(args, f.name) for f in fields(TinyBaseConfig)})
    out = write_tiny_base(args.out, cfg, force=args.force)
    print(f"wrote tiny Mixtral checkpoint to {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aurora-train",
        description="Aurora training: QLoRA fine-tuning of Mixtral-8x7B-Instruct on Chinese instructions, "
        "and the tiny Mixtral-shaped checkpoint kit used by the tests, the demo and the benchmarks.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    tiny = sub.add_parser(
        "tiny-base",
        help="write a tiny Mixtral checkpoint in the real Mixtral-8x7B-Instruct layout",
        description="Write a complete Hugging Face checkpoint folder (config.json, sharded safetensors with "
        "index, SentencePiece tokenizer.model, tokenizer_config.json with the chat template) for a tiny "
        "MixtralForCausalLM with random weights. The same --seed gives byte-identical files.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    tiny.add_argument("--out", required=True, help="output folder (created; must be empty unless --force)")
    tiny.add_argument("--force", action="store_true", help="replace an existing non-empty output folder")
    defaults = TinyBaseConfig()
    for f in fields(TinyBaseConfig):
        flag = "--" + f.name.replace("_", "-")
        tiny.add_argument(flag, dest=f.name, type=type(getattr(defaults, f.name)), default=getattr(defaults, f.name),
                          help=_field_doc(f.name))
    tiny.set_defaults(func=_tiny_base)

    run = sub.add_parser("run", help="QLoRA fine-tuning from a YAML config (not built yet)",
                         description="QLoRA fine-tuning of Mixtral from a YAML config. Not built yet (issue #5).")
    run.add_argument("config")
    run.set_defaults(func=lambda a: not_built("aurora-train run", "QLoRA training", 5))

    est = sub.add_parser("estimate", help="GPU memory estimate for a config (not built yet)",
                         description="GPU memory estimate for a training config. Not built yet (issue #5).")
    est.add_argument("config")
    est.set_defaults(func=lambda a: not_built("aurora-train estimate", "the memory estimate", 5))
    return parser


_DOCS = {
    "layers": "decoder blocks", "hidden": "hidden size", "intermediate": "feed-forward size of each expert",
    "heads": "attention heads", "kv_heads": "key/value heads", "experts": "experts per block",
    "top_k": "experts used per token", "vocab": "target SentencePiece vocabulary size",
    "context": "max_position_embeddings", "shards": "number of safetensors shards (>= 2)",
    "dtype": "weight dtype on disk: bfloat16, float16 or float32", "seed": "seed for the random weights",
}


def _field_doc(name: str) -> str:
    return _DOCS[name]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileExistsError) as exc:
        print(f"aurora-train: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
