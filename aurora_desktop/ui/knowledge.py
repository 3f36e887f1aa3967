"""Knowledge bases in the window (File → Knowledge bases…): make one, add files and folders, see every file's state,
remove files, bring it up to date. Indexing runs in `IndexThread` (its own SQLite connection) with a progress row
and Cancel; what was finished before a cancel stays indexed. A chat or a folder uses one through its settings."""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import Qt, QThread, Signal
from PySide6.QtWidgets import (
    QDialog, QFileDialog, QHBoxLayout, QHeaderView, QInputDialog, QLabel, QListWidget, QMessageBox, QProgressBar,
    QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout,
)

from aurora_core.errors import AuroraError

from ..kb.index import KnowledgeBase, SyncReport
from .i18n import tr


# Why a file was not indexed, by the start of the reason aurora_desktop.kb gives (English, also in aurora-kb list):
# the window shows the translated summary and the whole reason on hover.
REASONS = (("not a supported type", lambda: tr("not a supported type")),
           ("larger than", lambda: tr("too large; split it")),
           ("too little text", lambda: tr("too little text")),
           ("no text layer", lambda: tr("no text layer (a scanned PDF?)")),
           ("starts with a", lambda: tr("damaged text encoding")),
           ("binary data", lambda: tr("not text; save it as UTF-8")),
           ("the encoding is neither", lambda: tr("unknown encoding; save it as UTF-8")),
           ("its document.xml", lambda: tr("damaged or oversized DOCX")),
           ("not a readable DOCX", lambda: tr("damaged DOCX")),
           ("encrypted", lambda: tr("encrypted; save a copy without a password")),
           ("not a readable PDF", lambda: tr("damaged PDF")),
           ("reading it", lambda: tr("the reader stopped (a damaged file?)")),
           ("no text to index", lambda: tr("too little text")))


def reason_text(reason: str | None) -> str:
    """The reason in the window's language (the English one when none matches)."""
    for start, text in REASONS:
        if (reason or "").startswith(start):
            return text()
    return reason or ""


class IndexThread(QThread):
    """`KnowledgeBase.add` (or `sync` without paths) off the GUI thread: `progress(done, total, file)`, then
    `finished_index(SyncReport)` or `failed(message)`."""

    progress = Signal(int, int, str)
    finished_index = Signal(object)
    failed = Signal(str)

    def __init__(self, name: str, paths: list[Path], parent=None) -> None:
        super().__init__(parent)
        self.name, self.paths, self.cancelled = name, paths, threading.Event()

    def run(self) -> None:
        try:
            kb = KnowledgeBase.open(self.name)
            try:
                report = kb.add(self.paths, self.progress.emit, self.cancelled.is_set) if self.paths else \
                    kb.sync(self.progress.emit, self.cancelled.is_set)
            finally:
                kb.close()
        except AuroraError as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # a bug: shown in full
            self.failed.emit(f"{type(exc).__name__}: {exc}")
        else:
            self.finished_index.emit(report)


class KnowledgeBaseDialog(QDialog):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle(tr("Knowledge bases"))
        self.resize(860, 520)
        self.indexer: IndexThread | None = None
        layout = QHBoxLayout(self)
        left = QVBoxLayout()
        self.names = QListWidget()
        self.names.setAccessibleName(tr("Knowledge bases"))
        self.names.currentTextChanged.connect(self.show_files)
        self.new_button, self.delete_button = QPushButton(tr("New…")), QPushButton(tr("Delete…"))
        self.new_button.clicked.connect(self.create)
        self.delete_button.clicked.connect(self.delete)
        left.addWidget(self.names, 1)
        left.addWidget(self.new_button)
        left.addWidget(self.delete_button)
        layout.addLayout(left, 1)
        right = QVBoxLayout()
        self.hint = QLabel(tr("Files are read on this computer only. Chinese text files may be UTF-8, UTF-16 or "
                              "GBK; PDFs need a text layer (a scanned PDF is listed as such)."))
        self.hint.setWordWrap(True)
        right.addWidget(self.hint)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels([tr("File"), tr("State"), tr("Details")])
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.verticalHeader().hide()
        right.addWidget(self.table, 1)
        buttons = QHBoxLayout()
        self.add_files, self.add_folder = QPushButton(tr("Add files…")), QPushButton(tr("Add folder…"))
        self.remove_button, self.update_button = QPushButton(tr("Remove")), QPushButton(tr("Update"))
        self.add_files.clicked.connect(self.choose_files)
        self.add_folder.clicked.connect(self.choose_folder)
        self.remove_button.clicked.connect(self.remove_selected)
        self.update_button.clicked.connect(lambda: self.index([]))
        for b in (self.add_files, self.add_folder, self.remove_button, self.update_button):
            buttons.addWidget(b)
        right.addLayout(buttons)
        progress_row = QHBoxLayout()  # shown while indexing
        self.progress, self.progress_label = QProgressBar(), QLabel()
        self.cancel_button = QPushButton(tr("Cancel"))
        self.cancel_button.clicked.connect(self.cancel)
        for w in (self.progress, self.progress_label, self.cancel_button):
            progress_row.addWidget(w)
            w.hide()
        right.addLayout(progress_row)
        layout.addLayout(right, 3)
        self.refresh_names()

    @property
    def current(self) -> str | None:
        item = self.names.currentItem()
        return item.text() if item else None

    def refresh_names(self, select: str | None = None) -> None:
        self.names.clear()
        names = KnowledgeBase.names()
        self.names.addItems(names)
        if names:
            self.names.setCurrentRow(names.index(select) if select in names else 0)
        self._enable()

    def show_files(self, name: str | None = None) -> None:
        self.table.setRowCount(0)
        if not self.current:
            return
        kb = KnowledgeBase.open(self.current, create=False)
        try:
            files = kb.files()
        finally:
            kb.close()
        self.table.setRowCount(len(files))
        words = {"indexed": tr("indexed"), "skipped": tr("skipped"), "failed": tr("failed")}
        for i, f in enumerate(files):
            detail = tr("{chunks} passages, {chars:,} characters").format(chunks=f.chunks, chars=f.chars) \
                if f.state == "indexed" else reason_text(f.reason)
            for j, text in enumerate((Path(f.path).name, words.get(f.state, f.state), detail)):
                item = QTableWidgetItem(text)
                item.setToolTip(f.path if j == 0 else f.reason or text if j == 2 else text)
                item.setData(Qt.ItemDataRole.UserRole, f.path)
                self.table.setItem(i, j, item)

    def create(self) -> None:
        name, ok = QInputDialog.getText(self, tr("New knowledge base"), tr("Name:"))
        if ok and name.strip():
            try:
                KnowledgeBase.open(name.strip()).close()
            except AuroraError as exc:
                QMessageBox.warning(self, tr("Knowledge bases"), str(exc))
                return
            self.refresh_names(name.strip())

    def delete(self) -> None:
        name = self.current
        if name is None or QMessageBox.question(
                self, tr("Delete knowledge base"),
                tr("Delete the knowledge base {name}? Your files stay where they are.").format(name=name)) \
                != QMessageBox.StandardButton.Yes:
            return
        KnowledgeBase.delete(name)
        self.refresh_names()

    def choose_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, tr("Add files"), str(Path.home()),
                                                tr("Documents (*.txt *.md *.pdf *.docx *.html *.htm)"))
        if paths:
            self.index([Path(p) for p in paths])

    def choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, tr("Add folder"), str(Path.home()))
        if path:
            self.index([Path(path)])

    def remove_selected(self) -> None:
        rows = sorted({i.row() for i in self.table.selectedItems()})
        if not rows or self.current is None:
            return
        kb = KnowledgeBase.open(self.current, create=False)
        try:
            kb.remove([Path(self.table.item(r, 0).data(Qt.ItemDataRole.UserRole)) for r in rows])
        except AuroraError as exc:
            QMessageBox.warning(self, tr("Knowledge bases"), str(exc))
        finally:
            kb.close()
        self.show_files()

    def index(self, paths: list[Path]) -> None:
        if self.current is None:
            self.create()
            if self.current is None:
                return
        self.indexer = IndexThread(self.current, paths, self)
        self.indexer.progress.connect(self._progress)
        self.indexer.finished_index.connect(self._indexed)
        self.indexer.failed.connect(self._failed)
        for w in (self.progress, self.progress_label, self.cancel_button):
            w.show()
        self.progress.setRange(0, 0)
        self._enable()
        self.indexer.start()

    def cancel(self) -> None:
        if self.indexer is not None:
            self.indexer.cancelled.set()

    def _progress(self, done: int, total: int, path: str) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress_label.setText(f"{done}/{total} {Path(path).name}" if path else f"{done}/{total}")

    def _indexed(self, report: SyncReport) -> None:
        self._done()
        note = tr("Indexed {indexed}, unchanged {unchanged}, skipped {skipped}, failed {failed}.").format(
            indexed=report.indexed, unchanged=report.unchanged, skipped=report.skipped, failed=report.failed)
        self.progress_label.setText(note + (" " + tr("Cancelled: what was finished is kept.") if report.cancelled
                                            else ""))
        self.progress_label.show()

    def _failed(self, message: str) -> None:
        self._done()
        QMessageBox.warning(self, tr("Knowledge bases"), message)

    def _done(self) -> None:
        if self.indexer is not None:
            self.indexer.wait()
            self.indexer = None
        for w in (self.progress, self.cancel_button):
            w.hide()
        self._enable()
        self.show_files()

    def _enable(self) -> None:
        idle = self.indexer is None
        for b in (self.add_files, self.add_folder, self.remove_button, self.update_button, self.delete_button,
                  self.new_button):
            b.setEnabled(idle)
        self.names.setEnabled(idle)

    def done(self, result: int) -> None:  # closing waits for the indexer (it stops at the next file)
        self.cancel()
        if self.indexer is not None:
            self.indexer.wait()
        super().done(result)
