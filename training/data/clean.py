"""The cleaning rules, in the order they run; every drop is counted under its rule's name."""

from __future__ import annotations

import hashlib
import re
import unicodedata

from aurora_core.chat_format import Turn, encode_conversation, misplaced_role
from aurora_core.records import ConversationRecord

from .settings import DataConfig, Report
from .simhash import NearDuplicates, simhash

# Assistant boilerplate that teaches a model to refuse or to talk about itself.
BOILERPLATE = re.compile(
    r"作为一个?(?:AI|人工智能)(?:语言)?(?:模型|助手)|作为一个?语言模型|我是一个?(?:AI|人工智能)语言模型"
    r"|as an ai language model|as an ai assistant|as a language model|i'?m an ai language model",
    re.IGNORECASE,
)
# Control characters, zero-width marks, and lone surrogates (JSON's "\\ud800" decodes to one; UTF-8 cannot hold it)
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\u200e\u200f\ufeff\ud800-\udfff]")
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
LATIN_WORD = re.compile(r"[A-Za-z]+")
BLANK_LINES = re.compile(r"\n{3,}")
TRAILING_SPACE = re.compile(r"[ \t]+\n")


def normalise(text: str) -> str:
    """NFC (not NFKC: full-width Chinese punctuation stays), no control characters, tidy whitespace."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = CONTROL.sub("", text)
    text = TRAILING_SPACE.sub("\n", text)
    text = BLANK_LINES.sub("\n\n", text)
    return text.strip()


def text_key(conv: ConversationRecord) -> str:
    """The conversation's text (system and turns), the key for duplicates and for the split."""
    return "\x1e".join([conv.system or ""] + [t.content for t in conv.turns])


def chinese_share(texts: list[str]) -> float:
    cjk = sum(len(CJK.findall(t)) for t in texts)
    words = sum(len(LATIN_WORD.findall(t)) for t in texts)
    return cjk / (cjk + words) if cjk + words else 0.0


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

    def clean(self, conv: ConversationRecord) -> ConversationRecord | None:
        turns = [Turn(t.role, normalise(t.content)) for t in conv.turns]
        changed = turns != conv.turns
        conv.turns = turns
        if conv.system is not None:
            new = normalise(conv.system)
            changed |= new != conv.system
            conv.system = new or None
        if changed:
            self.report.modified["normalised"] += 1
        if conv.turns and conv.turns[-1].role == "user":
            conv.turns.pop()
            self.report.modified["trailing_user_turn_removed"] += 1
        if not conv.turns or any(not t.content for t in conv.turns):
            return self.drop("empty_turn")
        if any(len(t.content) < self.cfg.min_chars for t in conv.turns):
            return self.drop("too_short")
        if misplaced_role([t.role for t in conv.turns]) is not None:
            return self.drop("broken_order")
        if any(t.role == "assistant" and BOILERPLATE.search(t.content) for t in conv.turns):
            return self.drop("boilerplate")
        if not self.cfg.keep_english and chinese_share([t.content for t in conv.turns]) < self.cfg.min_chinese:
            return self.drop("not_chinese")
        key = text_key(conv)
        digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
        if digest in self.seen:
            return self.drop("duplicate")
        self.seen.add(digest)
        if self.near is not None and self.near.seen(simhash(key[:1024])):
            return self.drop("near_duplicate")
        return self.fit_length(conv)

    def fit_length(self, conv: ConversationRecord) -> ConversationRecord | None:
        if self.encoder is None:
            self.report.lengths.append(sum(len(t.content) for t in conv.turns))
            return conv
        encode, bos_id, eos_id = self.encoder
        turns = conv.turns
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


