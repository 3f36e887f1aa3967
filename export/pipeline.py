"""The export stage's library entries: what `aurora-export`, the tests, the demo and the benchmarks call.

    result = export_gguf(ExportConfig("Mixtral-8x7B-Instruct-v0.1", "aurora.gguf", adapter="runs/aurora/adapter",
                                      types="f16,q4_k_m"))
    result.files  # {"f16": Path("aurora-f16.gguf"), "q4_k_m": Path("aurora-q4_k_m.gguf")}

Every check that can fail (the base, the adapter, the outputs, the free disk space) runs before the
long work starts; outputs are written under temporary names and renamed when complete.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from aurora_core.errors import AuroraError
from aurora_core.files import writable_folder

from .file_types import FLOAT_TYPES, INTERMEDIATE, MERGE_ONTO, NEEDS_IMATRIX, QUANT_TYPES, TYPES


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


@dataclass
class ExportConfig:
    """One `aurora-export gguf` run; checked when made, so a wrong value fails before any work."""

    base: str
    """Hugging Face Mixtral checkpoint folder (sharded safetensors)."""
    out: str
    """Output .gguf path; with several types FILE.gguf becomes FILE-TYPE.gguf (or put {type} in the name)."""
    adapter: str | None = None
    """PEFT LoRA adapter folder from aurora-train (none: the base alone)."""
    types: tuple[str, ...] | str = "q4_k_m"
    """File types, one GGUF each, as a comma list: f32, f16, bf16 (written directly) or llama.cpp quant types
    (listed below)."""
    merge_onto: str = "base"
    """Add the LoRA delta to the 16-bit base weights (base), or to their NF4 round trip, the weights QLoRA
    trained against (nf4)."""
    imatrix: str | None = None
    """Importance matrix (aurora-export imatrix) for the quantizer; needed by the iq* types."""
    threads: int | None = None
    """Quantizer threads (default: all cores)."""
    force: bool = False
    """Replace existing output files."""
    progress: bool = True
    """Show progress bars on standard error; --no-progress turns them off."""

    def __post_init__(self) -> None:
        self.types = tuple(parse_types(self.types if isinstance(self.types, str) else ",".join(self.types)))
        if self.merge_onto not in MERGE_ONTO:
            raise ExportError(f"--merge-onto {self.merge_onto!r}: choose {' or '.join(MERGE_ONTO)}")
        if self.threads is not None and self.threads < 1:
            raise ExportError(f"--threads {self.threads}: must be at least 1")
        needs = [t for t in self.types if t in NEEDS_IMATRIX]
        if needs and self.imatrix is None:
            raise ExportError(f"--type {needs[0]} needs an importance matrix; make one with `aurora-export imatrix` "
                              "and pass --imatrix FILE")


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote."""

    files: dict[str, Path]
    """One GGUF per type, in the order asked."""
    chat_template_source: str
    """Where the chat template written into the files came from (the adapter's, the base's, Aurora's)."""
    parameters: int
    """Parameters of the merged model."""


def export_gguf(config: ExportConfig) -> ExportResult:
    """Merge base + adapter and write one GGUF per type. An importance matrix guides llama.cpp's quantizer
    and unlocks the i-quants."""
    from .gguf_model import chat_template_for, model_nbytes, model_parameters, write_model_gguf
    from .merge import Merger
    from .quantize import quantize

    types, progress, threads = list(config.types), config.progress, config.threads
    importance = None
    if config.imatrix is not None:
        from .imatrix import read

        importance = read(Path(config.imatrix))
    merger = Merger.open(config.base, config.adapter, config.merge_onto)
    if importance is not None:
        importance.check_against(merger.base.shape)
    outputs = output_paths(Path(config.out), types)
    quant = [t for t in types if t in QUANT_TYPES]
    f16_bytes = model_nbytes(merger, INTERMEDIATE)
    n_params = model_parameters(merger)
    need = sum(model_nbytes(merger, t) for t in types if t in FLOAT_TYPES)
    need += sum(int(n_params * QUANT_TYPES[t][1] / 8) for t in quant)
    if quant and INTERMEDIATE not in types:
        need += f16_bytes
    check_outputs(list(outputs.values()), need, config.force)

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
    _, template_source = chat_template_for(merger.base.folder, merger.adapter.folder if merger.adapter else None)
    return ExportResult(outputs, template_source, n_params)


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
