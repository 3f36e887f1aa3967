"""Knowledge bases in the window (pytest-qt, a real event loop): the manager dialog indexes off the GUI thread with a
progress row and Cancel, a chat with a knowledge base answers with its sources under the answer (a click opens the
file), the passages stay with the question so the next turn reuses the KV cache, and a folder's knowledge base
applies to its chats."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")
import llama_cpp  # noqa: E402,F401  -- before Qt, as the app does

from PySide6.QtCore import QObject, QPoint, Qt, Slot  # noqa: E402
from PySide6.QtGui import QDesktopServices  # noqa: E402
from test_desktop import dialogs, send, window  # noqa: E402,F401  -- the same window fixtures
from test_kb import docs  # noqa: E402,F401  -- the same documents

from aurora_desktop.kb.index import KnowledgeBase  # noqa: E402
from aurora_desktop.ui.knowledge import KnowledgeBaseDialog  # noqa: E402

QUICK = {"temperature": 0.0, "max_tokens": 8}


@pytest.fixture
def kb_dir(tmp_path, monkeypatch):
    folder = tmp_path / "kb"
    monkeypatch.setenv("AURORA_KB_DIR", str(folder))
    return folder


@pytest.fixture
def indexed(kb_dir, docs):
    kb = KnowledgeBase.open("资料")
    kb.add([docs])
    kb.close()
    return "资料"


def test_the_manager_indexes_off_the_gui_thread_and_shows_each_file(qtbot, kb_dir, docs):
    KnowledgeBase.open("新库").close()
    dialog = KnowledgeBaseDialog()
    qtbot.addWidget(dialog)
    assert dialog.current == "新库"
    seen = []
    dialog.index([docs])
    dialog.indexer.progress.connect(lambda done, total, path: seen.append((done, total)))
    assert dialog.progress.isVisibleTo(dialog) and not dialog.add_files.isEnabled()
    qtbot.waitUntil(lambda: dialog.indexer is None, timeout=60000)
    assert seen and seen[-1] == (8, 8)
    rows = {dialog.table.item(r, 0).text(): (dialog.table.item(r, 1).text(),
                                                                 dialog.table.item(r, 2).text())
            for r in range(dialog.table.rowCount())}
    assert rows["三页.pdf"][0] == "indexed" and "passages" in rows["三页.pdf"][1]
    assert rows["扫描.pdf"] == ("skipped", "no text layer (a scanned PDF?)")
    assert rows["latin1.txt"] == ("skipped", "unknown encoding; save it as UTF-8")
    assert "Indexed 6" in dialog.progress_label.text() and dialog.add_files.isEnabled()
    pdf = next(r for r in range(dialog.table.rowCount()) if dialog.table.item(r, 0).text() == "三页.pdf")
    assert dialog.table.item(pdf, 0).toolTip() == str(docs / "三页.pdf")  # the name shown, the whole path on hover


def test_every_skip_reason_has_a_translated_summary(kb_dir, tmp_path):
    """Each reason aurora_desktop.kb can give (raised in extract.py and index.py) maps to a summary in REASONS."""
    import ast
    from pathlib import Path

    from aurora_desktop.kb import extract, index
    from aurora_desktop.ui.knowledge import REASONS

    starts = []
    for module in (extract, index):
        for node in ast.walk(ast.parse(Path(module.__file__).read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Unreadable" and node.args:
                arg = node.args[0]
                part = arg.values[0] if isinstance(arg, ast.JoinedStr) else arg
                if isinstance(part, ast.IfExp):
                    part = part.body.values[0] if isinstance(part.body, ast.JoinedStr) else part.body
                if isinstance(part, ast.Constant):
                    starts.append(part.value)
    assert len(starts) >= 12
    assert [s for s in starts if not any(s.startswith(r) for r, _ in REASONS)] == []


def test_cancel_keeps_what_was_indexed(qtbot, kb_dir, docs):
    KnowledgeBase.open("新库").close()
    dialog = KnowledgeBaseDialog()
    qtbot.addWidget(dialog)
    dialog.index([docs])
    dialog.indexer.progress.connect(lambda done, total, path: done >= 2 and dialog.cancel())
    qtbot.waitUntil(lambda: dialog.indexer is None, timeout=60000)
    assert "Cancelled" in dialog.progress_label.text()
    assert 0 < dialog.table.rowCount() < 8


class Opened(QObject):
    def __init__(self):
        super().__init__()
        self.urls = []

    @Slot("QUrl")
    def open(self, url):
        self.urls.append(url.toLocalFile())


def test_a_chat_with_a_knowledge_base_answers_with_sources(qtbot, window, indexed, docs):
    w = window
    w.new_chat()
    w.store.set_settings(w.conv_id, {**QUICK, "knowledge_base": indexed})
    w.session.reload()
    send(qtbot, w, "熊猫吃什么？")
    question, answer = w.store.branch(w.conv_id)
    assert question.content == "熊猫吃什么？"  # the user's words as typed
    assert question.sources and question.sources[0]["page"] == 2 and question.sources[0]["path"].endswith("三页.pdf")
    first = w.last_gen
    assert first.prompt_tokens > 60  # the passages went to the model
    widget = w.view.widgets[-1]
    assert widget.sources.isVisible() and "[1] 三页.pdf, p. 2" in widget.sources.text()
    opened = Opened()  # a click on a source opens the file (Qt's own URL dispatch, the handler for file://)
    QDesktopServices.setUrlHandler("file", opened, "open")
    try:
        fm = widget.sources.fontMetrics()
        qtbot.mouseClick(widget.sources, Qt.MouseButton.LeftButton,
                         pos=QPoint(fm.horizontalAdvance("Sources: [") + 2, fm.height() // 2 + 1))
        qtbot.waitUntil(lambda: bool(opened.urls), timeout=5000)
    finally:
        QDesktopServices.unsetUrlHandler("file")
    assert opened.urls == [question.sources[0]["path"]]
    send(qtbot, w, "长城是什么时候修的？")  # the next turn: the first turn (passages and all) comes from the KV cache
    second = w.last_gen
    assert second.reused_tokens >= first.prompt_tokens
    w.session.reload()  # read again from the database: the model sees the same text
    assert "资料：" in w.session.conversation.messages[0].content
    w.show_chat()
    assert "三页.pdf, p. 2" in w.view.widgets[1].sources.text()


def test_a_folders_knowledge_base_applies_to_its_chats(qtbot, window, indexed):
    w = window
    folder = w.store.create_folder("读书", settings={**QUICK, "knowledge_base": indexed})
    conv = w.store.create("", folder_id=folder)
    w.open_chat(conv)
    send(qtbot, w, "营业收入增长了多少？")
    question = w.store.branch(conv)[0]
    assert question.sources and question.sources[0]["path"].endswith("报告.docx")
    w.store.set_settings(conv, {"knowledge_base": None})  # the chat's own "none" leaves the folder's in place
    assert w.store.effective(conv)[1]["knowledge_base"] == indexed


def _settings_dialog(qtbot, w, change) -> None:
    """File → Chat settings through the real modal dialog: `change(dialog)` sets its widgets, then OK."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from aurora_desktop.ui.dialogs import ChatSettingsDialog

    seen = []

    def fill() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, ChatSettingsDialog):
            QTimer.singleShot(10, fill)
            return
        seen.append(dialog)
        change(dialog)
        dialog.accept()

    QTimer.singleShot(0, fill)
    w.edit_chat_settings()
    assert seen


def test_a_chat_follows_its_folder_until_it_says_otherwise(qtbot, window, indexed):
    """The chat-settings dialog of a chat in a folder shows the folder's values; OK without a change keeps the chat
    following the folder (a later change of the folder applies), and "None" turns the folder's knowledge base off
    for this chat alone."""
    w = window
    folder = w.store.create_folder("读书", system="用中文回答。", settings={**QUICK, "knowledge_base": indexed})
    conv = w.store.create("", folder_id=folder)
    w.open_chat(conv)
    shown = {}
    _settings_dialog(qtbot, w, lambda d: shown.update(t=d.temperature.value(), kb=d.knowledge_base.currentData(),
                                                      hint=d.system.placeholderText()))
    assert shown == {"t": 0.0, "kb": indexed, "hint": "From the folder: 用中文回答。"}
    own = w.store.conversation(conv).settings
    assert all(v is None for v in own.values()), own  # nothing of its own: the folder's values, else the defaults
    w.store.update_folder(folder, settings={**QUICK, "temperature": 0.5, "knowledge_base": indexed})
    assert w.store.effective(conv)[1]["temperature"] == 0.5  # still the folder's

    _settings_dialog(qtbot, w, lambda d: d.knowledge_base.setCurrentIndex(d.knowledge_base.findData("")))
    assert w.store.conversation(conv).settings["knowledge_base"] == ""
    assert w.store.effective(conv)[1]["knowledge_base"] == ""  # this chat: none, the folder keeps its own
    send(qtbot, w, "营业收入增长了多少？")
    assert not w.store.branch(conv)[0].sources
    other = w.store.create("", folder_id=folder)
    assert w.store.effective(other)[1]["knowledge_base"] == indexed
