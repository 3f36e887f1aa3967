"""The export stage's library entries: what `aurora-export`, the tests, the demo and the benchmarks call.

    paths = export_gguf("Mixtral-8x7B-Instruct-v0.1", "runs/aurora/adapter", "aurora.gguf", ["f16", "q4_k_m"])

Every check that can fail (the base, the adapter, the outputs, the free disk space) runs before the
long work starts; outputs are written under temporary names and renamed when complete.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from aurora_core.errors import AuroraError
from aurora_core.files import writable_folder

from .file_types import FLOAT_TYPES, INTERMEDIATE, NEEDS_IMATRIX, QUANT_TYPES, TYPES


class ExportError(AuroraError):
    pass


def parse_types(text: str) -> list[str]:
    types = [t.strip().lower() for t in text.split(",") if t.strip()]
    bad = [t for t in types if t not in TYPES]
    if bad or not types:
        raise ExportError(f"--type {text!r}: unknown type {bad[0] if bad else '(none)'}; choose from {', '.join(TYPES)}")
    return list(dict.fromkeys(types))


def output_paths(out: Path, types: list[str]) -> dict[str, Path]:
    """One file per type: `out` itself for one type; NAME-TYPE.gguf (or a {type} placeholder) for several."""
    if "{type}" in out.name:
        return {t: out.with_name(out.name.replace("{type}", t)) for t in types}
    if len(types) == 1:
        return {types[0]: out}
    stem = out.name[:-5] if out.name.endswith(".gguf") else out.name
    return {t: out.with_name(f"{stem}-{t}.gguf") for t in types}


def check_outputs(paths: list[Path], need_bytes: int, force: bool) -> None:
    """Refuse existing outputs without force, a folder as output, an unwritable folder, too little space.

    The old files' space is not counted as free: each new file is written beside its old one.
    """
    for p in paths:
        if p.is_dir():
            raise ExportError(f"{p}: is a folder; give --out a file name")
        if p.exists() and not force:
            raise ExportError(f"{p}: exists; pass --force to replace it")
    folder = writable_folder(paths[0].parent, "--out folder", ExportError)
    free = shutil.disk_usage(folder).free
    if need_bytes > free:
        raise ExportError(f"{folder}: needs {need_bytes / 2**30:.2f} GiB free for this export, has "
                          f"{free / 2**30:.2f} GiB; free some space or choose another --out")


def export_gguf(base: str | Path, adapter: str | Path | None, out: str | Path, types: list[str],
                force: bool = False, onto: str = "base", threads: int | None = None,
                progress: bool = True, imatrix: str | Path | None = None) -> dict[str, Path]:
    """Merge base + adapter and write one GGUF per type; returns {type: path}. `imatrix` (an imatrix.gguf)
    guides llama.cpp's quantizer and unlocks the i-quants."""
    from .gguf_model import model_nbytes, write_model_gguf
    from .merge import Merger
    from .quantize import quantize

    types = parse_types(",".join(types))
    needs = [t for t in types if t in NEEDS_IMATRIX]
    if needs and imatrix is None:
        raise ExportError(f"--type {needs[0]} needs an importance matrix; make one with `aurora-export imatrix` "
                          "and pass --imatrix FILE")
    importance = None
    if imatrix is not None:
        from .imatrix import read

        importance = read(Path(imatrix))
    merger = Merger.open(base, adapter, onto)
    outputs = output_paths(Path(out), types)
    quant = [t for t in types if t in QUANT_TYPES]
    f16_bytes = model_nbytes(merger, INTERMEDIATE)
    n_params = f16_bytes // 2
    need = sum(model_nbytes(merger, t) for t in types if t in FLOAT_TYPES)
    need += sum(int(n_params * QUANT_TYPES[t][1] / 8) for t in quant)
    if quant and INTERMEDIATE not in types:
        need += f16_bytes
    check_outputs(list(outputs.values()), need, force)

    for t in (t for t in types if t in FLOAT_TYPES):
        write_model_gguf(outputs[t], merger, t, progress)
    if quant:
        if INTERMEDIATE in outputs:
            source, temporary = outputs[INTERMEDIATE], False
        else:
            source, temporary = outputs[quant[0]].with_name(f".{outputs[quant[0]].stem}.f16-intermediate.gguf"), True
            write_model_gguf(source, merger, INTERMEDIATE, progress)
        try:
            for t in quant:
                quantize(source, outputs[t], t, threads, progress, n_params, importance)
        finally:
            if temporary:
                source.unlink(missing_ok=True)
    return outputs


def export_merged(base: str | Path, adapter: str | Path, out: str | Path, force: bool = False,
                  onto: str = "base", progress: bool = True) -> Path:
    """A merged Hugging Face checkpoint folder (original layout), base shard by base shard."""
    from .merge import Merger, write_merged_checkpoint

    merger = Merger.open(base, adapter, onto)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    check_outputs([out.parent / (out.name + ".probe")], sum(merger.base.shard_sizes().values()), True)
    return write_merged_checkpoint(merger, out, force=force, progress=progress)


def export_lora(base: str | Path, adapter: str | Path, out: str | Path, force: bool = False,
                progress: bool = True) -> Path:
    """The adapter alone as a GGUF LoRA for llama.cpp."""
    from .checkpoint import Checkpoint
    from .lora import load_adapter
    from .lora_gguf import write_lora_gguf

    checkpoint, lora = Checkpoint(base), load_adapter(adapter)
    size = sum(a.numel() + b.numel() for a, b in lora.pairs.values()) * 4
    check_outputs([Path(out)], size, force)
    return write_lora_gguf(Path(out), lora, checkpoint, progress=progress)
