"""The conversation schema: what `aurora-data` writes and training reads, one JSON object a line.

    {"id", "source", "category", "system", "turns": [{"role": "user"|"assistant", "content"}]}

`write_line` is the one writer and `read_records` the one reader; a bad line is an error that
names the file and line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .chat_format import Turn
from .errors import AuroraError


class RecordError(AuroraError):
    pass


@dataclass
class ConversationRecord:
    id: str
    source: str
    category: str | None
    system: str | None
    turns: list[Turn] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"id": self.id, "source": self.source, "category": self.category, "system": self.system,
                "turns": [{"role": t.role, "content": t.content} for t in self.turns]}

    @classmethod
    def from_json(cls, row: object) -> "ConversationRecord":
        if not isinstance(row, dict) or not isinstance(row.get("turns"), list):
            raise ValueError("expected an object with a 'turns' list")
        turns = []
        for t in row["turns"]:
            if not isinstance(t, dict) or t.get("role") not in ("user", "assistant") \
                    or not isinstance(t.get("content"), str):
                raise ValueError("a turn is not {'role': 'user'|'assistant', 'content': text}")
            turns.append(Turn(t["role"], t["content"]))
        system = row.get("system")
        if system is not None and not isinstance(system, str):
            raise ValueError("'system' is not text")
        return cls(str(row.get("id", "")), str(row.get("source", "")), row.get("category"), system, turns)


def write_line(f, record: ConversationRecord) -> None:
    f.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")


def read_records(path: Path) -> Iterator[tuple[int, ConversationRecord]]:
    """(line number, record) of every non-blank line of an aurora-data JSONL file."""
    try:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    yield lineno, ConversationRecord.from_json(json.loads(line))
                except ValueError as exc:  # JSONDecodeError is a ValueError
                    raise RecordError(f"{path}:{lineno}: not an aurora-data conversation ({exc}); "
                                      "regenerate it with aurora-data") from None
    except UnicodeDecodeError as exc:
        raise RecordError(f"{path}: not UTF-8 text (byte {exc.start}); regenerate it with aurora-data") from None
