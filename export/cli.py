"""`aurora-export`: the export stage's command table.

    aurora-export gguf    --base DIR [--adapter DIR] --out FILE.gguf --type f16,q4_k_m
    aurora-export merge   --base DIR --adapter DIR --out DIR
    aurora-export lora    --adapter DIR --base DIR --out FILE.gguf
    aurora-export verify  FILE.gguf --base DIR [--adapter DIR]
    aurora-export inspect FILE.gguf

Every check that can fail (the base, the adapter, the outputs, the free disk space) runs before
the long work starts; outputs are written under temporary names and renamed when complete.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from .checkpoint import Checkpoint, CheckpointError
from .gguf_model import FLOAT_TYPES
from .lora import AdapterError
from .quantize import QUANT_TYPES, QuantizeError

TYPES = tuple(FLOAT_TYPES) + tuple(QUANT_TYPES)
INTERMEDIATE = "f16"  # llama.cpp quantizes k-quants from this one file


class ExportError(ValueError):
    pass


def parse_types(text: str) -> list[str]:
    types = [t.strip().lower() for t in text.split(",") if t.strip()]
    bad = [t for t in types if t not in TYPES]
    if bad or not types:
        raise ExportError(f"--type {text!r}: unknown type {bad[0] if bad else '(none)'}; choose from {', '.join(TYPES)}")
    return list(dict.fromkeys(types))


def output_paths(out: Path, types: list[str]) -> dict[str, Path]:
    """One file per type: `--out` itself for one type; NAME-TYPE.gguf (or a {type} placeholder) for several."""
    if "{type}" in out.name:
        return {t: out.with_name(out.name.replace("{type}", t)) for t in types}
    if len(types) == 1:
        return {types[0]: out}
    stem = out.name[:-5] if out.name.endswith(".gguf") else out.name
    return {t: out.with_name(f"{stem}-{t}.gguf") for t in types}


def check_outputs(paths: list[Path], need_bytes: int, force: bool) -> None:
    """Refuse existing outputs without --force, an unwritable folder, or too little free space."""
    for p in paths:
        if p.exists() and not force:
            raise ExportError(f"{p}: exists; pass --force to replace it")
    folder = paths[0].parent
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".aurora-write-test."):
            pass
    except OSError as exc:
        raise ExportError(f"{folder}: cannot write there ({exc.strerror}); choose another --out") from None
    free = shutil.disk_usage(folder).free + sum(p.stat().st_size for p in paths if p.exists())
    if need_bytes > free:
        raise ExportError(f"{folder}: needs {need_bytes / 2**30:.2f} GiB free for this export, has "
                          f"{free / 2**30:.2f} GiB; free some space or choose another --out")


def _open(args):
    """The base and adapter, checked against each other, as a Merger."""
    from .lora import load_adapter
    from .merge import Merger

    base = Checkpoint(args.base)
    adapter = load_adapter(args.adapter) if getattr(args, "adapter", None) else None
    return Merger(base, adapter, getattr(args, "merge_onto", "base"))


def cmd_gguf(args) -> int:
    from .gguf_model import model_nbytes, write_model_gguf
    from .quantize import quantize

    types = parse_types(args.type)
    merger = _open(args)
    outputs = output_paths(Path(args.out), types)
    quant = [t for t in types if t in QUANT_TYPES]
    f16_bytes = model_nbytes(merger, INTERMEDIATE)
    n_params = f16_bytes // 2
    need = sum(model_nbytes(merger, t) for t in types if t in FLOAT_TYPES)
    need += sum(int(n_params * QUANT_TYPES[t][1] / 8) for t in quant)
    if quant and INTERMEDIATE not in types:
        need += f16_bytes
    check_outputs(list(outputs.values()), need, args.force)

    progress = not args.no_progress
    for t in (t for t in types if t in FLOAT_TYPES):
        write_model_gguf(outputs[t], merger, t, progress)
        print(f"wrote {outputs[t]}")
    if quant:
        if INTERMEDIATE in outputs:
            source, temporary = outputs[INTERMEDIATE], False
        else:
            source, temporary = outputs[quant[0]].with_name(f".{outputs[quant[0]].stem}.f16-intermediate.gguf"), True
            write_model_gguf(source, merger, INTERMEDIATE, progress)
        try:
            for t in quant:
                quantize(source, outputs[t], t, args.threads, progress, n_params)
                print(f"wrote {outputs[t]}")
        finally:
            if temporary:
                source.unlink(missing_ok=True)
    return 0


def cmd_merge(args) -> int:
    from .merge import write_merged_checkpoint

    merger = _open(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    check_outputs([out.parent / (out.name + ".probe")], sum(merger.base.shard_sizes().values()), True)
    write_merged_checkpoint(merger, out, force=args.force, progress=not args.no_progress)
    print(f"wrote {out}")
    return 0


def cmd_lora(args) -> int:
    from .lora import load_adapter
    from .lora_gguf import write_lora_gguf

    base = Checkpoint(args.base)
    adapter = load_adapter(args.adapter)
    out = Path(args.out)
    size = sum(a.numel() + b.numel() for a, b in adapter.pairs.values()) * 4
    check_outputs([out], size, args.force)
    write_lora_gguf(out, adapter, base, progress=not args.no_progress)
    print(f"wrote {out}")
    return 0


def cmd_verify(args) -> int:
    from .verify import verify

    path = Path(args.file)
    if not path.is_file():
        raise ExportError(f"{path}: no such file")
    prompts = None
    if args.prompts:
        prompts = [x for x in Path(args.prompts).read_text(encoding="utf-8").splitlines() if x.strip()]
    Checkpoint(args.base)  # fail early, with the checkpoint's own message
    report = verify(path, Path(args.base), Path(args.adapter) if args.adapter else None, prompts,
                    args.merge_onto, args.threads)
    print(report.table())
    failures = report.failures()
    for f in failures:
        print(f"FAIL: {f}", file=sys.stderr)
    if not failures:
        print("PASS")
    return 1 if failures else 0


def cmd_inspect(args) -> int:
    from .inspect_gguf import describe

    path = Path(args.file)
    if not path.is_file():
        raise ExportError(f"{path}: no such file")
    try:
        print(describe(path))
    except (ValueError, OSError) as exc:
        raise ExportError(f"{path}: not a readable GGUF file ({exc})") from None
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aurora-export",
        description="Aurora export: merge the QLoRA adapter into the Mixtral base and write GGUF files that "
        "llama.cpp runs, streaming the base shard by shard (memory: about one tensor at a time, not the model).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def common(p, adapter_required=False):
        p.add_argument("--base", required=True, help="Hugging Face Mixtral checkpoint folder (sharded safetensors)")
        p.add_argument("--adapter", required=adapter_required, help="PEFT LoRA adapter folder from aurora-train")
        p.add_argument("--merge-onto", choices=("base", "nf4"), default="base",
                       help="add the LoRA delta to the 16-bit base weights (base), or to their NF4 round trip, "
                       "the weights QLoRA trained against (nf4)")
        p.add_argument("--no-progress", action="store_true", help="no progress bars")

    g = sub.add_parser("gguf", help="merge and write GGUF files, one per type",
                       description="Merge the adapter tensor by tensor and write the GGUF directly (no merged "
                       "Hugging Face copy). f32/f16/bf16 are written directly; quantized types are made by "
                       "llama.cpp's quantizer from one F16 intermediate. With several types, FILE.gguf becomes "
                       "FILE-TYPE.gguf (or put {type} in the name).")
    common(g)
    g.add_argument("--out", required=True, help="output .gguf path")
    g.add_argument("--type", default="q4_k_m", help=f"comma list of: {', '.join(TYPES)}")
    g.add_argument("--threads", type=int, default=None, help="quantizer threads (default: all cores)")
    g.add_argument("--force", action="store_true", help="replace existing output files")
    g.set_defaults(func=cmd_gguf)

    m = sub.add_parser("merge", help="write a merged Hugging Face checkpoint, shard by shard",
                       description="Write base + adapter as a Hugging Face checkpoint in the original Mixtral "
                       "layout, base shard by base shard, for other inference engines.")
    common(m, adapter_required=True)
    m.add_argument("--out", required=True, help="output folder")
    m.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    m.set_defaults(func=cmd_merge)

    lo = sub.add_parser("lora", help="write the adapter alone as a GGUF LoRA",
                        description="Write the adapter as a GGUF LoRA for Llama(model_path=base.gguf, "
                        "lora_path=adapter.gguf).")
    lo.add_argument("--adapter", required=True, help="PEFT LoRA adapter folder")
    lo.add_argument("--base", required=True, help="the base checkpoint the adapter was trained on")
    lo.add_argument("--out", required=True, help="output .gguf path")
    lo.add_argument("--force", action="store_true", help="replace an existing output file")
    lo.add_argument("--no-progress", action="store_true", help="no progress bar")
    lo.set_defaults(func=cmd_lora)

    v = sub.add_parser("verify", help="compare llama.cpp with the Hugging Face model on the same prompts",
                       description="Run the same prompts through the Hugging Face model (merged, float32) and "
                       "through llama.cpp on FILE; print top-1 agreement, max/mean absolute logit difference, "
                       "KL divergence and tokenizer parity. Exit status 1 when a threshold fails "
                       "(f32: top-1 100%% and max diff <= 1e-3 of the logit range; f16/bf16: top-1 >= 99%%).")
    v.add_argument("file", help="GGUF file")
    common(v)
    v.add_argument("--prompts", help="text file, one prompt a line (default: built-in Chinese and English)")
    v.add_argument("--threads", type=int, default=None, help="llama.cpp threads")
    v.set_defaults(func=cmd_verify)

    i = sub.add_parser("inspect", help="print what a GGUF file holds",
                       description="Architecture, experts, context, quant type per tensor group, size, chat "
                       "template and provenance of a GGUF file.")
    i.add_argument("file", help="GGUF file")
    i.set_defaults(func=cmd_inspect)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ExportError, CheckpointError, AdapterError, QuantizeError, FileExistsError, FileNotFoundError) as exc:
        print(f"aurora-export: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("aurora-export: interrupted; no partial output was left", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

