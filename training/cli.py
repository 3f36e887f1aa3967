"""`aurora-train`: the training side's command table.

    aurora-train tiny-base --out DIR      write the tiny Mixtral-shaped checkpoint kit
    aurora-train run CONFIG.yaml [key=value ...] [--resume]   QLoRA fine-tuning
    aurora-train estimate [CONFIG.yaml] [key=value ...] [--gpus N --fsdp [--offload]]   GPU memory, part by part
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields

from aurora_core.cli import HelpFormatter, add_config_options, config_from_args, field_docs
from aurora_core.errors import AuroraError, run_main

from .config import TrainConfig
from .tiny import TinyBaseConfig, write_tiny_base


def _tiny_base(args: argparse.Namespace) -> int:
    try:
        cfg = config_from_args(TinyBaseConfig, args)
    except ValueError as exc:
        raise AuroraError(str(exc)) from None
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
        formatter_class=HelpFormatter,
    )
    tiny.add_argument("--out", required=True, help="output folder (created; must be empty unless --force)")
    tiny.add_argument("--force", action="store_true", help="replace an existing non-empty output folder")
    add_config_options(tiny, TinyBaseConfig)
    tiny.set_defaults(func=_tiny_base)

    run = sub.add_parser(
        "run", help="QLoRA fine-tuning from a YAML config",
        description="QLoRA fine-tuning of Mixtral from a YAML config whose defaults are the Aurora paper's "
        "(NF4 double-quantised base, LoRA r=8 alpha=16 on q/k/v/o and every expert's w1/w2/w3, paged 8-bit "
        "AdamW, lr 5e-5 cosine with warm-up, 3 epochs, cutoff 1024, batch 2 x accumulation 4, gradient "
        "checkpointing, a checkpoint every 1000 steps). Keys can be overridden as key=value. Runs unchanged "
        "under `accelerate launch` (DDP).", formatter_class=HelpFormatter, epilog=_config_keys())
    run.add_argument("config", help="YAML config file")
    run.add_argument("overrides", nargs="*", default=[], help="key=value overrides (e.g. max_steps=100)")
    run.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in out")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(func=_run)

    est = sub.add_parser("estimate", help="GPU memory estimate of a config for Mixtral-8x7B",
                         description="Print the GPU memory a QLoRA config needs on the real Mixtral-8x7B shape "
                         "(or the shape of the config's base with --from-base), part by part.")
    est.add_argument("config", nargs="?", help="YAML config file (default: the paper's recipe)")
    est.add_argument("overrides", nargs="*", default=[], help="key=value overrides")
    est.add_argument("--from-base", action="store_true", help="use the shape in the config's base/config.json")
    est.add_argument("--gpus", type=int, default=1, help="GPUs the run is spread over (one process each)")
    est.add_argument("--fsdp", action="store_true", help="FSDP-QLoRA: the base sharded over the GPUs (else DDP: a "
                     "whole copy on each)")
    est.add_argument("--offload", action="store_true", help="with --fsdp: the shards in host RAM between uses")
    est.set_defaults(func=_estimate)
    return parser


def _config_keys() -> str:
    """Every config key with its default and what it does, for `aurora-train run --help`."""
    docs, defaults = field_docs(TrainConfig), TrainConfig()
    lines = ["config keys (YAML, or key=value after the file):"]
    for f in fields(TrainConfig):
        lines.append(f"  {f.name} = {getattr(defaults, f.name)!r}")
        lines.append(f"      {docs.get(f.name, '')}")
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    from .config import load_config
    from .train import run

    cfg = load_config(args.config, args.overrides)
    adapter = run(cfg, resume=args.resume, progress=not args.no_progress)
    print(f"wrote adapter to {adapter}")
    return 0


def _estimate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .config import load_config
    from aurora_core import mixtral

    from .estimate import GiB, estimate, per_gpu, table

    if args.config and "=" in args.config:  # `estimate key=value ...` without a config file
        args.overrides.insert(0, args.config)
        args.config = None
    cfg = load_config(args.config, args.overrides, validate=False)
    shape = mixtral.MIXTRAL_8X7B
    if args.from_base:
        shape = mixtral.read_config(Path(cfg.base))[1]
    if args.gpus < 1 or (args.offload and not args.fsdp):
        raise AuroraError("--gpus must be at least 1, and --offload goes with --fsdp")
    print(f"QLoRA memory estimate: {shape}")
    print(f"batch {cfg.batch_size} x cutoff {cfg.cutoff_len}, r={cfg.lora_r} on {', '.join(cfg.target_modules)}")
    if args.gpus == 1 and not args.fsdp:
        print(table(estimate(cfg, shape)))
        return 0
    rows, host = per_gpu(cfg, args.gpus, args.fsdp, args.offload, shape)
    ddp = estimate(cfg, shape)[-1][1]
    mode = "FSDP" + (" with offload" if args.offload else "") if args.fsdp else "DDP"
    print(f"{args.gpus} GPUs, {mode}, per GPU:")
    print(table(rows))
    print(f"DDP would need {ddp / GiB:,.2f} GiB on each GPU" if args.fsdp else
          "each GPU holds the whole model (DDP); --fsdp shards it")
    if host:
        print(f"host RAM for the offloaded shards: {host / GiB:,.2f} GiB")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main("aurora-train", lambda: _dispatch(_parse(build_parser(), argv)))


def _parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Options may come anywhere: `run CONFIG --resume key=value` keeps key=value as an override."""
    args, rest = parser.parse_known_args(argv)
    if rest and hasattr(args, "overrides") and all("=" in r and not r.startswith("-") for r in rest):
        args.overrides += rest
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return args


def _dispatch(args: argparse.Namespace) -> int:
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
