"""What the window reads and writes outside the chat: opening and closing models (loaded in a worker thread, or
a model on a server, connected in one),
the status bar, deleting (with undo, then purged from the disk), exports and imports (an import runs in a process
of its own), and closing the window."""

from __future__ import annotations

import json
import time
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QFileDialog, QMessageBox

from aurora_core.errors import AuroraError
from aurora_core.files import write_text

from ..credentials import load_key
from ..engine import ChatEngine, EngineConfig
from ..store import ALL
from .dialogs import ModelPanel, RemoteDialog
from .i18n import tr
from .worker import ConnectThread, ImportThread, LoadThread

UNDO_S = 10.0  # a deleted chat can be brought back this long; then (or when the window closes) it is purged


class ModelsAndFiles:
    """A part of MainWindow (a mixin): it uses the window's widgets, session and store."""

    # -- models -----------------------------------------------------------------------------------

    def update_first_screen(self) -> None:
        """The first screen while no model is loaded (unless the user opened a chat to read); the chat otherwise."""
        first = self.engine is None and not self.browsing
        if first:
            self.welcome.set_recent(self.recent_models())
        self.pages.setCurrentWidget(self.welcome if first else self.view)
        self._action_keys["close_model"].setEnabled(self.engine is not None)

    def close_model(self) -> None:
        """Unload the model (its memory goes back; a server is disconnected) and show the first screen again."""
        self.session.stop_and_wait()
        self.serve.stop()
        if self.engine is not None:
            self.engine.close()
        self.session.engine, self.session.last_generation, self.session.reply_ids = None, None, {}
        self.browsing = False
        self.serve.engine_changed()
        self.retranslate()
        self.update_first_screen()

    def recent_models(self) -> list[str]:
        value = self.settings.value("recent_models") or []
        return [value] if isinstance(value, str) else list(value)

    def fill_recent(self) -> None:
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
        """The model panel (what the file says, what it needs), then loading off the GUI thread; without
        `ask` (a recent model, a drop) the file is checked and loaded in the worker alone."""
        config = EngineConfig(n_ctx=int(self.settings.value("n_ctx", EngineConfig.n_ctx)))
        if not ask:
            self.load_model(path, config)
            return
        try:
            panel = ModelPanel(path, config, self)
        except AuroraError as exc:
            QMessageBox.warning(self, tr("Cannot open this model"), str(exc))
            return
        if not panel.exec():
            return
        self.load_model(path, panel.config())

    def load_model(self, path: str, config: EngineConfig) -> None:
        self.session.stop_and_wait()
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
        self.settings.setValue("last_model_dir", str(Path(path).parent))
        self.settings.setValue("n_ctx", config.n_ctx)
        recent = [p for p in self.recent_models() if p != path]
        self.settings.setValue("recent_models", [path] + recent[:7])
        self.welcome.set_context(config.n_ctx)
        self._use_engine(engine, tr("Model loaded."))

    def _use_engine(self, engine, message: str) -> None:
        """A loaded model or a connected server becomes the window's engine; the old one goes."""
        self.serve.stop()  # it serves the old engine
        if self.engine is not None:
            self.engine.close()  # the old model's memory goes back now
        self.session.engine, self.loader, self.session.reply_ids = engine, None, {}
        self.session.reload()  # the answers' token ids belonged to the old model
        self.model_button.setEnabled(True)
        self.load_progress.hide()
        self.statusBar().showMessage(message, 8000)
        for note in engine.warnings:
            self.statusBar().showMessage(note, 15000)
        self.serve.engine_changed()
        self.retranslate()
        self.update_first_screen()

    # -- a model on a server ----------------------------------------------------------------------

    def choose_remote(self) -> None:
        """Ask for a server's address (and model and key), then connect off the GUI thread."""
        url = str(self.settings.value("remote_url", ""))
        dialog = RemoteDialog(url, str(self.settings.value("remote_model", "")), (load_key(url) or "") if url else "",
                              self)
        if dialog.exec():
            self.connect_remote(*dialog.values())

    def connect_remote(self, url: str, model: str | None, key: str | None) -> None:
        self.session.stop_and_wait()
        self.loader = ConnectThread(url, key, model, self)
        self.loader.connected.connect(lambda engine, note: self._connected(engine, url, model, note))
        self.loader.failed.connect(self._load_failed)
        self.model_button.setEnabled(False)
        self.load_progress.show()
        self.statusBar().showMessage(tr("Connecting to {url}… (Esc cancels)").format(url=url))
        self.loader.start()

    def _connected(self, engine, url: str, model: str | None, key_note: str) -> None:
        self.settings.setValue("remote_url", url)  # the address and model name; the key never goes here (the
        self.settings.setValue("remote_model", model or "")  # connecting thread kept it)
        self._use_engine(engine, tr("Connected to {url}: your chats are sent there.").format(url=url))
        if key_note:
            self.statusBar().showMessage(tr("The key was not saved: {why}").format(why=key_note), 15000)

    def _load_failed(self, message: str) -> None:
        self.loader = None
        self.model_button.setEnabled(True)
        self.load_progress.hide()
        self.statusBar().clearMessage()
        QMessageBox.warning(self, tr("Cannot open this model"), message)

    def dragEnterEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        if any(u.toLocalFile().endswith(".gguf") for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        for url in event.mimeData().urls():
            if url.toLocalFile().endswith(".gguf"):
                self.open_model(url.toLocalFile())
                break

    def update_status(self) -> None:
        if self.engine is None:
            for label, text in ((self.model_label, tr("No model")), (self.ctx_label, ""), (self.speed_label, "")):
                label.setText(text)
            return
        if self.engine.remote:  # said wherever the model is named: the chats leave this computer
            self.model_label.setText(tr("Remote: {name} — your chats are sent there").format(name=self.engine.info.name))
            self.ctx_label.setText("")
            self.speed_label.setText("")
            return
        self.model_label.setText(self.engine.info.name)
        g = self.last_gen
        used = (g.prompt_tokens + g.completion_tokens) if g else 0
        self.ctx_label.setText(tr("context {used:,} / {n_ctx:,}").format(used=used, n_ctx=self.engine.n_ctx))
        self.speed_label.setText(tr("{speed:.1f} tokens/s").format(speed=g.tokens_per_second) if g else "")

    # -- deleting ---------------------------------------------------------------------------------

    def delete_chat(self, conv_id: int) -> None:
        if self.streaming and self.streaming.conv_id == conv_id:
            self.session.stop_and_wait()
        self.store.delete(conv_id)
        self._chats_deleted([conv_id])

    def _chats_deleted(self, conv_ids: list) -> None:
        self.deleted += conv_ids
        if self.conv_id in conv_ids:
            self.session.open(None)
        self.sidebar.refresh(self.conv_id)
        self.undo_button.show()
        self.statusBar().showMessage(tr("Chat deleted."), int(UNDO_S * 1000))
        QTimer.singleShot(int(UNDO_S * 1000) + 100, self, self.purge_deleted)  # it also hides the undo button

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
            self.sidebar.refresh()
            self.open_chat(conv_id)
        self.undo_button.setVisible(bool(self.deleted))

    def delete_all_chats(self, confirmed: bool = False) -> None:
        """Every chat and folder gone from the disk now, after a confirmation (there is no undo)."""
        if not confirmed and QMessageBox.question(
                self, tr("Delete all chats"), tr("Delete every chat and folder for good? This cannot be undone.")) \
                != QMessageBox.StandardButton.Yes:
            return
        self.session.stop_and_wait()
        self.store.delete_all()
        self.deleted = []
        self.undo_button.hide()
        self.session.open(None)
        self.sidebar.refresh()

    # -- export / import --------------------------------------------------------------------------

    def export_chat(self, kind: str) -> None:
        chat = self.session.chat
        if chat is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, tr("Export chat"), f"{chat.title or 'aurora'}.{kind}")
        if path:
            self.write_export(Path(path), [chat.id], kind)

    def export_all(self, folder: int = ALL) -> None:
        """Every chat (or those of one folder) as one JSON file."""
        path, _ = QFileDialog.getSaveFileName(self, tr("Export all chats"), "aurora-chats.json")
        if path:
            self.write_export(Path(path), [c.id for c in self.store.conversations(folder)], "json")

    def write_export(self, path: Path, conv_ids: list[int], kind: str) -> None:
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
        self.sidebar.refresh()
        if ids:
            self.open_chat(ids[-1])

    def _import_failed(self, message: str) -> None:
        self.importer = None
        self.statusBar().clearMessage()
        QMessageBox.warning(self, tr("Import failed"), message)

    def closeEvent(self, event) -> None:  # noqa: N802
        self.session.stop_and_wait()
        self.serve.stop()
        if self.loader is not None:
            self.loader.cancelled = True
            self.loader.wait()
        if self.importer is not None:  # an import finishes whole (or not at all) before the window goes
            self.importer.wait()
        if self.engine is not None:
            self.engine.close()
            self.session.engine = None
        self.purge_deleted(everything=True)  # the undo window ends with the program
        self.closed = True  # a language change after this must not touch the engine or the store
        super().closeEvent(event)
