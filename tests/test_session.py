"""The chat session, the list models and folders without a window: a real Qt event loop, the real engine on a
tiny-kit GGUF, real SQLite files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("PySide6")
import llama_cpp  # noqa: E402,F401  -- before Qt, as the app does

from PySide6.QtCore import QMimeData, Qt  # noqa: E402

from aurora_desktop.engine import ChatEngine, EngineConfig  # noqa: E402
from aurora_desktop.store import ALL, SCHEMA_VERSION, UNFILED, Store  # noqa: E402
from aurora_desktop.ui.chat_list import CHAT_MIME, ID_ROLE, ConversationListModel, FolderListModel  # noqa: E402
from aurora_desktop.ui.session import ChatSession, sampling_for  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
QUICK = {"temperature": 0.0, "max_tokens": 8}


@pytest.fixture(scope="module")
def engine(exported):
    e = ChatEngine(exported["f16"], EngineConfig(n_ctx=2048, n_threads=2, n_batch=16))
    yield e
    e.close()


@pytest.fixture
def session(qapp, tmp_path, engine):
    store = Store(tmp_path / "chats.sqlite")
    s = ChatSession(store)
    s.engine = engine
    yield s
    s.stop_and_wait()
    store.close()


def answer(qtbot, session: ChatSession, text: str) -> None:
    session.send(text)
    qtbot.waitUntil(lambda: session.streaming is None, timeout=60000)


def stored(session: ChatSession) -> list[tuple[str, str]]:
    return [(r.role, r.content) for r in session.store.branch(session.conv_id)]


def test_a_turn_streams_saves_and_reads_the_branch_once(qtbot, session):
    session.new()
    session.store.set_settings(session.conv_id, QUICK)
    added, texts, ended = [], [], []
    session.message_added.connect(added.append)
    session.answer_text.connect(lambda msg_id, text: texts.append(text))
    session.answer_ended.connect(lambda row, status: ended.append((row, status)))
    reads = session.branch_reads
    answer(qtbot, session, "你好")
    answer(qtbot, session, "再说一遍")
    assert session.branch_reads == reads  # two turns, no branch read back from the store
    assert [r.role for r in added] == ["user", "assistant"] * 2
    assert [status for _, status in ended] == ["done", "done"]
    assert stored(session) == [(r.role, r.content) for r in session.branch]
    assert ended[-1][0].content == session.branch[-1].content and session.branch[-1].content
    assert [m.role for m in session.conversation.messages] == ["user", "assistant"] * 2
    assert session.conversation.messages[-1].reply_ids  # the sampled ids stay for the next turn's KV reuse
    assert session.store.conversation(session.conv_id).title == "你好"


def test_stop_keeps_what_was_written(qtbot, session):
    session.new()
    session.store.set_settings(session.conv_id, {"temperature": 0.0, "max_tokens": 4000})
    pieces = []
    session.send("写一个很长的故事")
    session.streaming.thread.piece.connect(lambda p: (pieces.append(p), len(pieces) == 5 and session.stop()))
    qtbot.waitUntil(lambda: session.streaming is None, timeout=60000)
    last = session.store.branch(session.conv_id)[-1]
    assert last.status == "stopped" and last.content and session.last_generation.completion_tokens < 4000


def test_regenerate_edit_and_flip_keep_every_version(qtbot, session):
    session.new()
    session.store.set_settings(session.conv_id, {"temperature": 1.0, "max_tokens": 8, "seed": 1})
    answer(qtbot, session, "第一个问题")
    first = session.branch[-1]
    session.regenerate()
    qtbot.waitUntil(lambda: session.streaming is None, timeout=60000)
    second = session.branch[-1]
    assert second.id != first.id and (second.version, second.versions) == (2, 2)
    assert stored(session) == [(r.role, r.content) for r in session.branch]
    session.flip(second.id, -1)
    assert session.branch[-1].id == first.id and session.branch[-1].content == first.content
    question = session.branch[0]
    session.edit(question.id, "改过的问题")
    qtbot.waitUntil(lambda: session.streaming is None, timeout=60000)
    assert session.branch[0].content == "改过的问题" and (session.branch[0].version, session.branch[0].versions) == (2, 2)
    assert len(session.branch) == 2 and stored(session) == [(r.role, r.content) for r in session.branch]
    session.flip(session.branch[0].id, -1)
    assert session.branch[0].content == "第一个问题" and session.branch[1].id == second.id  # its newest answer


def test_switching_chats_while_an_answer_streams(qtbot, session):
    a = session.new()
    session.store.set_settings(a, {"temperature": 0.0, "max_tokens": 200})
    session.send("写一篇长文")
    b = session.new()
    assert session.conv_id == b and session.branch == []
    ended = []
    session.answer_ended.connect(lambda row, status: ended.append(row))
    qtbot.waitUntil(lambda: session.streaming is None, timeout=60000)
    assert ended == []  # the views of chat b hear nothing of chat a's answer
    answer_a = session.store.branch(a)[-1]
    assert answer_a.role == "assistant" and answer_a.status == "done" and answer_a.content
    session.open(a)
    assert session.branch[-1].content == answer_a.content


def test_a_folder_gives_its_chats_a_system_prompt_and_settings(qtbot, session):
    store = session.store
    folder = store.create_folder("翻译", system="把用户的话翻译成英文。", settings={"temperature": 0.0, "max_tokens": 5})
    conv = session.new(folder)
    assert session.conversation.system == "把用户的话翻译成英文。"
    assert sampling_for(session.effective_settings()).max_tokens == 5
    store.set_settings(conv, {"max_tokens": 7})  # the chat's own value wins, the rest still comes from the folder
    assert session.effective_settings() == {"temperature": 0.0, "max_tokens": 7}
    answer(qtbot, session, "你好")
    assert session.last_generation.completion_tokens <= 7
    store.set_system(conv, "只用中文回答。")
    session.reload()
    assert session.conversation.system == "只用中文回答。"
    other = store.create("外面")
    store.move(other, folder)
    assert store.effective(other) == ("把用户的话翻译成英文。", {"temperature": 0.0, "max_tokens": 5})
    assert [c.id for c in store.conversations(folder)] == [other, conv]
    assert store.conversations(UNFILED) == []


def test_list_models_without_a_window(qapp, tmp_path):
    store = Store(tmp_path / "chats.sqlite")
    work = store.create_folder("工作")
    a, b, c = (store.import_json({"title": t, "messages": [{"role": "user", "content": m},
                                                          {"role": "assistant", "content": "好"}]})[0]
               for t, m in (("甲", "混合专家模型"), ("乙", "量化方法"), ("丙", "混合专家的路由")))
    store.move(a, work)
    store.move(c, work)
    folders = FolderListModel(store)
    assert [folders.index(i).data() for i in range(folders.rowCount())] == ["All chats", "工作", "No folder"]
    chats = ConversationListModel(store)
    chats.refresh(folder=ALL)
    assert [chats.index(i).data(ID_ROLE) for i in range(chats.rowCount())] == [c, b, a]
    chats.refresh(folder=work)
    assert [chats.index(i).data() for i in range(chats.rowCount())] == ["丙", "甲"]
    chats.refresh(query="混合专家")  # search within the folder
    assert {chats.index(i).data(ID_ROLE) for i in range(chats.rowCount())} == {a, c}
    chats.refresh(folder=UNFILED, query="")
    assert [chats.index(i).data(ID_ROLE) for i in range(chats.rowCount())] == [b]
    mime = chats.mimeData([chats.index(0)])  # drag chat b onto the folder
    target = folders.index(folders.row_of(work))
    assert folders.canDropMimeData(mime, Qt.DropAction.MoveAction, -1, -1, target)
    assert not folders.canDropMimeData(mime, Qt.DropAction.MoveAction, -1, -1, folders.index(0))  # "All chats"
    assert folders.dropMimeData(mime, Qt.DropAction.MoveAction, -1, -1, target)
    assert store.conversation(b).folder_id == work
    assert not folders.canDropMimeData(QMimeData(), Qt.DropAction.MoveAction, -1, -1, target)
    assert mime.hasFormat(CHAT_MIME)
    store.close()


def test_deleting_a_folder_keeps_or_deletes_its_chats(tmp_path):
    store = Store(tmp_path / "chats.sqlite")
    keep, drop = store.create_folder("留"), store.create_folder("删")
    a, b = store.create("a", folder_id=keep), store.create("b", folder_id=drop)
    assert store.delete_folder(keep) == [] and store.conversation(a).folder_id is None
    assert store.delete_folder(drop, with_chats=True) == [b]
    assert [c.id for c in store.conversations()] == [a] and store.exists(b)  # undoable until purged
    assert store.purge() == 1 and not store.exists(b) and store.folders() == []
    store.close()


def test_delete_all_leaves_nothing(tmp_path):
    store = Store(tmp_path / "chats.sqlite")
    store.create_folder("f")
    store.import_json([{"messages": [{"role": "user", "content": f"秘密{i}"}]} for i in range(3)])
    assert store.delete_all() == 3
    assert store.conversations() == [] and store.folders() == [] and store.search("秘密") == []
    assert store.db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0
    store.close()


def test_migration_from_a_committed_version_2_file(tmp_path):
    path = tmp_path / "chats.sqlite"
    shutil.copy(FIXTURES / "chats-v2.sqlite", path)
    store = Store(path)
    assert store.version() == SCHEMA_VERSION == 5 and (tmp_path / "chats.sqlite.v2-backup").is_file()
    chats = {c.title: c for c in store.conversations()}
    assert set(chats) == {"第一个对话", "second chat"}  # the deleted one stays hidden
    first = chats["第一个对话"]
    assert first.folder_id is None and first.settings == {"temperature": 0.2}
    assert store.effective(first.id) == ("你是一个乐于助人的助手。", {"temperature": 0.2})
    branch = store.branch(first.id)
    assert [r.content for r in branch] == ["什么是混合专家模型？", "混合专家模型在每一层只激活少数几个专家。"]
    assert (branch[1].version, branch[1].versions) == (1, 2)
    folder = store.create_folder("从旧版迁移")
    store.move(first.id, folder)
    assert [c.title for c in store.conversations(folder)] == ["第一个对话"]
    assert {h.conversation_id for h in store.search("混合专家", folder=folder)} == {first.id}
    assert store.search("混合专家", folder=UNFILED) == []
    store.close()


def test_a_reopened_chat_is_restored_from_its_saved_state(qtbot, session, engine):
    store = session.store
    first = session.new()
    store.set_settings(first, QUICK)
    for text in ("你好", "介绍一下你自己", "再说详细一点"):
        answer(qtbot, session, text)
    state = store.state_file(first)
    assert state.is_file() and state.parent.name == "states"
    answers = [r for r in store.branch(first) if r.role == "assistant"]
    assert all(r.token_ids for r in answers)  # the ids the model sampled are stored with each answer
    other = session.new()  # another chat takes the KV cache
    store.set_settings(other, QUICK)
    answer(qtbot, session, "换个话题")
    session.open(first)
    assert [m.reply_ids for m in session.conversation.messages if m.role == "assistant"] == \
        [list(r.token_ids) for r in answers]
    answer(qtbot, session, "回到刚才")
    gen = session.last_generation
    assert gen.restored_tokens > 0 and gen.prompt_tokens - gen.reused_tokens <= len(engine._encode("回到刚才")) + 20
    store.delete(first)
    store.purge()
    assert not state.exists() and store.state_file(other).exists()  # a deleted chat's saved cache goes with it


def test_saved_states_keep_to_their_budget(tmp_path):
    import os
    import time

    from aurora_desktop.store import prune_states

    folder = tmp_path / "states"
    folder.mkdir()
    for i in range(5):
        (folder / f"chat-{i}.kv").write_bytes(b"x" * 1000)
        os.utime(folder / f"chat-{i}.kv", (time.time() - 100 + i, time.time() - 100 + i))
    assert prune_states(folder, budget=2500, keep=folder / "chat-0.kv") == 3
    assert sorted(p.name for p in folder.iterdir()) == ["chat-0.kv", "chat-4.kv"]  # the oldest went, not `keep`
