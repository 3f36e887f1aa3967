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
import sys
from pathlib import Path

from aurora_core.cli import HelpFormatter, add_config_options, config_from_args, field_docs
from aurora_core.errors import run_main
from aurora_core.files import writable_folder

from .file_types import MERGE_ONTO, TYPES
from .pipeline import ExportConfig, ExportError, export_gguf, export_lora, export_merged

DOCS = field_docs(ExportConfig)  # the options every subcommand shares are documented once, on the config


def cmd_gguf(args) -> int:
    result = export_gguf(config_from_args(ExportConfig, args))
    for path in result.files.values():
        print(f"wrote {path}")
    print(f"chat template: {result.chat_template_source}")
    return 0


def cmd_imatrix(args) -> int:
    from .imatrix import SHIPPED, build, shipped_text

    out = Path(args.out)
    if out.is_dir():
        raise ExportError(f"{out}: is a folder; give --out a file name")
    if out.exists() and not args.force:
        raise ExportError(f"{out}: exists; pass --force to replace it")
    writable_folder(out.parent, "--out folder", ExportError)
    texts = [shipped_text(t) if t in SHIPPED else Path(t) for t in args.text]
    build(args.base, args.adapter, texts, out, args.chunk_size, args.chunks, progress=args.progress)
    print(f"wrote {out}")
    return 0


def cmd_merge(args) -> int:
    out = export_merged(args.base, args.adapter, args.out, force=args.force, onto=args.merge_onto,
                        progress=args.progress)
    print(f"wrote {out}")
    return 0


def cmd_lora(args) -> int:
    out = export_lora(args.base, args.adapter, args.out, force=args.force, progress=args.progress)
    print(f"wrote {out}")
    return 0


def cmd_verify(args) -> int:
    from .checkpoint import Checkpoint
    from .imatrix import SHIPPED, shipped_text, text_of
    from .verify import kl_reference, quality, quality_table, verify

    paths = [Path(f) for f in args.file]
    for path in paths:
        if not path.is_file():
            raise ExportError(f"{path}: no such file")
    prompts = None
    if args.prompts:
        prompts = [x for x in Path(args.prompts).read_text(encoding="utf-8").splitlines() if x.strip()]
    Checkpoint(args.base)  # fail early, with the checkpoint's own message
    failures = []
    for path in paths:
        report = verify(path, Path(args.base), Path(args.adapter) if args.adapter else None, prompts,
                        args.merge_onto, args.threads)
        print(f"{path.name}:")
        print(report.table())
        failures += [f"{path.name}: {f}" for f in report.failures()]
    text_path = shipped_text(args.text) if args.text in SHIPPED else Path(args.text)
    reference = kl_reference(paths)
    rows = quality(paths, reference, text_of(text_path), Path(args.base) / "tokenizer.model", threads=args.threads)
    print()
    print(quality_table(rows, reference, text_path.name))
    for f in failures:
        print(f"FAIL: {f}", file=sys.stderr)
    if not failures:
        print("PASS")
    return 1 if failures else 0


def cmd_inspect(args) -> int:
    from aurora_core.gguf_header import read_header

    from .inspect_gguf import report

    path = Path(args.file)
    if not path.is_file():
        raise ExportError(f"{path}: no such file")
    try:
        text, problem = report(read_header(path))
    except OSError as exc:
        raise ExportError(f"{path}: cannot read it ({exc.strerror})") from None
    print(text)
    if problem:
        raise ExportError(problem)  # described above, and still refused: exit 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aurora-export",
        description="Aurora export: merge the QLoRA adapter into the Mixtral base and write GGUF files that "
        "llama.cpp runs, streaming the base shard by shard (memory: about one tensor at a time, not the model).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def common(p, adapter_required=False):
        p.add_argument("--base", required=True, help=DOCS["base"])
        p.add_argument("--adapter", required=adapter_required, help=DOCS["adapter"])
        p.add_argument("--merge-onto", choices=MERGE_ONTO, default="base", help=DOCS["merge_onto"])
        no_progress(p)

    def no_progress(p):
        p.add_argument("--no-progress", dest="progress", action="store_false", help=DOCS["progress"])

    def force(p, what="existing output files"):
        p.add_argument("--force", action="store_true", help=f"replace {what}")

    g = sub.add_parser("gguf", help="merge and write GGUF files, one per type",
                       description="Merge the adapter tensor by tensor and write the GGUF directly (no merged "
                       "Hugging Face copy). f32/f16/bf16 are written directly; quantized types are made by "
                       "llama.cpp's quantizer from one F16 intermediate. With several types, FILE.gguf becomes "
                       "FILE-TYPE.gguf (or put {type} in the name).",
                       formatter_class=HelpFormatter,
                       epilog="types: " + ", ".join(TYPES))
    add_config_options(g, ExportConfig, flags={"types": "--type"}, types={"threads": int},
                       choices={"merge_onto": MERGE_ONTO})
    g.set_defaults(func=cmd_gguf)

    im = sub.add_parser("imatrix", help="collect an importance matrix from text, for the quantizer",
                        formatter_class=HelpFormatter,
                        description="Run base + adapter over calibration text layer by layer (one decoder layer in "
                        "memory at a time) and write llama.cpp's imatrix.gguf: per-column mean squared activations "
                        "of every weight, per expert. Text: plain files, aurora-data's train.jsonl, or the texts "
                        "Aurora ships: zh (Chinese: chat, medicine, law, code comments, poetry, news) and en.")
    im.add_argument("--base", required=True, help="Hugging Face Mixtral checkpoint folder")
    im.add_argument("--adapter", help="PEFT LoRA adapter folder from aurora-train")
    im.add_argument("--text", nargs="+", default=["zh"], help="text files, or zh / en for the shipped texts")
    im.add_argument("--out", required=True, help="output imatrix.gguf")
    im.add_argument("--chunk-size", type=int, default=512, help="tokens per chunk (llama-imatrix's -c)")
    im.add_argument("--chunks", type=int, help="use at most this many chunks")
    force(im, "an existing output file")
    no_progress(im)
    im.set_defaults(func=cmd_imatrix)

    m = sub.add_parser("merge", help="write a merged Hugging Face checkpoint, shard by shard",
                       description="Write base + adapter as a Hugging Face checkpoint in the original Mixtral "
                       "layout, base shard by base shard, for other inference engines.")
    common(m, adapter_required=True)
    m.add_argument("--out", required=True, help="output folder")
    force(m, "a non-empty output folder")
    m.set_defaults(func=cmd_merge)

    lo = sub.add_parser("lora", help="write the adapter alone as a GGUF LoRA",
                        description="Write the adapter as a GGUF LoRA for Llama(model_path=base.gguf, "
                        "lora_path=adapter.gguf).")
    lo.add_argument("--adapter", required=True, help="PEFT LoRA adapter folder")
    lo.add_argument("--base", required=True, help="the base checkpoint the adapter was trained on")
    lo.add_argument("--out", required=True, help="output .gguf path")
    force(lo, "an existing output file")
    no_progress(lo)
    lo.set_defaults(func=cmd_lora)

    v = sub.add_parser("verify", help="compare llama.cpp with the Hugging Face model on the same prompts",
                       description="Run the same prompts through the Hugging Face model (merged, float32) and "
                       "through llama.cpp on each FILE; print top-1 agreement, max/mean absolute logit difference, "
                       "KL divergence and tokenizer parity, then every file's perplexity on held-out Chinese text and "
                       "its KL divergence from the F16 file. Exit status 1 when a threshold fails "
                       "(f32: top-1 100%% and max diff <= 1e-3 of the logit range; f16/bf16: top-1 >= 99%%).")
    v.add_argument("file", nargs="+", help="GGUF files (e.g. every type of one export; the F16 one is the reference "
                   "for KL)")
    common(v)
    v.add_argument("--prompts", help="text file, one prompt a line (default: built-in Chinese and English)")
    v.add_argument("--threads", type=int, default=None, help="llama.cpp threads")
    v.add_argument("--text", default="heldout-zh",
                   help="text for perplexity and KL (default: Aurora's held-out Chinese text, kept apart from "
                   "the calibration text)")
    v.set_defaults(func=cmd_verify)

    i = sub.add_parser("inspect", help="print what a GGUF file holds",
                       description="Architecture, experts, context, quant type per tensor group, size, chat "
                       "template and provenance of a GGUF file.")
    i.add_argument("file", help="GGUF file")
    i.set_defaults(func=cmd_inspect)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_main("aurora-export", lambda: _dispatch(build_parser().parse_args(argv)))


def _dispatch(args) -> int:
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
