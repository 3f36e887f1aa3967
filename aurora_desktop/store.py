"""Chats on disk: one SQLite file in WAL mode that loses nothing.

Every message is a row; a conversation is a tree (each message has a parent), so editing a question
or regenerating an answer adds a sibling version and destroys nothing. The conversation remembers
which leaf is shown; `branch` walks from it to the root. An answer being written is stored as it grows
(`status = 'streaming'`) and committed when finished; after a crash such rows read 'interrupted'.

The schema is versioned (`PRAGMA user_version`); before a migration the file is copied aside.
Full-text search uses FTS5's trigram tokenizer (substrings of 3+ characters, Chinese included) and,
for 1-2 character queries (most Chinese words), a substring scan over the messages.
"""

from __future__ import annotations

import json
import re
from array import array
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from aurora_core.chat_format import ORDER_RULE, expected_role
from aurora_core.errors import AuroraError
from aurora_core.files import parse_json

SCHEMA_VERSION = 5
MAX_IMPORT_BYTES = 256 << 20
STATES = "states"  # beside the database: each chat's saved KV cache, chat-ID.kv (see ChatEngine.save_state)
STATE_BUDGET = 2 << 30  # bytes of saved KV states kept; the least recently used go first
STATUSES = ("done", "streaming", "interrupted", "stopped", "error")

# Version 1, the first release: linear conversations (kept here: migrations start from it).
SCHEMA_V1 = """
CREATE TABLE conversations (
    id INTEGER PRIMARY KEY, title TEXT NOT NULL, system TEXT, created REAL NOT NULL, updated REAL NOT NULL);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY, conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    position INTEGER NOT NULL, role TEXT NOT NULL, content TEXT NOT NULL, created REAL NOT NULL);
PRAGMA user_version = 1;
"""

# Version 2: branches (parent_id, current_leaf), per-conversation settings, soft delete, streaming status, FTS.
MIGRATE_1_TO_2 = """
ALTER TABLE conversations ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';
ALTER TABLE conversations ADD COLUMN model TEXT;
ALTER TABLE conversations ADD COLUMN current_leaf INTEGER;
ALTER TABLE conversations ADD COLUMN deleted REAL;
ALTER TABLE messages ADD COLUMN parent_id INTEGER REFERENCES messages(id);
ALTER TABLE messages ADD COLUMN status TEXT NOT NULL DEFAULT 'done';
UPDATE messages SET parent_id = (
    SELECT p.id FROM messages p WHERE p.conversation_id = messages.conversation_id
    AND p.position < messages.position ORDER BY p.position DESC LIMIT 1);
UPDATE conversations SET current_leaf = (
    SELECT m.id FROM messages m WHERE m.conversation_id = conversations.id ORDER BY m.position DESC LIMIT 1);
CREATE INDEX messages_tree ON messages(conversation_id, parent_id);
CREATE VIRTUAL TABLE messages_fts USING fts5(content, content='messages', content_rowid='id', tokenize='trigram');
INSERT INTO messages_fts(rowid, content) SELECT id, content FROM messages;
CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content); END;
CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content); END;
CREATE TRIGGER messages_au AFTER UPDATE OF content ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
    INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content); END;
PRAGMA user_version = 2;
"""
# Version 3: folders, each with a default system prompt and settings that its chats start from.
MIGRATE_2_TO_3 = """
CREATE TABLE folders (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, system TEXT, settings TEXT NOT NULL DEFAULT '{}', created REAL NOT NULL);
ALTER TABLE conversations ADD COLUMN folder_id INTEGER REFERENCES folders(id) ON DELETE SET NULL;
CREATE INDEX conversations_folder ON conversations(folder_id);
PRAGMA user_version = 3;
"""
# Version 4: the token ids the model sampled for each answer, so a reopened chat is read as the model wrote it
# (re-tokenizing an answer's text can give other ids, and the saved KV cache would stop matching there).
MIGRATE_3_TO_4 = """
ALTER TABLE messages ADD COLUMN token_ids BLOB;
PRAGMA user_version = 4;
"""
# Version 5: a question asked with a knowledge base keeps the passages that went in with it (JSON: path, page, text),
# so the chat is read again as the model saw it and the answer shows its sources.
MIGRATE_4_TO_5 = """
ALTER TABLE messages ADD COLUMN sources TEXT;
PRAGMA user_version = 5;
"""
MIGRATIONS = {1: MIGRATE_1_TO_2, 2: MIGRATE_2_TO_3, 3: MIGRATE_3_TO_4, 4: MIGRATE_4_TO_5}
ALL, UNFILED = -1, 0  # conversations(folder): every chat, or the chats in no folder (folder ids start at 1)


class StoreError(AuroraError):
    """The chat database cannot be read or written; the message says why and what to do."""


@dataclass(frozen=True)
class ChatRow:
    id: int
    title: str
    updated: float
    system: str | None = None
    settings: dict | None = None
    model: str | None = None
    folder_id: int | None = None


@dataclass(frozen=True)
class FolderRow:
    id: int
    name: str
    system: str | None = None
    settings: dict | None = None


@dataclass(frozen=True)
class MessageRow:
    id: int
    parent_id: int | None
    role: str
    content: str
    status: str
    version: int = 1
    """1-based index among its versions (siblings with the same parent and role)."""
    versions: int = 1
    token_ids: tuple[int, ...] | None = None
    """For an answer the model wrote: the ids it sampled (None for imported or older answers)."""
    sources: tuple[dict, ...] | None = None
    """For a question asked with a knowledge base: the passages that went in with it ({path, page, text})."""


@dataclass(frozen=True)
class SearchHit:
    conversation_id: int
    message_id: int
    title: str
    snippet: str


def _explain(path: Path, exc: sqlite3.Error) -> StoreError:
    text = str(exc)
    if "full" in text:
        why = "the disk is full; free some space (nothing already saved was lost)"
    elif "readonly" in text or "read-only" in text:
        why = "the database is read-only; check the file's permissions"
    elif "not a database" in text or "malformed" in text:
        why = "the file is not a chat database or is damaged; move it aside to start a new one"
    elif "locked" in text:
        why = "another program holds the database; close it and try again"
    else:
        why = f"the database could not do this ({text}); your saved chats are unchanged"
    return StoreError(f"{path}: {why}")


class Store:
    """The chat database. One connection, used from the GUI thread."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._depth = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(self.path), isolation_level=None)
            self.db.row_factory = sqlite3.Row
            self.db.create_function("casefold", 1, lambda s: s.casefold() if isinstance(s, str) else s,
                                    deterministic=True)  # SQLite's lower() folds ASCII only
            if self.version() > SCHEMA_VERSION:  # before anything writes to the file
                self.db.close()
                raise StoreError(f"{self.path}: was written by a newer Aurora Desktop (schema {self.version_seen}); "
                                 "update the app (your chats are untouched)")
            self._refuse_foreign()
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.execute("PRAGMA secure_delete = ON")  # deleted text is overwritten with zeros, not left in free pages
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
            self._write("UPDATE messages SET status = 'interrupted' WHERE status = 'streaming'")
        except sqlite3.Error as exc:
            raise _explain(self.path, exc) from None
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot open ({exc.strerror}); choose another data folder") from None

    # -- schema -----------------------------------------------------------------------------------

    def version(self) -> int:
        self.version_seen = self.db.execute("PRAGMA user_version").fetchone()[0]
        return self.version_seen

    def _migrate(self) -> None:
        version = self.version()
        if version == 0:
            self.db.executescript(SCHEMA_V1)
            version = 1
        elif version < SCHEMA_VERSION:
            self.backup(self.path.with_name(f"{self.path.name}.v{version}-backup"))
        while version < SCHEMA_VERSION:
            self.db.executescript("BEGIN;" + MIGRATIONS[version] + "COMMIT;")
            version = self.version()

    def _refuse_foreign(self) -> None:
        """An SQLite file that is not Aurora's (other tables, a negative version) is closed before anything
        writes to it (WAL mode would)."""
        version = self.version()
        tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if (version == 0 and not tables) or (version >= 1 and {"conversations", "messages"} <= tables):
            return
        self.db.close()
        raise StoreError(f"{self.path}: is an SQLite database of another program (schema {version}, tables "
                         f"{', '.join(sorted(tables))[:80] or 'none'}), not Aurora's chats; it was left untouched: "
                         "move it aside or choose another data folder")

    def backup(self, target: Path) -> Path:
        """A consistent copy of the database (WAL included) at `target`."""
        copy = sqlite3.connect(str(target))
        with copy:
            self.db.backup(copy)
        copy.close()
        return target

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All of the block's writes or none of them; blocks nest (the inner ones are savepoints)."""
        name = f"aurora_{self._depth}"
        self._depth += 1
        try:
            self.db.execute(f"SAVEPOINT {name}")
            try:
                yield
            except BaseException:
                self.db.execute(f"ROLLBACK TO {name}")
                self.db.execute(f"RELEASE {name}")
                raise
            self.db.execute(f"RELEASE {name}")
        except sqlite3.Error as exc:
            raise _explain(self.path, exc) from None
        finally:
            self._depth -= 1

    def _write(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        try:
            return self.db.execute(sql, args)
        except sqlite3.Error as exc:
            raise _explain(self.path, exc) from None

    # -- conversations ----------------------------------------------------------------------------

    def create(self, title: str = "", system: str | None = None, settings: dict | None = None,
               model: str | None = None, folder_id: int | None = None) -> int:
        now = time.time()
        return self._write("INSERT INTO conversations (title, system, settings, model, created, updated, folder_id) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)", (storable(title), storable(system), json.dumps(settings or {}),
                                                            model, now, now, folder_id or None)).lastrowid

    def conversations(self, folder: int = ALL) -> list[ChatRow]:
        """Shown chats, newest first: all of them, those in no folder (UNFILED), or those in folder `folder`."""
        where, args = _folder_filter(folder, "folder_id")
        rows = self.db.execute(f"SELECT {CHAT_COLUMNS} FROM conversations WHERE deleted IS NULL{where} "
                               "ORDER BY updated DESC, id DESC", args).fetchall()
        return [self._chat(r) for r in rows]

    def exists(self, conv_id: int) -> bool:
        """Whether `conv_id` is still in the database (shown or hidden, not purged)."""
        return self.db.execute("SELECT 1 FROM conversations WHERE id = ?", (conv_id,)).fetchone() is not None

    def conversation(self, conv_id: int) -> ChatRow:
        row = self.db.execute(f"SELECT {CHAT_COLUMNS} FROM conversations WHERE id = ?", (conv_id,)).fetchone()
        if row is None:
            raise StoreError(f"{self.path}: conversation {conv_id} does not exist")
        return self._chat(row)

    @staticmethod
    def _chat(r: sqlite3.Row) -> ChatRow:
        return ChatRow(r["id"], r["title"], r["updated"], r["system"], _settings(r["settings"]), r["model"],
                       r["folder_id"])

    def effective(self, conv_id: int) -> tuple[str | None, dict]:
        """(system prompt, settings) a chat runs with: its own, over its folder's defaults."""
        chat = self.conversation(conv_id)
        folder = self.folder(chat.folder_id) if chat.folder_id else None
        system = chat.system or (folder.system if folder else None)
        own = {k: v for k, v in (chat.settings or {}).items() if v is not None}  # None: the folder's, if any
        return system, {**(folder.settings if folder else {}), **own}

    def state_file(self, conv_id: int) -> Path:
        """Where the chat's KV cache is saved between sessions (it may not exist)."""
        return self.path.parent / STATES / f"chat-{conv_id}.kv"

    def move(self, conv_id: int, folder_id: int | None) -> None:
        """Put a chat into a folder (None: into no folder)."""
        self._write("UPDATE conversations SET folder_id = ? WHERE id = ?", (folder_id or None, conv_id))

    # -- folders ----------------------------------------------------------------------------------

    def folders(self) -> list[FolderRow]:
        rows = self.db.execute("SELECT id, name, system, settings FROM folders ORDER BY name COLLATE NOCASE, id")
        return [FolderRow(r["id"], r["name"], r["system"], _settings(r["settings"])) for r in rows]

    def folder(self, folder_id: int) -> FolderRow:
        r = self.db.execute("SELECT id, name, system, settings FROM folders WHERE id = ?", (folder_id,)).fetchone()
        if r is None:
            raise StoreError(f"{self.path}: folder {folder_id} does not exist")
        return FolderRow(r["id"], r["name"], r["system"], _settings(r["settings"]))

    def create_folder(self, name: str, system: str | None = None, settings: dict | None = None) -> int:
        return self._write("INSERT INTO folders (name, system, settings, created) VALUES (?, ?, ?, ?)",
                           (storable(name), storable(system) or None, json.dumps(settings or {}), time.time())).lastrowid

    def update_folder(self, folder_id: int, name: str | None = None, system: str | None = None,
                      settings: dict | None = None) -> None:
        """Change what is given: the name, the default system prompt ("" clears it), the default settings."""
        if name is not None:
            self._write("UPDATE folders SET name = ? WHERE id = ?", (storable(name), folder_id))
        if system is not None:
            self._write("UPDATE folders SET system = ? WHERE id = ?", (storable(system) or None, folder_id))
        if settings is not None:
            self._write("UPDATE folders SET settings = ? WHERE id = ?", (json.dumps(settings), folder_id))

    def delete_folder(self, folder_id: int, with_chats: bool = False) -> list[int]:
        """Remove a folder; its chats move to no folder, or (`with_chats`) are deleted as `delete` does (undo
        brings them back until purged). Returns the deleted chats' ids."""
        deleted = [r[0] for r in self.db.execute(
            "SELECT id FROM conversations WHERE folder_id = ? AND deleted IS NULL", (folder_id,))] if with_chats else []
        with self.transaction():
            for conv_id in deleted:
                self.delete(conv_id)
            self._write("UPDATE conversations SET folder_id = NULL WHERE folder_id = ?", (folder_id,))
            self._write("DELETE FROM folders WHERE id = ?", (folder_id,))
        return deleted

    def rename(self, conv_id: int, title: str) -> None:
        self._write("UPDATE conversations SET title = ? WHERE id = ?", (storable(title), conv_id))

    def set_system(self, conv_id: int, system: str | None) -> None:
        self._write("UPDATE conversations SET system = ? WHERE id = ?", (storable(system) or None, conv_id))

    def set_settings(self, conv_id: int, settings: dict) -> None:
        self._write("UPDATE conversations SET settings = ? WHERE id = ?", (json.dumps(settings), conv_id))

    def delete(self, conv_id: int) -> None:
        """Hide a conversation (undo brings it back); `purge` removes hidden ones for good."""
        self._write("UPDATE conversations SET deleted = ? WHERE id = ?", (time.time(), conv_id))

    def delete_all(self) -> int:
        """Every chat and folder gone for good, now (no undo): the rows, the index, every copy in the files."""
        with self.transaction():
            self._write("UPDATE conversations SET deleted = ? WHERE deleted IS NULL", (time.time(),))
            self._write("DELETE FROM folders")
        return self.purge()

    def undelete(self, conv_id: int) -> None:
        self._write("UPDATE conversations SET deleted = NULL WHERE id = ?", (conv_id,))

    def purge(self, deleted_before: float | None = None) -> int:
        """Remove hidden conversations (all, or those hidden before `deleted_before`) for good: their rows, their
        full-text index entries (the index is rewritten without them), their saved KV cache files and, with the
        WAL checkpointed and truncated, every copy of their text in the database's files. Returns how many were
        removed."""
        cutoff = float("inf") if deleted_before is None else deleted_before
        ids = [r[0] for r in self.db.execute("SELECT id FROM conversations WHERE deleted IS NOT NULL AND deleted < ?",
                                             (cutoff,))]
        gone = self._write("DELETE FROM conversations WHERE deleted IS NOT NULL AND deleted < ?", (cutoff,)).rowcount
        for conv_id in ids:
            self.state_file(conv_id).unlink(missing_ok=True)  # its saved KV cache goes with it
        if gone:
            self._write("INSERT INTO messages_fts(messages_fts) VALUES ('optimize')")
            self._write("PRAGMA wal_checkpoint(TRUNCATE)")
        return gone

    # -- messages ---------------------------------------------------------------------------------

    def add(self, conv_id: int, parent_id: int | None, role: str, content: str, status: str = "done") -> int:
        """A new message under `parent_id`, shown from now on (it becomes the conversation's leaf)."""
        now = time.time()
        with self.transaction():
            pos = self._write("SELECT COALESCE(MAX(position), 0) + 1 FROM messages WHERE conversation_id = ?",
                              (conv_id,)).fetchone()[0]
            msg_id = self._write(
                "INSERT INTO messages (conversation_id, parent_id, position, role, content, status, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)", (conv_id, parent_id, pos, role, storable(content), status,
                                                 now)).lastrowid
            self._write("UPDATE conversations SET current_leaf = ?, updated = ? WHERE id = ?", (msg_id, now, conv_id))
        return msg_id

    def update(self, msg_id: int, content: str, status: str, token_ids: list[int] | None = None) -> None:
        """The text of a message being written (throttled by the caller), or its final text and status (and the
        token ids the model sampled for it)."""
        self._write("UPDATE messages SET content = ?, status = ? WHERE id = ?", (storable(content), status, msg_id))
        if token_ids is not None:
            self._write("UPDATE messages SET token_ids = ? WHERE id = ?", (array("i", token_ids).tobytes(), msg_id))

    def set_sources(self, msg_id: int, sources: list[dict]) -> None:
        """The knowledge-base passages that went in with the question `msg_id`."""
        self._write("UPDATE messages SET sources = ? WHERE id = ?", (json.dumps(sources, ensure_ascii=False), msg_id))

    def branch(self, conv_id: int) -> list[MessageRow]:
        """The messages shown: from the root to the conversation's current leaf, with their version counts."""
        leaf = self.db.execute("SELECT current_leaf FROM conversations WHERE id = ?", (conv_id,)).fetchone()
        if leaf is None or leaf[0] is None:
            return []
        rows = self.db.execute(
            "WITH RECURSIVE up(id) AS (SELECT ? UNION ALL SELECT m.parent_id FROM messages m JOIN up ON m.id = up.id "
            "WHERE m.parent_id IS NOT NULL) SELECT m.* FROM messages m JOIN up ON m.id = up.id", (leaf[0],)).fetchall()
        rows = sorted(rows, key=lambda r: r["position"])
        out = []
        for r in rows:
            sib = self.siblings(r["id"])
            ids = tuple(array("i", r["token_ids"])) if r["token_ids"] else None
            sources = tuple(json.loads(r["sources"])) if r["sources"] else None
            out.append(MessageRow(r["id"], r["parent_id"], r["role"], r["content"], r["status"],
                                  sib.index(r["id"]) + 1, len(sib), ids, sources))
        return out

    def siblings(self, msg_id: int) -> list[int]:
        """Every version of a message: the messages with its parent and role, oldest first."""
        r = self.db.execute("SELECT conversation_id, parent_id, role FROM messages WHERE id = ?", (msg_id,)).fetchone()
        return [x[0] for x in self.db.execute(
            "SELECT id FROM messages WHERE conversation_id = ? AND parent_id IS ? AND role = ? ORDER BY id",
            (r["conversation_id"], r["parent_id"], r["role"]))]

    def show_version(self, msg_id: int) -> None:
        """Show the version `msg_id` and, below it, the newest of its descendants."""
        leaf = msg_id
        while True:
            child = self.db.execute("SELECT id FROM messages WHERE parent_id = ? ORDER BY id DESC LIMIT 1",
                                    (leaf,)).fetchone()
            if child is None:
                break
            leaf = child[0]
        conv = self.db.execute("SELECT conversation_id FROM messages WHERE id = ?", (msg_id,)).fetchone()[0]
        self._write("UPDATE conversations SET current_leaf = ? WHERE id = ?", (leaf, conv))

    # -- search -----------------------------------------------------------------------------------

    def search(self, query: str, limit: int = 50, folder: int = ALL) -> list[SearchHit]:
        """Messages containing `query` (case-insensitive for Latin letters), newest conversation first."""
        query = storable(query).replace("\0", "").strip()
        if not query:
            return []
        where, extra = _folder_filter(folder, "c.folder_id")
        if len(query) >= 3:  # the trigram index finds any substring of 3+ characters
            sql = ("SELECT m.id, m.conversation_id, m.content, c.title FROM messages_fts f "
                   "JOIN messages m ON m.id = f.rowid JOIN conversations c ON c.id = m.conversation_id "
                   f"WHERE messages_fts MATCH ? AND c.deleted IS NULL{where} ORDER BY c.updated DESC, m.id LIMIT ?")
        else:  # 1-2 characters: most Chinese words; trigrams cannot see them
            sql = ("SELECT m.id, m.conversation_id, m.content, c.title FROM messages m "
                   "JOIN conversations c ON c.id = m.conversation_id "
                   f"WHERE instr(casefold(m.content), casefold(?)) > 0 AND c.deleted IS NULL{where} "
                   "ORDER BY c.updated DESC, m.id LIMIT ?")
        args = ('"' + query.replace('"', '""') + '"' if len(query) >= 3 else query, *extra, limit)
        try:
            rows = self.db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise _explain(self.path, exc) from None
        return [SearchHit(r["conversation_id"], r["id"], r["title"], _snippet(r["content"], query)) for r in rows]

    # -- export / import --------------------------------------------------------------------------

    def export_json(self, conv_id: int) -> dict:
        """The shown branch in the OpenAI messages shape, with the title."""
        chat = self.conversation(conv_id)
        messages = ([{"role": "system", "content": chat.system}] if chat.system else []) + [
            {"role": m.role, "content": m.content, **({"sources": list(m.sources)} if m.sources else {})}
            for m in self.branch(conv_id)]
        return {"title": chat.title, "messages": messages}

    def export_markdown(self, conv_id: int) -> str:
        chat = self.conversation(conv_id)
        lines = [f"# {chat.title or 'Aurora'}", ""]
        if chat.system:
            lines += [f"> {line}" for line in chat.system.splitlines()] + [""]
        for m in self.branch(conv_id):
            lines += [f"## {'用户' if m.role == 'user' else 'Aurora'}", "", m.content, ""]
        return "\n".join(lines)

    def import_file(self, path: str | Path) -> list[int]:
        """Conversations from an exported JSON file, all or none; StoreError naming the file otherwise."""
        path = Path(path)
        try:
            if path.stat().st_size > MAX_IMPORT_BYTES:
                raise StoreError(f"{path}: larger than {MAX_IMPORT_BYTES >> 20} MiB; not a chat export")
            text = path.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise StoreError(f"{path}: not UTF-8 text (byte {exc.start}); export the chats again as JSON") from None
        except OSError as exc:
            raise StoreError(f"{path}: cannot read it ({exc.strerror})") from None
        return self.import_json(parse_json(text, str(path), "choose a chat export (JSON)", StoreError), str(path))

    def import_json(self, data: object, source: str = "import") -> list[int]:
        """Conversations from JSON: one {"title"?, "messages": [...]}, or a list of them; their ids."""
        items = data if isinstance(data, list) else [data]
        parsed = [_parse_chat(item, f"{source}[{i}]" if isinstance(data, list) else source)
                  for i, item in enumerate(items)]
        ids = []
        with self.transaction():  # all of the file or none of it
            for title, system, messages in parsed:
                conv = self.create(title, system)
                parent = None
                for role, content in messages:
                    parent = self.add(conv, parent, role, content)
                ids.append(conv)
        return ids


CHAT_COLUMNS = "id, title, updated, system, settings, model, folder_id"


def prune_states(folder: Path, budget: int = STATE_BUDGET, keep: Path | None = None) -> int:
    """Delete the least recently used saved KV states until they fit `budget` bytes (never `keep`); how many."""
    files = sorted((p for p in Path(folder).glob("chat-*.kv") if p != keep), key=lambda p: p.stat().st_mtime)
    total = sum(p.stat().st_size for p in Path(folder).glob("chat-*.kv"))
    removed = 0
    for p in files:
        if total <= budget:
            break
        total -= p.stat().st_size
        p.unlink(missing_ok=True)
        removed += 1
    return removed


def _folder_filter(folder: int, column: str) -> tuple[str, tuple]:
    """The WHERE clause (and its argument) that keeps the chats of `folder`: ALL, UNFILED or a folder id."""
    if folder == ALL:
        return "", ()
    if folder == UNFILED:
        return f" AND {column} IS NULL", ()
    return f" AND {column} = ?", (folder,)


def _settings(text: str | None) -> dict:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _parse_chat(item: object, where: str) -> tuple[str, str | None, list[tuple[str, str]]]:
    if not isinstance(item, dict) or not isinstance(item.get("messages"), list):
        raise StoreError(f"{where}: expected an object with a 'messages' list (the OpenAI messages shape)")
    system, out = None, []
    for k, m in enumerate(item["messages"]):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            raise StoreError(f"{where}: message {k + 1} is not {{'role': ..., 'content': text}}")
        role = m.get("role")
        if role == "system" and k == 0:
            system = m["content"]
            continue
        if role != expected_role(len(out)):
            raise StoreError(f"{where}: message {k + 1} is {role!r} but must be {expected_role(len(out))!r} "
                             f"({ORDER_RULE})")
        out.append((role, m["content"]))
    title = item.get("title") if isinstance(item.get("title"), str) else ""
    return title or (out[0][1][:30] if out else ""), system, out


_SURROGATE = re.compile("[\ud800-\udfff]")


def storable(text: str | None) -> str | None:
    """Text SQLite can store as UTF-8: a lone surrogate (from JSON's "\\ud800") becomes U+FFFD."""
    return _SURROGATE.sub("\ufffd", text) if isinstance(text, str) else text


def _snippet(content: str, query: str, width: int = 40) -> str:
    i = content.lower().find(query.lower())
    if i < 0:
        return content[:2 * width].replace("\n", " ")
    start = max(0, i - width)
    text = content[start: i + len(query) + width].replace("\n", " ")
    return ("…" if start else "") + text + ("…" if i + len(query) + width < len(content) else "")
