"""`aurora-data`: read, clean and format the Chinese instruction datasets.

Reads alpaca_data_zh_51k, alpaca_gpt4_data_zh, ShareGPT-Chinese-English-90k (and any file in the
same formats), cleans them rule by rule, counts every drop, and writes one conversation schema:

    {"id", "source", "category", "system", "turns": [{"role": "user"|"assistant", "content"}]}

to `train.jsonl` and `validation.jsonl` (a deterministic, hash-based split) plus `manifest.json`
(input hashes, settings, counts) that training and export carry on as provenance. Token ids and
labels are made from this schema by `aurora_training.chat_format`, the single source of the chat
template.

Readers (auto-detected per record, or forced with --format):
  alpaca    JSON array or JSONL of {"instruction", "input", "output", "system"?, "history"?}
  firefly   shareAI/Firefly JSONL {"conversation_id", "category", "conversation": [{"human", "assistant"}]}
  sharegpt  {"conversations": [{"from": "human"|"gpt"|"system", "value"}], "system"?}
  openai    {"messages": [{"role", "content"}]}
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import tempfile
import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

from .atomic import write_text

FORMATS = ("alpaca", "firefly", "sharegpt", "openai")
EXPECTED_KEYS = (
    "alpaca (instruction, input, output), firefly (conversation: [{human, assistant}]), "
    "sharegpt (conversations: [{from, value}]), openai (messages: [{role, content}])"
)
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "chatgpt": "assistant", "bing": "assistant", "bard": "assistant", "system": "system"}

# Assistant boilerplate that teaches a model to refuse or to talk about itself.
BOILERPLATE = re.compile(
    r"作为一个?(?:AI|人工智能)(?:语言)?(?:模型|助手)|作为一个?语言模型|我是一个?(?:AI|人工智能)语言模型"
    r"|as an ai language model|as an ai assistant|as a language model|i'?m an ai language model",
    re.IGNORECASE,
)
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\u200e\u200f\ufeff]")
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
LATIN_WORD = re.compile(r"[A-Za-z]+")
BLANK_LINES = re.compile(r"\n{3,}")
TRAILING_SPACE = re.compile(r"[ \t]+\n")

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


class DataError(ValueError):
    """Bad input: the message names the file, line and column and says what to do."""


@dataclass
class Conversation:
    id: str
    source: str
    category: str | None
    system: str | None
    turns: list[dict]

    def to_json(self) -> dict:
        return {"id": self.id, "source": self.source, "category": self.category, "system": self.system,
                "turns": self.turns}


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
        if self.overlong not in ("drop", "cut"):
            raise DataError(f"--overlong {self.overlong!r}: choose drop or cut")
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


# ---------------------------------------------------------------- readers


def _position(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


def iter_json_records(path: Path, cfg: DataConfig, report: Report) -> Iterator[tuple[int, object]]:
    """(line, record) pairs of a JSON array or a JSONL file; JSONL is streamed line by line."""
    with open(path, "rb") as f:
        head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"["):
        yield from _iter_json_array(path, cfg, report)
        return
    with open(path, encoding="utf-8-sig", errors="strict") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as exc:
                _invalid(f"{path}:{lineno}:{exc.colno}: invalid JSON: {exc.msg}", cfg, report)


def _iter_json_array(path: Path, cfg: DataConfig, report: Report) -> Iterator[tuple[int, object]]:
    """Elements of a top-level JSON array, decoded one at a time from the file's text."""
    text = path.read_text(encoding="utf-8-sig")
    decoder = json.JSONDecoder()
    ws = re.compile(r"[\s,]*")
    pos = ws.match(text, text.index("[") + 1).end()
    line, counted = 1, 0  # line number of `counted`, advanced incrementally (no O(n^2) recount)
    while pos < len(text) and text[pos] != "]":
        line += text.count("\n", counted, pos)
        counted = pos
        try:
            record, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            line, col = _position(text, exc.pos)
            raise DataError(f"{path}:{line}:{col}: invalid JSON: {exc.msg}; fix the file "
                            "(a broken JSON array cannot be skipped past)") from None
        yield line, record
        pos = ws.match(text, end).end()
    if pos >= len(text):
        line, col = _position(text, len(text))
        raise DataError(f"{path}:{line}:{col}: invalid JSON: the array is not closed; the file looks truncated")


def _invalid(message: str, cfg: DataConfig, report: Report, rule: str = "invalid_json") -> None:
    if not cfg.skip_invalid:
        raise DataError(message + "; fix it or pass --skip-invalid")
    report.dropped[rule] += 1


def detect_format(record: object) -> str | None:
    if not isinstance(record, dict):
        return None
    if "instruction" in record and "output" in record:
        return "alpaca"
    if isinstance(record.get("conversation"), list):
        return "firefly"
    if isinstance(record.get("conversations"), list):
        return "sharegpt"
    if isinstance(record.get("messages"), list):
        return "openai"
    return None


def to_turns(record: dict, fmt: str) -> tuple[str | None, list[tuple[str, str]]]:
    """(system, [(role, content)]) of one record; raises KeyError/TypeError on a malformed one."""
    system = record.get("system") or None
    turns: list[tuple[str, str]] = []
    if fmt == "alpaca":
        for user, assistant in record.get("history") or []:
            turns += [("user", user), ("assistant", assistant)]
        prompt = record["instruction"]
        if record.get("input"):
            prompt = f"{prompt}\n{record['input']}"
        turns += [("user", prompt), ("assistant", record["output"])]
    elif fmt == "firefly":
        for pair in record["conversation"]:
            turns += [("user", pair["human"]), ("assistant", pair["assistant"])]
    elif fmt == "sharegpt":
        for msg in record["conversations"]:
            turns.append((SHAREGPT_ROLES.get(str(msg["from"]).lower(), "unknown"), msg["value"]))
    else:
        turns = [(msg["role"], msg["content"]) for msg in record["messages"]]
    if turns and turns[0][0] == "system":
        system = turns.pop(0)[1]
    for role, content in turns:
        if not isinstance(content, str):
            raise TypeError(f"{role} content is {type(content).__name__}, not text")
    if system is not None and not isinstance(system, str):
        raise TypeError("system is not text")
    return system, turns


def read_conversations(path: Path, cfg: DataConfig, report: Report) -> Iterator[Conversation]:
    """Every conversation of one input file, before cleaning."""
    source = path.name
    stem = path.stem
    for lineno, record in iter_json_records(path, cfg, report):
        fmt = cfg.format if cfg.format != "auto" else detect_format(record)
        if fmt is None or (cfg.format != "auto" and detect_format(record) != fmt):
            keys = sorted(record) if isinstance(record, dict) else type(record).__name__
            _invalid(f"{path}:{lineno}: unknown record schema with keys {keys}; expected {EXPECTED_KEYS}",
                     cfg, report, "unknown_schema")
            continue
        try:
            system, turns = to_turns(record, fmt)
        except (KeyError, TypeError, ValueError) as exc:
            _invalid(f"{path}:{lineno}: malformed {fmt} record ({exc!s}); expected {EXPECTED_KEYS}",
                     cfg, report, "unknown_schema")
            continue
        report.read[source] += 1
        category = record.get("category") if isinstance(record.get("category"), str) else None
        yield Conversation(f"{stem}:{lineno}", source, category, system,
                           [{"role": r, "content": c} for r, c in turns])


# ---------------------------------------------------------------- cleaning


def normalise(text: str) -> str:
    """NFC (not NFKC: full-width Chinese punctuation stays), no control characters, tidy whitespace."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = CONTROL.sub("", text)
    text = TRAILING_SPACE.sub("\n", text)
    text = BLANK_LINES.sub("\n\n", text)
    return text.strip()


def text_key(conv: Conversation) -> str:
    """The conversation's text (system and turns), the key for duplicates and for the split."""
    return "\x1e".join([conv.system or ""] + [t["content"] for t in conv.turns])


def chinese_share(texts: list[str]) -> float:
    cjk = sum(len(CJK.findall(t)) for t in texts)
    words = sum(len(LATIN_WORD.findall(t)) for t in texts)
    return cjk / (cjk + words) if cjk + words else 0.0


def simhash(text: str) -> int:
    """64-bit SimHash of the character 3-grams of `text`."""
    weights = [0] * 64
    for i in range(max(1, len(text) - 2)):
        h = int.from_bytes(hashlib.blake2b(text[i:i + 3].encode(), digest_size=8).digest(), "little")
        for bit in range(64):
            weights[bit] += 1 if h >> bit & 1 else -1
    return sum(1 << bit for bit in range(64) if weights[bit] > 0)


class NearDuplicates:
    """SimHash index: four 16-bit bands; candidates share a band, near means Hamming distance <= 3."""

    def __init__(self) -> None:
        self.bands: list[dict[int, list[int]]] = [{} for _ in range(4)]

    def seen(self, h: int) -> bool:
        keys = [(h >> (16 * b)) & 0xFFFF for b in range(4)]
        for band, key in zip(self.bands, keys):
            if any(bin(h ^ other).count("1") <= 3 for other in band.get(key, ())):
                return True
        for band, key in zip(self.bands, keys):
            band.setdefault(key, []).append(h)
        return False


class Cleaner:
    """Applies the rules in order; `clean` returns the kept conversation or None, counting why."""

    def __init__(self, cfg: DataConfig, report: Report, encoder=None) -> None:
        self.cfg = cfg
        self.report = report
        self.encoder = encoder  # (encode, bos_id, eos_id) or None
        self.seen: set[bytes] = set()
        self.near = NearDuplicates() if cfg.near_dup else None

    def drop(self, rule: str) -> None:
        self.report.dropped[rule] += 1

    def clean(self, conv: Conversation) -> Conversation | None:
        changed = False
        for turn in conv.turns:
            new = normalise(turn["content"])
            changed |= new != turn["content"]
            turn["content"] = new
        if conv.system is not None:
            new = normalise(conv.system)
            changed |= new != conv.system
            conv.system = new or None
        if changed:
            self.report.modified["normalised"] += 1
        if conv.turns and conv.turns[-1]["role"] == "user":
            conv.turns.pop()
            self.report.modified["trailing_user_turn_removed"] += 1
        if not conv.turns or any(not t["content"] for t in conv.turns):
            return self.drop("empty_turn")
        if any(len(t["content"]) < self.cfg.min_chars for t in conv.turns):
            return self.drop("too_short")
        if any(t["role"] != ("user" if i % 2 == 0 else "assistant") for i, t in enumerate(conv.turns)):
            return self.drop("broken_order")
        if any(t["role"] == "assistant" and BOILERPLATE.search(t["content"]) for t in conv.turns):
            return self.drop("boilerplate")
        if not self.cfg.keep_english and chinese_share([t["content"] for t in conv.turns]) < self.cfg.min_chinese:
            return self.drop("not_chinese")
        key = text_key(conv)
        digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
        if digest in self.seen:
            return self.drop("duplicate")
        self.seen.add(digest)
        if self.near is not None and self.near.seen(simhash(key[:1024])):
            return self.drop("near_duplicate")
        return self.fit_length(conv)

    def fit_length(self, conv: Conversation) -> Conversation | None:
        if self.encoder is None:
            self.report.lengths.append(sum(len(t["content"]) for t in conv.turns))
            return conv
        from .chat_format import Turn, encode_conversation

        encode, bos_id, eos_id = self.encoder
        turns = [Turn(t["role"], t["content"]) for t in conv.turns]
        limit = self.cfg.max_tokens if self.cfg.overlong == "cut" else None
        encoded = encode_conversation(encode, turns, conv.system, bos_id, eos_id, max_tokens=limit)
        if encoded is None or len(encoded[0]) > self.cfg.max_tokens:
            return self.drop("too_long")
        n_tokens = len(encoded[0])
        kept_turns = sum(1 for x in encoded[1] if x == eos_id) * 2
        if kept_turns < len(conv.turns):
            conv.turns = conv.turns[:kept_turns]
            self.report.modified["cut_at_turn_boundary"] += 1
        self.report.lengths.append(n_tokens)
        return conv


# ---------------------------------------------------------------- tokenizer, split, output


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


def split_of(conv: Conversation, val_ratio: float) -> str:
    """'train' or 'validation', from a hash of the conversation's text: stable across runs and orders."""
    key = text_key(conv).encode()
    bucket = int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2**64
    return "validation" if bucket < val_ratio else "train"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def prepare(inputs: list[Path], out: Path, cfg: DataConfig, force: bool = False, progress: bool = True) -> Report:
    """Read, clean and write every input; the outputs appear only when the whole run succeeded."""
    for path in inputs:
        if not path.is_file():
            raise DataError(f"{path}: no such file; pass the downloaded dataset files")
    names = [p.name for p in inputs]
    if len(set(names)) != len(names):
        raise DataError("two inputs share a file name; rename one so sources stay distinguishable")
    targets = [out / "train.jsonl", out / "validation.jsonl", out / "manifest.json"]
    if not force and any(t.exists() for t in targets):
        raise DataError(f"{out}: already holds prepared data; pass --force to replace it")
    out.mkdir(parents=True, exist_ok=True)
    report = Report()
    encoder = load_encoder(cfg.tokenizer) if cfg.tokenizer else None
    report.length_unit = "tokens" if encoder else "characters"
    cleaner = Cleaner(cfg, report, encoder)
    tmp = {s: tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=out, prefix=f".{s}.", delete=False)
           for s in ("train", "validation")}
    try:
        bar = _progress(sum(p.stat().st_size for p in inputs), progress)
        for path in inputs:
            for conv in read_conversations(path, cfg, report):
                kept = cleaner.clean(conv)
                if kept is not None:
                    _count_kept(report, kept)
                    split = split_of(kept, cfg.val_ratio)
                    report.split[split] += 1
                    tmp[split].write(json.dumps(kept.to_json(), ensure_ascii=False) + "\n")
            bar.update(path.stat().st_size)
        bar.close()
        for split, f in tmp.items():
            f.close()
            os.replace(f.name, out / f"{split}.jsonl")
    finally:
        for f in tmp.values():
            f.close()
            if os.path.exists(f.name):
                os.unlink(f.name)
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


def _count_kept(report: Report, conv: Conversation) -> None:
    multi = len(conv.turns) > 2
    (report.kept_multi if multi else report.kept_single)[conv.source] += 1
    report.categories[conv.category or "(none)"] += 1


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, desc="aurora-data", file=sys.stderr, disable=not enabled)


# ---------------------------------------------------------------- report


def write_report(report: Report, folder: Path) -> Path:
    """report.md (the paper's Table 1 layout, drops per rule) and two PNG charts."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["# aurora-data report", "", "## Conversations kept (layout of the Aurora paper's Table 1)", "",
             "| source | single-turn | multi-turn | total | read |", "|---|---:|---:|---:|---:|"]
    for source in report.read:
        s, m = report.kept_single[source], report.kept_multi[source]
        lines.append(f"| {source} | {s:,} | {m:,} | {s + m:,} | {report.read[source]:,} |")
    s, m = sum(report.kept_single.values()), sum(report.kept_multi.values())
    lines += [f"| **total** | {s:,} | {m:,} | {s + m:,} | {sum(report.read.values()):,} |", "",
              "## Dropped, per rule", "", "| rule | dropped | meaning |", "|---|---:|---|"]
    for rule, meaning in RULES.items():
        lines.append(f"| {rule} | {report.dropped[rule]:,} | {meaning} |")
    lines += ["", "## Changed but kept", "", "| change | conversations |", "|---|---:|"]
    lines += [f"| {k} | {v:,} |" for k, v in sorted(report.modified.items())] or ["| (none) | 0 |"]
    lines += ["", f"Split: {report.split['train']:,} train, {report.split['validation']:,} validation.", ""]
    if report.lengths:
        ls = sorted(report.lengths)
        pct = lambda q: ls[min(len(ls) - 1, int(q * len(ls)))]  # noqa: E731
        lines.append(f"Length in {report.length_unit}: median {pct(0.5):,}, p90 {pct(0.9):,}, "
                     f"p99 {pct(0.99):,}, max {ls[-1]:,}.")
    lines += ["", "![categories](categories.png)", "", "![lengths](lengths.png)", ""]
    _charts(report, folder)
    path = folder / "report.md"
    write_text(path, "\n".join(lines))
    return path


def _charts(report: Report, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = report.categories.most_common(20)
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.barh([k for k, _ in reversed(top)], [v for _, v in reversed(top)])
    ax.set_xlabel("conversations")
    ax.set_title("Category distribution (top 20)")
    fig.tight_layout()
    fig.savefig(folder / "categories.png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.hist(report.lengths or [0], bins=50)
    ax.set_xlabel(f"conversation length ({report.length_unit})")
    ax.set_ylabel("conversations")
    ax.set_title("Length histogram")
    fig.tight_layout()
    fig.savefig(folder / "lengths.png", dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aurora-data",
        description="Turn alpaca_data_zh_51k, alpaca_gpt4_data_zh and ShareGPT-Chinese-English-90k (or any "
        "file in the alpaca, firefly, sharegpt or openai-messages format) into cleaned, training-ready "
        "conversations: OUT/train.jsonl, OUT/validation.jsonl and OUT/manifest.json. Every cleaning rule "
        "is counted; --report DIR writes report.md with the paper's Table 1 layout and charts.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("inputs", nargs="+", type=Path, help="dataset files (.json arrays or .jsonl)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--force", action="store_true", help="replace prepared data already in --out")
    parser.add_argument("--report", type=Path, help="write report.md and PNG charts into this folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    defaults = DataConfig()
    parser.add_argument("--format", default=defaults.format, choices=("auto", *FORMATS), help="input format")
    parser.add_argument("--min-chars", type=int, default=defaults.min_chars, help="shortest allowed turn")
    parser.add_argument("--min-chinese", type=float, default=defaults.min_chinese,
                        help="least Chinese share: CJK chars / (CJK chars + Latin words)")
    parser.add_argument("--keep-english", action="store_true", help="keep conversations below --min-chinese")
    parser.add_argument("--near-dup", action="store_true", help="also drop near duplicates (SimHash)")
    parser.add_argument("--tokenizer", help="tokenizer.model or base checkpoint folder, for --max-tokens")
    parser.add_argument("--max-tokens", type=int, default=defaults.max_tokens,
                        help="longest conversation in template tokens (needs --tokenizer)")
    parser.add_argument("--overlong", default=defaults.overlong, choices=("drop", "cut"),
                        help="drop an over-long conversation, or cut it at a turn boundary")
    parser.add_argument("--val-ratio", type=float, default=defaults.val_ratio, help="validation share")
    parser.add_argument("--skip-invalid", action="store_true",
                        help="go on past malformed lines and unknown records, counting them")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = DataConfig(format=args.format, min_chars=args.min_chars, min_chinese=args.min_chinese,
                         keep_english=args.keep_english, near_dup=args.near_dup, tokenizer=args.tokenizer,
                         max_tokens=args.max_tokens, overlong=args.overlong, val_ratio=args.val_ratio,
                         skip_invalid=args.skip_invalid)
        report = prepare(args.inputs, args.out, cfg, force=args.force, progress=not args.no_progress)
        if args.report:
            write_report(report, args.report)
    except (DataError, UnicodeDecodeError) as exc:
        print(f"aurora-data: error: {exc}", file=sys.stderr)
        return 2
    kept = report.split["train"] + report.split["validation"]
    print(f"kept {kept:,} of {sum(report.read.values()):,} conversations "
          f"({report.split['train']:,} train, {report.split['validation']:,} validation) in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
