"""The chat database: branches, search in Chinese, export/import, migration, and errors that lose nothing."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from aurora_desktop.store import SCHEMA_VERSION, Store, StoreError

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "chats.sqlite")
    yield s
    s.close()


def chat(store, *texts, system=None):
    conv = store.create("测试", system)
    parent = None
    for i, text in enumerate(texts):
        parent = store.add(conv, parent, "user" if i % 2 == 0 else "assistant", text)
    return conv


def test_new_database_is_wal_and_current(store):
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.version() == SCHEMA_VERSION


def test_regenerate_and_edit_keep_every_branch(store):
    conv = chat(store, "问题一", "回答一", "问题二", "回答二")
    q1, a1, q2, a2 = [m.id for m in store.branch(conv)]
    regen = store.add(conv, q2, "assistant", "回答二（第二版）")  # regenerate the last answer
    assert [m.content for m in store.branch(conv)][-1] == "回答二（第二版）"
    assert (store.branch(conv)[-1].version, store.branch(conv)[-1].versions) == (2, 2)
    edited = store.add(conv, a1, "user", "问题二（改）")  # edit the second question
    store.add(conv, edited, "assistant", "新回答")
    assert [m.content for m in store.branch(conv)] == ["问题一", "回答一", "问题二（改）", "新回答"]
    store.show_version(q2)  # flip back to the first version of question two: its newest answer shows
    assert [m.content for m in store.branch(conv)] == ["问题一", "回答一", "问题二", "回答二（第二版）"]
    store.show_version(a2)
    assert [m.content for m in store.branch(conv)][-1] == "回答二"
    assert store.siblings(regen) == [a2, regen] and store.siblings(edited) == [q2, edited]
    assert store.db.execute("SELECT count(*) FROM messages").fetchone()[0] == 7  # nothing destroyed


def test_search_finds_chinese_words_of_one_two_and_three_characters(store):
    a = chat(store, "混合专家模型在每一层选择两个专家", "是的")
    b = chat(store, "Mixture of Experts in English", "好")
    store.rename(a, "模型")
    hits = lambda q: {(h.conversation_id, h.message_id) for h in store.search(q)}  # noqa: E731
    assert {c for c, _ in hits("专家")} == {a}  # two characters: the substring scan
    assert {c for c, _ in hits("专")} == {a}  # one character
    assert {c for c, _ in hits("混合专家")} == {a}  # four: the trigram index
    assert {c for c, _ in hits("experts")} == {b}  # case-insensitive Latin
    assert {c for c, _ in hits("好")} == {b}
    assert hits("没有的词") == set()
    assert "专家" in store.search("专家")[0].snippet
    store.delete(a)
    assert hits("专家") == set()  # a deleted chat is not found...
    store.undelete(a)
    assert {c for c, _ in hits("专家")} == {a}  # ...until it comes back


def test_streaming_answer_survives_as_interrupted(tmp_path):
    s = Store(tmp_path / "c.sqlite")
    conv = chat(s, "讲个故事")
    q = s.branch(conv)[0].id
    msg = s.add(conv, q, "assistant", "", status="streaming")
    s.update(msg, "从前有座山，", "streaming")
    s.db.close()  # no clean shutdown
    again = Store(tmp_path / "c.sqlite")
    last = again.branch(conv)[-1]
    assert (last.content, last.status) == ("从前有座山，", "interrupted")
    again.close()


def test_export_import_round_trip(store, tmp_path):
    conv = chat(store, "你好", "您好！", "1+1=?", "2", system="你是助手。")
    data = store.export_json(conv)
    assert data["messages"][0] == {"role": "system", "content": "你是助手。"}
    assert [m["role"] for m in data["messages"][1:]] == ["user", "assistant"] * 2
    (tmp_path / "c.json").write_text(json.dumps(data, ensure_ascii=False))
    [copy] = store.import_json(json.loads((tmp_path / "c.json").read_text()))
    assert store.export_json(copy) == data
    md = store.export_markdown(conv)
    assert md.startswith("# 测试") and "## 用户" in md and "1+1=?" in md
    with pytest.raises(StoreError, match=r"x\.json: message 2 is 'user' but must be 'assistant'"):
        store.import_json({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]},
                          "x.json")
    with pytest.raises(StoreError, match="expected an object with a 'messages' list"):
        store.import_json([1, 2], "y.json")
    assert len(store.conversations()) == 2  # a bad import adds nothing


def test_read_only_database_is_a_clear_error_and_keeps_what_was_saved(tmp_path):
    s = Store(tmp_path / "ro.sqlite")
    conv = chat(s, "保存的问题", "保存的回答")
    s.db.execute("PRAGMA query_only = 1")  # what SQLite reports for a file it may not write (root writes any file)
    with pytest.raises(StoreError, match=r"ro\.sqlite: the database is read-only"):
        s.add(conv, s.branch(conv)[-1].id, "user", "x")
    assert [m.content for m in s.branch(conv)] == ["保存的问题", "保存的回答"]
    s.close()


def test_full_disk_is_a_clear_error_and_keeps_what_was_saved(tmp_path):
    s = Store(tmp_path / "full.sqlite")
    conv = chat(s, "保存的问题", "保存的回答")
    pages = s.db.execute("PRAGMA page_count").fetchone()[0]
    s.db.execute(f"PRAGMA max_page_count = {pages}")  # the database cannot grow: as on a full disk
    with pytest.raises(StoreError, match="disk is full"):
        s.add(conv, s.branch(conv)[-1].id, "user", "很长的新问题" * 20000)
    assert [m.content for m in s.branch(conv)] == ["保存的问题", "保存的回答"]
    assert s.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    s.close()


def test_schema_v1_fixture_migrates_with_nothing_lost(tmp_path):
    """A database written by schema 1 (committed as a fixture) opens in the current version."""
    path = shutil.copy(FIXTURES / "chats-v1.sqlite", tmp_path / "chats.sqlite")
    with sqlite3.connect(path) as old:
        before = old.execute("SELECT conversation_id, position, role, content FROM messages ORDER BY id").fetchall()
        titles = old.execute("SELECT id, title, system FROM conversations ORDER BY id").fetchall()
        assert old.execute("PRAGMA user_version").fetchone()[0] == 1
    s = Store(path)
    assert s.version() == SCHEMA_VERSION
    for conv_id, title, system in titles:
        row = s.conversation(conv_id)
        assert (row.title, row.system) == (title, system)
        assert [(m.role, m.content) for m in s.branch(conv_id)] == [
            (r, c) for cid, _, r, c in before if cid == conv_id]
    assert {h.conversation_id for h in s.search("长城")} == {1}
    assert Path(str(path) + ".v1-backup").is_file()  # copied aside before the migration
    s.close()


def test_a_newer_schema_is_refused_untouched(tmp_path):
    path = tmp_path / "new.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE x (y)")
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    before = path.read_bytes()
    with pytest.raises(StoreError, match="newer Aurora Desktop"):
        Store(path)
    assert path.read_bytes() == before


def test_not_a_database(tmp_path):
    path = tmp_path / "junk.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a chat database"):
        Store(path)
