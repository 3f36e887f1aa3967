"""The main window: conversations on the left, the chat in the middle, the composer below, a status bar."""

from __future__ import annotations

import json
import time
from pathlib import Path

from PySide6.QtCore import QEvent, QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QApplication, QFileDialog, QHBoxLayout, QInputDialog, QLabel, QLineEdit, QListView, QMainWindow, QMenu,
    QMessageBox, QProgressBar, QPushButton, QSplitter, QStackedWidget, QToolButton, QVBoxLayout, QWidget,
)

from aurora_core.errors import AuroraError

from ..conversation import Conversation
from ..engine import ChatEngine, EngineConfig, Generation, SamplingSettings
from ..store import ChatRow, Store
from . import i18n
from .chat_view import ChatView, MessageWidget
from .composer import SEND_CTRL_ENTER, SEND_ENTER, Composer
from .dialogs import ChatSettingsDialog, ModelPanel
from .i18n import tr
from .welcome import WelcomePanel
from .worker import GenerationThread, ImportThread, LoadThread

RENDER_MS = 50  # at most ~20 renders a second while an answer streams
SAVE_EVERY_S = 1.0  # the growing answer is written to the database about once a second
UNDO_S = 10.0  # a deleted chat can be brought back this long; then (or when the window closes) it is purged
ROLE_ID = Qt.ItemDataRole.UserRole + 1


class Streaming:
    """The answer being written: where it goes and what has arrived."""

    def __init__(self, conv_id: int, msg_id: int, thread: GenerationThread) -> None:
        self.conv_id, self.msg_id, self.thread = conv_id, msg_id, thread
        self.text, self.dirty, self.saved_at = "", False, time.monotonic()
        self.widget: MessageWidget | None = None


class MainWindow(QMainWindow):
    save_every_s = SAVE_EVERY_S

    def __init__(self, store: Store, settings: QSettings | None = None) -> None:
        super().__init__()
        self.store = store
        self.settings = settings or QSettings()
        self.engine: ChatEngine | None = None
        self.loader: LoadThread | None = None
        self.importer: ImportThread | None = None
        self.streaming: Streaming | None = None
        self.conv_id: int | None = None
        self.reply_ids: dict[int, list[int]] = {}  # answer id -> sampled ids (still in the KV cache)
        self.last_gen: Generation | None = None
        self.deleted: list[int] = []
        self.closed = False
        self.browsing = False  # the user opened a chat while no model is loaded: show it, not the first screen
        self.dark = bool(QApplication.instance().property("aurora_dark"))
        self.setAcceptDrops(True)
        self.resize(1180, 780)
        self._build()
        self._actions()
        self.render_timer = QTimer(self)
        self.render_timer.setInterval(RENDER_MS)
        self.render_timer.timeout.connect(self._render_stream)
        self.retranslate()
        self.refresh_list()
        from PySide6.QtGui import QGuiApplication

        QGuiApplication.styleHints().colorSchemeChanged.connect(self.follow_color_scheme)
        chats = self.store.conversations()
        if chats:
            self.open_chat(chats[0].id)
        self.browsing = False
        self.update_first_screen()

    # -- layout -----------------------------------------------------------------------------------

    def _build(self) -> None:
        split = QSplitter(self)
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(8, 8, 8, 8)
        self.new_button = QPushButton()
        self.new_button.clicked.connect(self.new_chat)
        self.search = QLineEdit()
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self.refresh_list)
        self.chat_model = QStandardItemModel(self)
        self.chat_list = QListView()
        self.chat_list.setModel(self.chat_model)
        self.chat_list.setEditTriggers(QListView.EditTrigger.NoEditTriggers)
        self.chat_list.clicked.connect(lambda index: self.open_chat(index.data(ROLE_ID), index.data(ROLE_ID + 1)))
        self.chat_list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.chat_list.customContextMenuRequested.connect(self._chat_menu)
        self.chat_list.setWordWrap(True)
        lv.addWidget(self.new_button)
        lv.addWidget(self.search)
        lv.addWidget(self.chat_list)
        split.addWidget(left)

        center = QWidget()
        cv = QVBoxLayout(center)
        cv.setContentsMargins(0, 0, 0, 8)
        top = QHBoxLayout()
        top.setContentsMargins(12, 8, 12, 0)
        self.model_button = QPushButton()
        self.model_button.clicked.connect(self.choose_model)
        self.chat_title = QLabel()
        self.chat_title.setObjectName("chatTitle")
        self.chat_title.setTextFormat(Qt.TextFormat.PlainText)
        self.settings_button = QToolButton()
        self.settings_button.clicked.connect(self.edit_chat_settings)
        top.addWidget(self.chat_title, 1)
        top.addWidget(self.settings_button)
        top.addWidget(self.model_button)
        cv.addLayout(top)
        self.view = ChatView()
        self.welcome = WelcomePanel(int(self.settings.value("n_ctx", EngineConfig.n_ctx)))
        self.welcome.open_requested.connect(self.choose_model)
        self.welcome.open_path.connect(self.open_model)
        self.pages = QStackedWidget()
        self.pages.addWidget(self.welcome)
        self.pages.addWidget(self.view)
        cv.addWidget(self.pages, 1)
        self.notice = QLabel()
        self.notice.setObjectName("notice")
        self.notice.setWordWrap(True)
        self.notice.hide()
        cv.addWidget(self.notice)
        bottom = QHBoxLayout()
        bottom.setContentsMargins(12, 0, 12, 0)
        self.composer = Composer()
        self.composer.submitted.connect(self.send)
        self.composer.send_key = str(self.settings.value("send_key", SEND_ENTER))
        self.send_button = QPushButton()
        self.send_button.clicked.connect(self.composer.submit)
        self.stop_button = QPushButton()
        self.stop_button.clicked.connect(self.stop)
        self.stop_button.setEnabled(False)
        buttons = QVBoxLayout()
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.stop_button)
        bottom.addWidget(self.composer, 1)
        bottom.addLayout(buttons)
        cv.addLayout(bottom)
        split.addWidget(center)
        split.setStretchFactor(1, 1)
        split.setSizes([260, 920])
        self.setCentralWidget(split)

        self.model_label, self.ctx_label, self.speed_label = QLabel(), QLabel(), QLabel()
        self.model_label.setTextFormat(Qt.TextFormat.PlainText)  # a model's name is the file's text, not markup
        for w in (self.model_label, self.ctx_label, self.speed_label):
            self.statusBar().addPermanentWidget(w)
        self.undo_button = QToolButton()
        self.undo_button.clicked.connect(self.undo_delete)
        self.undo_button.hide()
        self.statusBar().addPermanentWidget(self.undo_button)  # a temporary message would hide a normal one
        self.load_progress = QProgressBar()
        self.load_progress.setRange(0, 0)  # llama.cpp does not report progress through llama-cpp-python
        self.load_progress.setMaximumWidth(140)
        self.load_progress.hide()
        self.statusBar().addPermanentWidget(self.load_progress)

    def _actions(self) -> None:
        def act(key: str, slot, shortcut=None) -> QAction:
            a = QAction(self)
            a.triggered.connect(slot)
            if shortcut is not None:
                a.setShortcut(QKeySequence(shortcut))
            self.addAction(a)
            self._action_keys[key] = a
            return a

        self._action_keys: dict[str, QAction] = {}
        act("open", self.choose_model, QKeySequence.StandardKey.Open)
        act("close_model", self.close_model)
        act("new", self.new_chat, QKeySequence.StandardKey.New)
        act("search", lambda: (self.search.setFocus(), self.search.selectAll()), QKeySequence.StandardKey.Find)
        act("stop", self.stop, Qt.Key.Key_Escape)
        act("regenerate", self.regenerate_last, QKeySequence("Ctrl+R"))
        act("export_md", lambda: self.export_chat("md"))
        act("export_json", lambda: self.export_chat("json"))
        act("export_all", self.export_all)
        act("import", self.import_chats)
        act("settings", self.edit_chat_settings)
        act("quit", self.close, QKeySequence.StandardKey.Quit)
        act("lang_zh", lambda: self.set_language("zh_CN"))
        act("lang_en", lambda: self.set_language("en"))
        act("send_enter", lambda: self.set_send_key(SEND_ENTER))
        act("send_ctrl", lambda: self.set_send_key(SEND_CTRL_ENTER))
        self.file_menu = self.menuBar().addMenu("")
        self.file_menu.addAction(self._action_keys["open"])
        self.recent_menu = self.file_menu.addMenu("")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        self.file_menu.addAction(self._action_keys["close_model"])
        for k in ("new", None, "import", "export_md", "export_json", "export_all", None, "quit"):
            self.file_menu.addSeparator() if k is None else self.file_menu.addAction(self._action_keys[k])
        self.chat_menu = self.menuBar().addMenu("")
        for k in ("search", "stop", "regenerate", "settings"):
            self.chat_menu.addAction(self._action_keys[k])
        self.view_menu = self.menuBar().addMenu("")
        for k in ("lang_zh", "lang_en", None, "send_enter", "send_ctrl"):
            self.view_menu.addSeparator() if k is None else self.view_menu.addAction(self._action_keys[k])

    def retranslate(self) -> None:
        self.setWindowTitle("Aurora Desktop")
        self.new_button.setText(tr("New chat"))
        self.search.setPlaceholderText(tr("Search all chats…"))
        self.search.setAccessibleName(tr("Search all chats"))
        self.chat_list.setAccessibleName(tr("Conversations"))
        self.composer.setPlaceholderText(tr("Type a message. Enter sends, Shift+Enter starts a new line.")
                                         if self.composer.send_key == SEND_ENTER else
                                         tr("Type a message. Ctrl+Enter sends, Enter starts a new line."))
        self.composer.setAccessibleName(tr("Message"))
        self.send_button.setText(tr("Send"))
        self.stop_button.setText(tr("Stop"))
        self.settings_button.setText(tr("Chat settings"))
        self.undo_button.setText(tr("Undo delete"))
        self.model_button.setText(Path(self.engine.info.path).name if self.engine else tr("Open model…"))
        self.model_button.setAccessibleName(tr("Open model"))
        names = {"open": tr("Open model…"), "close_model": tr("Close model"), "new": tr("New chat"),
                 "search": tr("Search"), "stop": tr("Stop"), "regenerate": tr("Regenerate"), "export_md": tr("Export chat as Markdown…"),
                 "export_json": tr("Export chat as JSON…"), "export_all": tr("Export all chats as JSON…"),
                 "import": tr("Import JSON…"), "settings": tr("Chat settings…"), "quit": tr("Quit"),
                 "lang_zh": "简体中文", "lang_en": "English", "send_enter": tr("Enter sends"),
                 "send_ctrl": tr("Ctrl+Enter sends")}
        for key, text in names.items():
            self._action_keys[key].setText(text)
        self.file_menu.setTitle(tr("&File"))
        self.recent_menu.setTitle(tr("Recent models"))
        self.chat_menu.setTitle(tr("&Chat"))
        self.view_menu.setTitle(tr("&View"))
        self.update_status()
        if self.conv_id is not None:
            self.show_chat()

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.Type.LanguageChange and not self.closed:
            self.retranslate()
        super().changeEvent(event)

    def follow_color_scheme(self, *_args) -> None:
        """The system switched between light and dark: restyle, and redraw the chat (bubbles, code colours)."""
        from .style import apply_style

        app = QApplication.instance()
        apply_style(app)
        self.dark = bool(app.property("aurora_dark"))
        if self.streaming is None and self.conv_id is not None:
            self.show_chat()

    def set_language(self, lang: str) -> None:
        if i18n.set_language(lang):
            self.settings.setValue("language", lang)

    def set_send_key(self, key: str) -> None:
        self.composer.send_key = key
        self.settings.setValue("send_key", key)
        self.retranslate()

    # -- conversations ----------------------------------------------------------------------------

    def refresh_list(self) -> None:
        query = self.search.text().strip()
        self.chat_model.clear()
        if query:
            for hit in self.store.search(query):
                item = QStandardItem(f"{hit.title or tr('New chat')}\n{hit.snippet}")
                item.setData(hit.conversation_id, ROLE_ID)
                item.setData(hit.message_id, ROLE_ID + 1)
                self.chat_model.appendRow(item)
            return
        for chat in self.store.conversations():
            item = QStandardItem(chat.title or tr("New chat"))
            item.setData(chat.id, ROLE_ID)
            self.chat_model.appendRow(item)
            if chat.id == self.conv_id:
                self.chat_list.setCurrentIndex(item.index())

    def new_chat(self) -> None:
        self.conv_id = self.store.create("", settings={})
        self.browsing = True
        self.update_first_screen()
        self.refresh_list()
        self.show_chat()
        self.composer.setFocus()

    def open_chat(self, conv_id: int, message_id: int | None = None) -> None:
        self.conv_id = conv_id
        self.browsing = True
        self.update_first_screen()
        if message_id is not None:
            self.store.show_version(message_id)
        for row in range(self.chat_model.rowCount()):
            if self.chat_model.item(row).data(ROLE_ID) == conv_id:
                self.chat_list.setCurrentIndex(self.chat_model.index(row, 0))
                break
        self.show_chat()

    def current(self) -> ChatRow | None:
        return self.store.conversation(self.conv_id) if self.conv_id is not None else None

    def show_chat(self) -> None:
        """Rebuild the chat view from the database (and the answer being written, if it is this chat's)."""
        self.view.clear()
        chat = self.current()
        self.chat_title.setText(chat.title or tr("New chat") if chat else "")
        if chat is None:
            return
        for row in self.store.branch(chat.id):
            w = self.view.add(MessageWidget(row, tr, self.dark))
            w.flip.connect(self.flip)
            w.edit.connect(self.edit_message)
            w.regenerate.connect(self.regenerate)
            w.copy.connect(lambda _id, r=row: QApplication.clipboard().setText(
                self.streaming.text if self.streaming and self.streaming.msg_id == r.id else r.content))
            if self.streaming and self.streaming.msg_id == row.id:
                self.streaming.widget = w
                w.set_streaming(True)
                w.set_status("streaming", tr)
                w.view.set_markdown_streaming(self.streaming.text)
        self.view.scroll_to_bottom()

    def _chat_menu(self, pos) -> None:
        index = self.chat_list.indexAt(pos)
        if not index.isValid():
            return
        conv_id = index.data(ROLE_ID)
        menu = QMenu(self)
        menu.addAction(tr("Rename…"), lambda: self.rename_chat(conv_id))
        menu.addAction(tr("Delete"), lambda: self.delete_chat(conv_id))
        menu.exec(self.chat_list.viewport().mapToGlobal(pos))

    def rename_chat(self, conv_id: int, title: str | None = None) -> None:
        if title is None:
            title, ok = QInputDialog.getText(self, tr("Rename"), tr("Title:"), text=self.store.conversation(conv_id).title)
            if not ok:
                return
        self.store.rename(conv_id, title.strip())
        self.refresh_list()
        if conv_id == self.conv_id:
            self.chat_title.setText(title.strip() or tr("New chat"))

    def delete_chat(self, conv_id: int) -> None:
        if self.streaming and self.streaming.conv_id == conv_id:
            self.stop()
        self.store.delete(conv_id)
        self.deleted.append(conv_id)
        if conv_id == self.conv_id:
            self.conv_id = None
            self.view.clear()
            self.chat_title.setText("")
        self.refresh_list()
        self.undo_button.show()
        self.statusBar().showMessage(tr("Chat deleted."), int(UNDO_S * 1000))
        QTimer.singleShot(int(UNDO_S * 1000) + 100, self.purge_deleted)  # it also hides the undo button

    def purge_deleted(self, everything: bool = False) -> None:
        """Chats deleted longer ago than the undo window (or all, when closing) leave the disk for good."""
        cutoff = None if everything else time.time() - UNDO_S
        try:
            if self.store.purge(cutoff):
                self.deleted = [c for c in self.deleted if self.store.exists(c)]
        except AuroraError as exc:
            self.statusBar().showMessage(str(exc), 20000)
        self.undo_button.setVisible(bool(self.deleted) and not everything)

    def undo_delete(self) -> None:
        if self.deleted:
            conv_id = self.deleted.pop()
            self.store.undelete(conv_id)
            self.refresh_list()
            self.open_chat(conv_id)
        self.undo_button.setVisible(bool(self.deleted))

    def edit_chat_settings(self) -> None:
        chat = self.current()
        if chat is None:
            self.new_chat()
            chat = self.current()
        dialog = ChatSettingsDialog(chat.system, chat.settings or {}, self)
        if dialog.exec():
            system, settings = dialog.values()
            self.store.set_system(chat.id, system)
            self.store.set_settings(chat.id, settings)

    # -- models -----------------------------------------------------------------------------------

    def update_first_screen(self) -> None:
        """The first screen while no model is loaded (unless the user opened a chat to read); the chat otherwise."""
        first = self.engine is None and not self.browsing
        if first:
            self.welcome.set_recent(self.recent_models())
        self.pages.setCurrentWidget(self.welcome if first else self.view)
        self._action_keys["close_model"].setEnabled(self.engine is not None)

    def close_model(self) -> None:
        """Unload the model (its memory goes back) and show the first screen again."""
        self._stop_streaming()
        if self.engine is not None:
            self.engine.close()
        self.engine, self.last_gen, self.reply_ids, self.browsing = None, None, {}, False
        self.retranslate()
        self.update_first_screen()

    def recent_models(self) -> list[str]:
        value = self.settings.value("recent_models") or []
        return [value] if isinstance(value, str) else list(value)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for path in self.recent_models():
            self.recent_menu.addAction(Path(path).name, lambda p=path: self.open_model(p))
        if not self.recent_menu.actions():
            self.recent_menu.addAction(tr("(none yet)")).setEnabled(False)

    def choose_model(self) -> None:
        start = str(self.settings.value("last_model_dir", str(Path.home())))
        path, _ = QFileDialog.getOpenFileName(self, tr("Open model"), start, tr("GGUF models (*.gguf)"))
        if path:
            self.open_model(path)

    def open_model(self, path: str, ask: bool = True) -> None:
        """The model panel (what the file says, what it needs), then loading off the GUI thread."""
        config = EngineConfig(n_ctx=int(self.settings.value("n_ctx", EngineConfig.n_ctx)))
        try:
            panel = ModelPanel(path, config, self)
        except AuroraError as exc:
            QMessageBox.warning(self, tr("Cannot open this model"), str(exc))
            return
        if ask and not panel.exec():
            return
        self.load_model(path, panel.config())

    def load_model(self, path: str, config: EngineConfig) -> None:
        self._stop_streaming()
        self.loader = LoadThread(path, config, self)
        self.loader.loaded.connect(lambda engine: self._loaded(engine, path, config))
        self.loader.failed.connect(self._load_failed)
        self.model_button.setEnabled(False)
        self.load_progress.show()
        self.statusBar().showMessage(tr("Loading {name}… (Esc cancels)").format(name=Path(path).name))
        self.loader.start()

    def cancel_load(self) -> None:
        if self.loader is not None:
            self.loader.cancelled = True
            self.loader = None
            self.model_button.setEnabled(True)
            self.load_progress.hide()
            self.statusBar().showMessage(tr("Loading cancelled."), 5000)

    def _loaded(self, engine: ChatEngine, path: str, config: EngineConfig) -> None:
        if self.engine is not None:
            self.engine.close()  # the old model's memory goes back now
        self.engine, self.loader, self.reply_ids = engine, None, {}
        self.model_button.setEnabled(True)
        self.load_progress.hide()
        self.settings.setValue("last_model_dir", str(Path(path).parent))
        self.settings.setValue("n_ctx", config.n_ctx)
        recent = [p for p in self.recent_models() if p != path]
        self.settings.setValue("recent_models", [path] + recent[:7])
        self.statusBar().showMessage(tr("Model loaded."), 5000)
        for note in engine.warnings:
            self.statusBar().showMessage(note, 15000)
        self.welcome.set_context(config.n_ctx)
        self.retranslate()
        self.update_first_screen()

    def _load_failed(self, message: str) -> None:
        self.loader = None
        self.model_button.setEnabled(True)
        self.load_progress.hide()
        self.statusBar().clearMessage()
        QMessageBox.warning(self, tr("Cannot open this model"), message)

    def dragEnterEvent(self, event) -> None:
        if any(u.toLocalFile().endswith(".gguf") for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        for url in event.mimeData().urls():
            if url.toLocalFile().endswith(".gguf"):
                self.open_model(url.toLocalFile())
                break

    # -- chatting ---------------------------------------------------------------------------------

    def send(self, text: str) -> None:
        if self.engine is None:
            QMessageBox.information(self, tr("No model"), tr("Open a GGUF model first (File → Open model…)."))
            return
        if self.streaming:
            return
        if self.conv_id is None:
            self.new_chat()
        branch = self.store.branch(self.conv_id)
        parent = branch[-1].id if branch else None
        if branch and branch[-1].role == "user":  # a question whose answer failed: answer it now
            parent = branch[-1].parent_id
        if not branch and not self.current().title:
            self.store.rename(self.conv_id, text.splitlines()[0][:40])
            self.refresh_list()
        question = self.store.add(self.conv_id, parent, "user", text)
        self.composer.clear()
        self.answer(question)

    def answer(self, question_id: int) -> None:
        """Stream a new answer to `question_id` (a new version, if it has answers already)."""
        chat = self.current()
        settings = chat.settings or {}
        sampling = SamplingSettings(temperature=float(settings.get("temperature", 0.7)),
                                    top_p=float(settings.get("top_p", 0.9)),
                                    max_tokens=int(settings.get("max_tokens", 512)))
        conversation = Conversation(system=chat.system)
        msg_id = self.store.add(self.conv_id, question_id, "assistant", "", status="streaming")
        for row in self.store.branch(self.conv_id)[:-1]:
            if row.role == "user":
                conversation.add_user(row.content)
            else:
                conversation.add_assistant(row.content, self.reply_ids.get(row.id))
        thread = GenerationThread(self.engine, conversation, sampling,
                                  drop_oldest=settings.get("context_policy", "drop_oldest") == "drop_oldest",
                                  parent=self)
        self.streaming = Streaming(self.conv_id, msg_id, thread)
        thread.piece.connect(self._piece)
        thread.finished_generation.connect(self._finished)
        thread.failed.connect(self._failed)
        self.show_chat()
        self.stop_button.setEnabled(True)
        self.send_button.setEnabled(False)
        self.notice.hide()
        self.render_timer.start()
        thread.start()

    def _piece(self, piece: str) -> None:
        stream = self.streaming
        if stream is None:
            return
        stream.text += piece
        stream.dirty = True

    def _render_stream(self) -> None:
        stream = self.streaming
        if stream is None or not stream.dirty:
            return
        stream.dirty = False
        if stream.widget is not None and stream.conv_id == self.conv_id:
            stream.widget.view.set_markdown_streaming(stream.text)
        if time.monotonic() - stream.saved_at >= self.save_every_s:
            self._save_stream(stream, "streaming")

    def _save_stream(self, stream: Streaming, status: str) -> bool:
        try:
            self.store.update(stream.msg_id, stream.text, status)
            stream.saved_at = time.monotonic()
            return True
        except AuroraError as exc:  # a full disk or a read-only file: the answer stays on screen
            self.statusBar().showMessage(str(exc), 20000)
            self.notice.setText(tr("Could not save: {error}").format(error=str(exc)))
            self.notice.show()
            return False

    def _finished(self, gen: Generation) -> None:
        stream = self.streaming
        stream.text = gen.text
        self._end_stream(stream, "stopped" if gen.stop_reason == "cancelled" else "done")
        if gen.reply_ids is not None:
            self.reply_ids[stream.msg_id] = gen.reply_ids
        self.last_gen = gen
        if gen.dropped_turns:
            self.notice.setText(tr("The chat outgrew the context: the oldest {n} messages were left out of what "
                                   "the model sees (the system prompt was kept).").format(n=gen.dropped_turns))
            self.notice.show()
        self.update_status()

    def _failed(self, message: str) -> None:
        stream = self.streaming
        self._end_stream(stream, "error")
        QMessageBox.warning(self, tr("The answer failed"), message)

    def _end_stream(self, stream: Streaming, status: str) -> None:
        self.render_timer.stop()
        self._save_stream(stream, status)
        self.streaming = None
        stream.thread.wait()
        if stream.widget is not None and stream.conv_id == self.conv_id:
            stream.widget.view.set_markdown_final(stream.text)
            stream.widget.set_status(status, tr)
            stream.widget.set_streaming(False)
        self.stop_button.setEnabled(False)
        self.send_button.setEnabled(True)

    def _stop_streaming(self) -> None:
        """Stop the answer being written (what was written is kept) and wait for its thread to end."""
        if self.streaming is not None:
            self.streaming.thread.stop()
            self.streaming.thread.wait()

    def stop(self) -> None:
        if self.streaming is not None:
            self.streaming.thread.stop()
        elif self.loader is not None:
            self.cancel_load()

    def regenerate(self, answer_id: int) -> None:
        if self.streaming or self.engine is None:
            return
        row = next(r for r in self.store.branch(self.conv_id) if r.id == answer_id)
        self.answer(row.parent_id)

    def regenerate_last(self) -> None:
        branch = self.store.branch(self.conv_id) if self.conv_id is not None else []
        if branch and branch[-1].role == "assistant":
            self.regenerate(branch[-1].id)

    def edit_message(self, msg_id: int, text: str | None = None) -> None:
        if self.streaming or self.engine is None:
            return
        row = next(r for r in self.store.branch(self.conv_id) if r.id == msg_id)
        if text is None:
            text, ok = QInputDialog.getMultiLineText(self, tr("Edit message"), tr("Message:"), row.content)
            if not ok or not text.strip():
                return
        question = self.store.add(self.conv_id, row.parent_id, "user", text.strip())  # a new version
        self.answer(question)

    def flip(self, msg_id: int, delta: int) -> None:
        versions = self.store.siblings(msg_id)
        target = versions[max(0, min(len(versions) - 1, versions.index(msg_id) + delta))]
        self.store.show_version(target)
        self.show_chat()

    def update_status(self) -> None:
        if self.engine is None:
            self.model_label.setText(tr("No model"))
            self.ctx_label.setText("")
            self.speed_label.setText("")
            return
        self.model_label.setText(self.engine.info.name)
        n_ctx = self.engine.llm.n_ctx()
        g = self.last_gen
        used = (g.prompt_tokens + g.completion_tokens) if g else 0
        self.ctx_label.setText(tr("context {used:,} / {n_ctx:,}").format(used=used, n_ctx=n_ctx))
        self.speed_label.setText(tr("{speed:.1f} tokens/s").format(speed=g.tokens_per_second) if g else "")

    # -- export / import --------------------------------------------------------------------------

    def export_chat(self, kind: str) -> None:
        if self.conv_id is None:
            return
        chat = self.current()
        path, _ = QFileDialog.getSaveFileName(self, tr("Export chat"), f"{chat.title or 'aurora'}.{kind}")
        if path:
            self.write_export(Path(path), [self.conv_id], kind)

    def export_all(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, tr("Export all chats"), "aurora-chats.json")
        if path:
            self.write_export(Path(path), [c.id for c in self.store.conversations()], "json")

    def write_export(self, path: Path, conv_ids: list[int], kind: str) -> None:
        from aurora_core.files import write_text

        if kind == "md":
            text = "\n\n".join(self.store.export_markdown(c) for c in conv_ids)
        else:
            data = [self.store.export_json(c) for c in conv_ids]
            text = json.dumps(data[0] if len(data) == 1 else data, ensure_ascii=False, indent=2)
        try:
            write_text(path, text)
        except OSError as exc:
            QMessageBox.warning(self, tr("Export failed"), f"{path}: {exc.strerror}")
            return
        self.statusBar().showMessage(tr("Saved {path}").format(path=path), 5000)

    def import_chats(self, path: str | None = None) -> None:
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, tr("Import JSON"), "", tr("JSON (*.json)"))
            if not path:
                return
        self.importer = ImportThread(self.store.path, path, self)
        self.importer.imported.connect(self._imported)
        self.importer.failed.connect(self._import_failed)
        self.statusBar().showMessage(tr("Importing {path}…").format(path=Path(path).name))
        self.importer.start()

    def _imported(self, ids: list) -> None:
        self.importer = None
        self.statusBar().clearMessage()
        self.refresh_list()
        if ids:
            self.open_chat(ids[-1])

    def _import_failed(self, message: str) -> None:
        self.importer = None
        self.statusBar().clearMessage()
        QMessageBox.warning(self, tr("Import failed"), message)

    def closeEvent(self, event) -> None:
        self._stop_streaming()
        if self.loader is not None:
            self.loader.cancelled = True
            self.loader.wait()
        if self.importer is not None:  # an import finishes whole (or not at all) before the window goes
            self.importer.wait()
        if self.engine is not None:
            self.engine.close()
            self.engine = None
        self.purge_deleted(everything=True)  # the undo window ends with the program
        self.closed = True  # a language change after this must not touch the engine or the store
        super().closeEvent(event)
