"""Readers for the instruction datasets' formats: each record becomes one conversation.

  alpaca    JSON array or JSONL of {"instruction", "input", "output", "system"?, "history"?}
  firefly   shareAI/Firefly JSONL {"conversation_id", "category", "conversation": [{"human", "assistant"}]}
  sharegpt  {"conversations": [{"from": "human"|"gpt"|"system", "value"}], "system"?}
  openai    {"messages": [{"role", "content"}]}

Errors name the file, line and column.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterator

from aurora_core.chat_format import Turn
from aurora_core.files import MAX_JSON_DEPTH, too_deep
from aurora_core.records import ConversationRecord

from .settings import DataConfig, DataError, Report

EXPECTED_KEYS = (
    "alpaca (instruction, input, output), firefly (conversation: [{human, assistant}]), "
    "sharegpt (conversations: [{from, value}]), openai (messages: [{role, content}])"
)
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "chatgpt": "assistant", "bing": "assistant", "bard": "assistant", "system": "system"}


def convert_hint(head: bytes) -> str:
    """How to convert a file that is not UTF-8: UTF-16 (a BOM, or NUL bytes between ASCII ones), else GBK."""
    if head[:2] in (b"\xff\xfe", b"\xfe\xff") or head[1:200:2].count(0) > 20 or head[0:200:2].count(0) > 20:
        return "it looks like UTF-16: iconv -f UTF-16 -t UTF-8"
    return "e.g. iconv -f GBK -t UTF-8"


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
    with open(path, "rb") as f:
        for lineno, raw in enumerate(_bounded_lines(f), start=1):
            if raw is None:
                _invalid(f"{path}:{lineno}: a line longer than {MAX_LINE_BYTES >> 20} MiB; one record a line "
                         "(JSONL), or a JSON array", cfg, report)
                continue
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                _invalid(f"{path}:{lineno}: not UTF-8 text (byte {exc.start + 1}); convert the file to UTF-8 "
                         f"({convert_hint(raw)})", cfg, report)
                continue
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                _invalid(f"{path}:{lineno}:{exc.colno}: invalid JSON: {exc.msg}", cfg, report)
                continue
            except RecursionError:
                record = DEEP
            if record is DEEP or too_deep(record):
                _invalid(f"{path}:{lineno}: JSON nested more than {MAX_JSON_DEPTH} levels deep", cfg, report)
                continue
            yield lineno, record


DEEP = object()  # a record json could not parse for its depth
MAX_LINE_BYTES = 64 << 20  # one JSONL record; a multi-GB file without newlines is not read whole
MAX_ARRAY_BYTES = 2 << 30  # a JSON array is read whole (the datasets are 20-300 MB)


def _bounded_lines(f) -> Iterator[bytes | None]:
    """The file's lines, None for one longer than MAX_LINE_BYTES (skipped without holding it)."""
    while True:
        raw = f.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):
                raw = f.readline(MAX_LINE_BYTES)
            yield None
        else:
            yield raw


def _iter_json_array(path: Path, cfg: DataConfig, report: Report) -> Iterator[tuple[int, object]]:
    """Elements of a top-level JSON array, decoded one at a time from the file's text."""
    if path.stat().st_size > MAX_ARRAY_BYTES:
        raise DataError(f"{path}: a JSON array of {path.stat().st_size / 2**30:.1f} GiB is read whole; convert it "
                        "to JSONL, one record a line (jq -c '.[]' FILE > FILE.jsonl)")
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
            if too_deep(record):
                raise RecursionError
        except RecursionError:
            line, col = _position(text, pos)
            raise DataError(f"{path}:{line}:{col}: a record nested more than {MAX_JSON_DEPTH} levels deep; fix "
                            "the file") from None
        except json.JSONDecodeError as exc:
            line, col = _position(text, exc.pos)
            raise DataError(f"{path}:{line}:{col}: invalid JSON: {exc.msg}; fix the file "
                            "(a broken JSON array cannot be skipped past)") from None
        yield line, record
        pos = ws.match(text, end).end()
    if pos >= len(text):
        line, col = _position(text, len(text))
        raise DataError(f"{path}:{line}:{col}: invalid JSON: the array is not closed; the file looks truncated")
    rest = text[pos + 1:]
    if rest.strip():
        line, col = _position(text, pos + 1 + (len(rest) - len(rest.lstrip())))
        raise DataError(f"{path}:{line}:{col}: more data after the end of the JSON array ({len(rest.strip()):,} "
                        "characters); make it one array, or JSONL with one record a line")


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


def read_conversations(path: Path, cfg: DataConfig, report: Report) -> Iterator[ConversationRecord]:
    """Every conversation of one input file, before cleaning."""
    try:
        yield from _read_conversations(path, cfg, report)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.object[exc.start:exc.start + 4]!r}); "
                        f"convert it to UTF-8 ({convert_hint(exc.object[:4096])})") from None


def _read_conversations(path: Path, cfg: DataConfig, report: Report) -> Iterator[ConversationRecord]:
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
        yield ConversationRecord(f"{stem}:{lineno}", source, category, system, [Turn(r, c) for r, c in turns])


