"""`aurora-data`'s settings, its report counters and its error."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from aurora_core.errors import AuroraError

FORMATS = ("alpaca", "firefly", "sharegpt", "openai")

# Rule names, in the order they run; each appears in the report with its count.
RULES = {
    "invalid_json": "malformed JSON (skipped with --skip-invalid)",
    "unknown_schema": "record in no known format (skipped with --skip-invalid)",
    "empty_turn": "a turn is empty after normalisation",
    "too_short": "a turn is shorter than --min-chars",
    "broken_order": "roles do not alternate user/assistant, starting with user",
    "boilerplate": "an assistant turn says 'as an AI language model' (作为一个AI语言模型 …)",
    "not_chinese": "Chinese share below --min-chinese (kept with --keep-english)",
    "duplicate": "exact duplicate of an earlier conversation (normalised text, across all sources)",
    "near_duplicate": "near duplicate of an earlier conversation (--near-dup)",
    "too_long": "longer than --max-tokens (cut at a turn boundary with --overlong cut)",
}


class DataError(AuroraError):
    """Bad input: the message names the file, line and column and says what to do."""


OVERLONG = ("drop", "cut")  # what happens to a conversation over --max-tokens


@dataclass
class DataConfig:
    """Settings of one `aurora-data` run."""

    format: str = "auto"
    """Input format: auto, alpaca, firefly, sharegpt or openai."""
    min_chars: int = 1
    """Shortest allowed turn, in characters after normalisation."""
    min_chinese: float = 0.3
    """Least share of Chinese in a conversation: CJK characters / (CJK characters + Latin words)."""
    keep_english: bool = False
    """Keep conversations below --min-chinese."""
    near_dup: bool = False
    """Also drop near duplicates (64-bit SimHash of character 3-grams, Hamming distance <= 3)."""
    tokenizer: str | None = None
    """tokenizer.model (or a checkpoint folder holding one) for the token-length rule and histogram."""
    max_tokens: int = 1024
    """Longest conversation in tokens of the chat template (needs --tokenizer)."""
    overlong: str = "drop"
    """What to do with a conversation over --max-tokens: drop it, or cut it at a turn boundary."""
    val_ratio: float = 0.01
    """Share of conversations that go to validation.jsonl, chosen by a hash of their text."""
    skip_invalid: bool = False
    """Go on past malformed lines and unknown records, counting them in the report."""

    def __post_init__(self) -> None:
        if self.format not in ("auto", *FORMATS):
            raise DataError(f"--format {self.format!r}: choose auto, {', '.join(FORMATS)}")
        if self.overlong not in OVERLONG:
            raise DataError(f"--overlong {self.overlong!r}: choose {' or '.join(OVERLONG)}")
        if not 0 <= self.val_ratio < 1:
            raise DataError(f"--val-ratio {self.val_ratio}: must be in [0, 1)")
        if not 0 <= self.min_chinese <= 1:
            raise DataError(f"--min-chinese {self.min_chinese}: must be in [0, 1]")
        if self.min_chars < 1:
            raise DataError(f"--min-chars {self.min_chars}: must be at least 1")


@dataclass
class Report:
    """What a run read, kept and dropped."""

    read: Counter = field(default_factory=Counter)  # per source
    kept_single: Counter = field(default_factory=Counter)  # per source
    kept_multi: Counter = field(default_factory=Counter)  # per source
    dropped: Counter = field(default_factory=Counter)  # per rule
    modified: Counter = field(default_factory=Counter)  # normalised, control chars removed, cut, trimmed
    categories: Counter = field(default_factory=Counter)
    lengths: list = field(default_factory=list)  # tokens (or characters without a tokenizer)
    length_unit: str = "characters"
    split: Counter = field(default_factory=Counter)


