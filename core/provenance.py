"""What training hands to export: written beside the adapter, embedded in the GGUF, shown by the desktop."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from . import gguf_meta as keys
from .errors import AuroraError
from .files import read_json, write_text

FILE = "aurora_provenance.json"


@dataclass
class Provenance:
    """The adapter's origin: data, recipe, and what QLoRA held in 4-bit."""

    base: str
    """The base checkpoint folder training loaded."""
    datasets: list[str]
    """The dataset files aurora-data read (or the JSONL training read, without an aurora-data manifest)."""
    data_file: str
    """The JSONL file training read."""
    data_sha256: str
    """SHA-256 of that file."""
    conversations: int
    """Conversations in it."""
    examples: int
    """Conversations that fit cutoff_len and were trained on."""
    too_long_skipped: int = 0
    steps: int = 0
    tokens: int = 0
    final_loss: float = float("nan")
    quantized_modules: list[str] = field(default_factory=list)
    """Modules held in 4-bit NF4 during training (empty: a 16/32-bit base)."""
    recipe: dict = field(default_factory=dict)
    """The resolved training config."""
    data_manifest: dict | None = None
    """aurora-data's manifest.json, when training read its output folder."""

    def save(self, folder: Path) -> Path:
        path = Path(folder) / FILE
        write_text(path, json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n")
        return path

    @classmethod
    def load(cls, folder: Path) -> "Provenance | None":
        """The adapter folder's provenance, None when it has none (an adapter made elsewhere)."""
        path = Path(folder) / FILE
        if not path.is_file():
            return None
        data = read_json(path, "remove it or retrain")
        try:
            known = {f.name for f in fields(cls)}
            return cls(**{k: v for k, v in data.items() if k in known})
        except (ValueError, TypeError, AttributeError) as exc:
            raise AuroraError(f"{path}: not an Aurora provenance file ({exc}); remove it or retrain") from None

    def gguf_fields(self) -> dict[str, object]:
        """The `general.aurora.*` keys export writes (datasets go to `general.dataset.N.name`)."""
        return {keys.TRAIN_DATA_SHA256: self.data_sha256, keys.TRAIN_EXAMPLES: int(self.examples),
                keys.TRAIN_STEPS: int(self.steps), keys.TRAIN_FINAL_LOSS: float(self.final_loss),
                keys.QUANTIZED_MODULES: ",".join(self.quantized_modules)}
