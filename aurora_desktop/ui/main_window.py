"""The main window: layout and wiring. The chat lives in `ChatSession`, the lists in `Sidebar`'s models, the
menus in `menus`; the engine loads and answers in worker threads. Nothing here waits on llama.cpp."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QSettings, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QApplication, QHBoxLayout, QInputDialog, QLabel, QMainWindow, QMessageBox, QProgressBar,
    QPushButton, QSplitter, QStackedWidget, QToolButton, QVBoxLayout, QWidget,
)

from ..engine import EngineConfig
from ..store import STATE_BUDGET, MessageRow, Store
from . import i18n
from .chat_view import ChatView, MessageWidget
from .composer import SEND_ENTER, Composer
from .dialogs import ChatSettingsDialog
from .i18n import tr
from .menus import build_menus, retranslate_menus
from .serving import ServeSwitch
from .session import ChatSession
from .sidebar import Sidebar
from .welcome import WelcomePanel
from .window_io import ModelsAndFiles
from .worker import ImportThread, LoadThread

class MainWindow(ModelsAndFiles, QMainWindow):
    def __init__(self, store: Store, settings: QSettings | None = None) -> None:
        super().__init__()
        self.store, self.settings = store, settings or QSettings()
        self.session = ChatSession(store, self)
        self.session.state_budget = int(self.settings.value("kv_state_budget_mib", STATE_BUDGET >> 20)) << 20
        self.loader: LoadThread | None = None
        self.importer: ImportThread | None = None
        self.deleted: list[int] = []
        self.closed = False
        self.browsing = False  # the user opened a chat while no model is loaded: show it, not the first screen
        self.dark = bool(QApplication.instance().property("aurora_dark"))
        self.setAcceptDrops(True)
        self.resize(1180, 780)
        self._build()
        self._action_keys = build_menus(self)
        self._wire_session()
        self.retranslate()
        QGuiApplication.styleHints().colorSchemeChanged.connect(self.follow_color_scheme)
        chats = self.store.conversations()
        if chats:
            self.open_chat(chats[0].id)
        self.browsing = False
        self.update_first_screen()

    # -- what the tests and the session share -----------------------------------------------------

    engine = property(lambda self: self.session.engine, lambda self, engine: setattr(self.session, "engine", engine))
    streaming = property(lambda self: self.session.streaming)
    conv_id = property(lambda self: self.session.conv_id)
    last_gen = property(lambda self: self.session.last_generation)
    search = property(lambda self: self.sidebar.search)
    chat_model = property(lambda self: self.sidebar.chat_model)
    chat_list = property(lambda self: self.sidebar.chat_list)
    new_button = property(lambda self: self.sidebar.new_button)
    save_every_s = property(lambda self: self.session.save_every_s,
                            lambda self, value: setattr(self.session, "save_every_s", value))

    # -- layout -----------------------------------------------------------------------------------

    def _build(self) -> None:
        split = QSplitter(self)
        self.sidebar = Sidebar(self.store)
        self.sidebar.chat_chosen.connect(self.open_chat)
        self.sidebar.new_chat.connect(self.new_chat)
        self.sidebar.delete_chat.connect(self.delete_chat)
        self.sidebar.chats_deleted.connect(self._chats_deleted)
        self.sidebar.changed.connect(self._chat_changed)
        split.addWidget(self.sidebar)
        center = QWidget()
        cv = QVBoxLayout(center)
        cv.setContentsMargins(0, 0, 0, 8)
        top = QHBoxLayout()
        top.setContentsMargins(12, 8, 12, 0)
        self.chat_title = QLabel()
        self.chat_title.setObjectName("chatTitle")
        self.chat_title.setTextFormat(Qt.TextFormat.PlainText)
        self.settings_button = QToolButton()
        self.settings_button.clicked.connect(self.edit_chat_settings)
        self.model_button = QPushButton()
        self.model_button.clicked.connect(self.choose_model)
        for widget, stretch in ((self.chat_title, 1), (self.settings_button, 0), (self.model_button, 0)):
            top.addWidget(widget, stretch)
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
        self.send_button, self.stop_button = QPushButton(), QPushButton()
        self.send_button.clicked.connect(self.composer.submit)
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
        self.undo_button = QToolButton()
        self.undo_button.clicked.connect(self.undo_delete)
        self.undo_button.hide()
        self.load_progress = QProgressBar()
        self.load_progress.setRange(0, 0)  # llama.cpp does not report progress through llama-cpp-python
        self.load_progress.setMaximumWidth(140)
        self.load_progress.hide()
        self.serve = ServeSwitch(self)
        self.serve.failed.connect(lambda message: QMessageBox.warning(self, tr("Cannot serve"), message))
        for widget in (self.model_label, self.ctx_label, self.speed_label, self.serve.label, self.serve.copy_key,
                       self.undo_button, self.load_progress):
            self.statusBar().addPermanentWidget(widget)  # a temporary message would hide a normal one

    def _wire_session(self) -> None:
        s = self.session
        s.opened.connect(self.show_chat)
        s.message_added.connect(self._add_message)
        s.answer_text.connect(lambda msg_id, text: self._answer_widget(msg_id, lambda w: w.view.set_markdown_streaming(text)))
        s.answer_ended.connect(self._answer_ended)
        s.sources_shown.connect(lambda msg_id, sources: self._answer_widget(msg_id, lambda w: w.set_sources(sources)))
        s.generation.connect(lambda _gen: self.update_status())
        s.notice.connect(lambda n: self._notice(tr("The chat outgrew the context: the oldest {n} messages were left "
                                                    "out of what the model sees (the system prompt was kept).").format(n=n)))
        s.failed.connect(lambda message: QMessageBox.warning(self, tr("The answer failed"), message))
        s.save_failed.connect(self._save_failed)
        s.streaming_changed.connect(lambda on: (self.stop_button.setEnabled(on), self.send_button.setEnabled(not on)))

    def retranslate(self) -> None:
        self.setWindowTitle("Aurora Desktop")
        self.sidebar.retranslate()
        self.sidebar.select(self.conv_id)
        self.composer.setPlaceholderText(tr("Type a message. Enter sends, Shift+Enter starts a new line.")
                                         if self.composer.send_key == SEND_ENTER else
                                         tr("Type a message. Ctrl+Enter sends, Enter starts a new line."))
        self.composer.setAccessibleName(tr("Message"))
        self.send_button.setText(tr("Send"))
        self.stop_button.setText(tr("Stop"))
        self.settings_button.setText(tr("Chat settings"))
        self.undo_button.setText(tr("Undo delete"))
        self.model_button.setText(tr("Open model…") if self.engine is None else
                                  tr("Remote: {host}").format(host=self.engine.parts.netloc) if self.engine.remote
                                  else Path(self.engine.info.path).name)
        self.model_button.setAccessibleName(tr("Open model"))
        retranslate_menus(self)
        self.serve.refresh()
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

    def focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    # -- the chat shown ---------------------------------------------------------------------------

    def new_chat(self) -> None:
        folder = self.sidebar.folder
        self.browsing = True
        self.session.new(folder if folder > 0 else None)
        self.update_first_screen()
        self.sidebar.refresh(self.conv_id)
        self.composer.setFocus()

    def open_chat(self, conv_id: int, message_id: int | None = None) -> None:
        self.browsing = True
        self.update_first_screen()
        self.session.open(conv_id, message_id)
        self.sidebar.select(conv_id)

    def show_chat(self) -> None:
        """Rebuild the chat view from the session (after a chat was opened or a version flipped)."""
        self.view.clear()
        chat = self.session.chat
        self.chat_title.setText((chat.title or tr("New chat")) if chat else "")
        for row in self.session.branch:
            self._add_message(row, scroll=False)
        self.view.scroll_to_bottom()

    def _add_message(self, row: MessageRow, scroll: bool = True) -> None:
        w = self.view.add(MessageWidget(row, tr, self.dark))
        if row.role == "assistant":  # the sources its question was asked with
            question = next((r for r in self.session.branch if r.id == row.parent_id), None)
            w.set_sources(list(question.sources or ()) if question else [])
        w.flip.connect(self.flip)
        w.edit.connect(self.edit_message)
        w.regenerate.connect(self.regenerate)
        w.copy.connect(lambda _id, r=row: QApplication.clipboard().setText(self._text_of(r)))
        stream = self.streaming
        if stream is not None and stream.msg_id == row.id:
            w.set_streaming(True)
            w.set_status("streaming", tr)
            w.view.set_markdown_streaming(stream.text)
        if row.role == "user" and self.session.chat and self.chat_title.text() != self.session.chat.title:
            self.chat_title.setText(self.session.chat.title or tr("New chat"))
            self.sidebar.chat_model.refresh()
            self.sidebar.select(self.conv_id)
        if scroll:
            self.view.scroll_to_bottom()

    def _text_of(self, row: MessageRow) -> str:
        stream = self.streaming
        return stream.text if stream and stream.msg_id == row.id else next(
            (r.content for r in self.session.branch if r.id == row.id), row.content)

    def _answer_widget(self, msg_id: int, do) -> None:
        for w in reversed(self.view.widgets):
            if w.row.id == msg_id:
                do(w)
                return

    def _answer_ended(self, row: MessageRow, status: str) -> None:
        def end(w) -> None:
            w.view.set_markdown_final(row.content)
            w.set_status(status, tr)
            w.set_streaming(False)

        self._answer_widget(row.id, end)

    def _notice(self, text: str) -> None:
        self.notice.setText(text)
        self.notice.show()

    def _save_failed(self, message: str) -> None:
        self.statusBar().showMessage(message, 20000)
        self._notice(tr("Could not save: {error}").format(error=message))

    def _chat_changed(self) -> None:
        if self.streaming is None:
            self.session.reload()
        self.sidebar.select(self.conv_id)

    # -- chatting ---------------------------------------------------------------------------------

    def send(self, text: str) -> None:
        if self.engine is None:
            QMessageBox.information(self, tr("No model"), tr("Open a GGUF model first (File → Open model…)."))
            return
        if self.streaming:
            return
        if self.conv_id is None:
            self.new_chat()
        self.notice.hide()
        self.composer.clear()
        self.session.send(text)

    def stop(self) -> None:
        if self.streaming is not None:
            self.session.stop()
        elif self.loader is not None:
            self.cancel_load()

    def regenerate(self, answer_id: int) -> None:
        self.session.regenerate(answer_id)

    def regenerate_last(self) -> None:
        self.session.regenerate()

    def edit_message(self, msg_id: int, text: str | None = None) -> None:
        if self.session.busy:
            return
        if text is None:
            row = next(r for r in self.session.branch if r.id == msg_id)
            text, ok = QInputDialog.getMultiLineText(self, tr("Edit message"), tr("Message:"), row.content)
            if not ok:
                return
        self.session.edit(msg_id, text)

    def flip(self, msg_id: int, delta: int) -> None:
        self.session.flip(msg_id, delta)

    def manage_knowledge_bases(self) -> None:
        from .knowledge import KnowledgeBaseDialog

        KnowledgeBaseDialog(self).exec()

    def edit_chat_settings(self) -> None:
        if self.session.chat is None:
            self.new_chat()
        chat = self.session.chat
        folder = self.store.folder(chat.folder_id) if chat.folder_id else None
        dialog = ChatSettingsDialog(chat.system, chat.settings or {}, self,
                                    inherited=folder.settings if folder else None,
                                    inherited_system=folder.system if folder else None)
        if dialog.exec():
            system, settings = dialog.values()
            self.store.set_system(chat.id, system)
            self.store.set_settings(chat.id, settings)
            self.session.reload()
