"""`prepare`: read every input, clean it, split it and write train.jsonl, validation.jsonl, manifest.json."""

from __future__ import annotations

import hashlib
import json
import sys
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path

from aurora_core.files import file_sha256, new_file, writable_folder, write_text
from aurora_core.records import ConversationRecord, write_line

from .clean import Cleaner, text_key
from .readers import read_conversations
from .settings import DataConfig, DataError, Report

def load_encoder(path: str):
    """(encode, bos_id, eos_id) of a SentencePiece model file, or of the one in a checkpoint folder."""
    import sentencepiece as spm

    p = Path(path)
    model = p / "tokenizer.model" if p.is_dir() else p
    if not model.is_file():
        raise DataError(f"{model}: no SentencePiece tokenizer.model there; pass --tokenizer the file "
                        "or the base checkpoint folder")
    try:
        sp = spm.SentencePieceProcessor(model_file=str(model))
    except (OSError, RuntimeError) as exc:
        raise DataError(f"{model}: not a SentencePiece model ({exc}); pass the base model's tokenizer.model")
    return sp.encode, sp.bos_id(), sp.eos_id()


def split_of(conv: ConversationRecord, val_ratio: float) -> str:
    """'train' or 'validation', from a hash of the conversation's text: stable across runs and orders."""
    key = text_key(conv).encode()
    bucket = int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2**64
    return "validation" if bucket < val_ratio else "train"


def prepare(inputs: list[Path], out: Path, cfg: DataConfig, force: bool = False, progress: bool = True) -> Report:
    """Read, clean and write every input; the outputs appear only when the whole run succeeded."""
    for path in inputs:
        if path.is_dir():
            raise DataError(f"{path}: is a folder; pass the dataset files inside it")
        if not path.exists():
            raise DataError(f"{path}: no such file; pass the downloaded dataset files")
        if not path.is_file():
            raise DataError(f"{path}: not a regular file (a pipe or device); save the dataset to a file first")
    names = [p.name for p in inputs]
    if len(set(names)) != len(names):
        raise DataError("two inputs share a file name; rename one so sources stay distinguishable")
    targets = [out / "train.jsonl", out / "validation.jsonl", out / "manifest.json"]
    clash = [p for p in inputs if p.resolve() in {t.resolve() for t in targets}]
    if clash:
        raise DataError(f"{clash[0]}: is one of the outputs in {out}; choose another --out (the input would be "
                        "overwritten)")
    if not force and any(t.exists() for t in targets):
        raise DataError(f"{out}: already holds prepared data; pass --force to replace it")
    check_writable_folder(out, "--out")
    report = Report()
    encoder = load_encoder(cfg.tokenizer) if cfg.tokenizer else None
    report.length_unit = "tokens" if encoder else "characters"
    cleaner = Cleaner(cfg, report, encoder)
    with ExitStack() as stack:  # both files appear together, only when every input was read
        files = {s: stack.enter_context(new_file(out / f"{s}.jsonl")) for s in ("train", "validation")}
        bar = _progress(sum(p.stat().st_size for p in inputs), progress)
        for path in inputs:
            for conv in read_conversations(path, cfg, report):
                kept = cleaner.clean(conv)
                if kept is not None:
                    _count_kept(report, kept)
                    split = split_of(kept, cfg.val_ratio)
                    report.split[split] += 1
                    write_line(files[split], kept)
            bar.update(path.stat().st_size)
        bar.close()
        if not sum(report.split.values()):  # nothing is replaced: the temporary files are dropped
            raise DataError(f"kept 0 of {sum(report.read.values()):,} conversations from "
                            f"{', '.join(p.name for p in inputs)} (dropped: {dict(report.dropped) or 'none read'}); "
                            "nothing was written; check the inputs and the cleaning settings")
    manifest = {
        "inputs": [{"file": p.name, "sha256": file_sha256(p), "bytes": p.stat().st_size} for p in inputs],
        "settings": asdict(cfg),
        "read": dict(report.read),
        "kept": {s: report.kept_single[s] + report.kept_multi[s] for s in report.read},
        "dropped": dict(report.dropped),
        "split": dict(report.split),
    }
    write_text(out / "manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return report


def check_writable_folder(folder: Path, flag: str) -> None:
    """A folder this run can write into (made if missing), or DataError naming the flag, before any work."""
    writable_folder(folder, flag, DataError)


def _count_kept(report: Report, conv: ConversationRecord) -> None:
    multi = len(conv.turns) > 2
    (report.kept_multi if multi else report.kept_single)[conv.source] += 1
    report.categories[conv.category or "(none)"] += 1


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, desc="aurora-data", file=sys.stderr, disable=not enabled)


