"""A multi-turn conversation: a system prompt and alternating user/assistant messages."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from aurora_core.chat_format import ORDER_RULE, expected_role
from aurora_core.files import write_text


@dataclass
class Message:
    role: str  # "user" or "assistant"
    content: str
    reply_ids: list[int] | None = field(default=None, compare=False, repr=False)
    """For an answer the engine wrote: the ids it sampled, so the next turn reuses them from the KV cache."""


@dataclass
class Conversation:
    system: str | None = None
    messages: list[Message] = field(default_factory=list)
    dropped_pairs: int = field(default=0, compare=False)
    """How many of the oldest user/assistant pairs the model no longer sees (the chat outgrew the context);
    the engine keeps dropping at least these, so the KV cache keeps serving the turns that follow."""

    def add_user(self, text: str) -> None:
        if self.messages and self.messages[-1].role == "user":
            raise ValueError("the last message is already a user message; answer it first")
        self.messages.append(Message("user", text))

    def add_assistant(self, text: str, reply_ids: list[int] | None = None) -> None:
        if not self.messages or self.messages[-1].role != "user":
            raise ValueError("an assistant message must follow a user message")
        self.messages.append(Message("assistant", text, reply_ids))

    def pop_answer(self) -> Message | None:
        """Remove and return the last assistant message (for regenerating it)."""
        if self.messages and self.messages[-1].role == "assistant":
            return self.messages.pop()
        return None

    def reset(self) -> None:
        self.messages.clear()
        self.dropped_pairs = 0

    def as_messages(self) -> list[dict]:
        """OpenAI-style messages, system first: what a chat template renders."""
        out = [{"role": "system", "content": self.system}] if self.system else []
        return out + [{"role": m.role, "content": m.content} for m in self.messages]

    def to_json(self) -> dict:
        return {"system": self.system, "messages": [{"role": m.role, "content": m.content} for m in self.messages]}

    @classmethod
    def from_json(cls, data: object) -> "Conversation":
        """A conversation saved with /save: {"system": text or null, "messages": [{"role", "content"}, ...]},
        user and assistant alternating from a user message. ValueError says what is wrong."""
        if not isinstance(data, dict) or not isinstance(data.get("messages", []), list):
            raise ValueError("expected an object with a 'messages' list, as /save writes")
        system = data.get("system")
        if system is not None and not isinstance(system, str):
            raise ValueError(f"'system' is {type(system).__name__}, not text")
        conv = cls(system=system or None)
        for k, m in enumerate(data.get("messages", [])):
            if not isinstance(m, dict) or m.get("role") != expected_role(k) or not isinstance(m.get("content"), str):
                raise ValueError(f"message {k + 1} must be {{'role': '{expected_role(k)}', 'content': text}} "
                                 f"({ORDER_RULE})")
            conv.messages.append(Message(m["role"], m["content"]))
        return conv

    def save(self, path: str | Path) -> None:
        """Write as JSON through a temporary file (a crash never leaves half a file), with the user's umask."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps(self.to_json(), ensure_ascii=False, indent=2))

    @classmethod
    def load(cls, path: str | Path) -> "Conversation":
        """A conversation saved with /save; ValueError (or OSError) naming the file and what is wrong."""
        path = Path(path)
        with open(path, "rb") as f:  # a sane size: /dev/zero or a huge file is refused, not read to the end
            raw = f.read(MAX_LOAD_BYTES + 1)
        if len(raw) > MAX_LOAD_BYTES:
            raise ValueError(f"{path}: larger than {MAX_LOAD_BYTES // 2**20} MiB; not a saved conversation")
        try:
            return cls.from_json(json.loads(raw.decode("utf-8")))
        except UnicodeDecodeError:
            raise ValueError(f"{path}: not UTF-8 text; not a saved conversation") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{exc.lineno}:{exc.colno}: not a saved conversation ({exc.msg})") from None
        except RecursionError:
            raise ValueError(f"{path}: JSON nested too deeply; not a saved conversation") from None
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None


MAX_LOAD_BYTES = 64 * 2**20
