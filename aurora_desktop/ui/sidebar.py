"""The left side of the window: new chat, search, the folders and the chats of the chosen folder.

Folders and chats are Qt models over the store (`chat_list`); this widget shows them, asks the user for
names and choices, and tells the window what was chosen through signals.
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView, QInputDialog, QLineEdit, QListView, QMenu, QMessageBox, QPushButton, QVBoxLayout, QWidget,
)

from ..store import ALL, UNFILED, Store
from .chat_list import ID_ROLE, MESSAGE_ROLE, ConversationListModel, FolderListModel
from .dialogs import ChatSettingsDialog
from .i18n import tr


class Sidebar(QWidget):
    chat_chosen = Signal(int, object)  # conversation id, the message a search hit points at (or None)
    new_chat = Signal()
    delete_chat = Signal(int)
    chats_deleted = Signal(list)  # a folder was deleted with its chats (undo can bring them back)
    changed = Signal()  # a chat moved, or a title changed: the window re-reads the open chat

    def __init__(self, store: Store, parent=None) -> None:
        super().__init__(parent)
        self.store = store
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        self.new_button = QPushButton()
        self.new_button.clicked.connect(self.new_chat)
        self.search = QLineEdit()
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(lambda text: self.chat_model.refresh(query=text))
        self.folder_model = FolderListModel(store, self)
        self.folder_model.moved.connect(self.refresh)
        self.folder_model.moved.connect(self.changed)
        self.folder_view = self._list(self.folder_model, self._folder_menu)
        self.folder_view.setAcceptDrops(True)
        self.folder_view.setDragDropMode(QAbstractItemView.DragDropMode.DropOnly)
        self.folder_view.setMaximumHeight(150)
        self.folder_view.clicked.connect(lambda index: self.show_folder(index.data(ID_ROLE)))
        self.chat_model = ConversationListModel(store, self)
        self.chat_list = self._list(self.chat_model, self._chat_menu)
        self.chat_list.setDragEnabled(True)
        self.chat_list.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.chat_list.setWordWrap(True)
        self.chat_list.clicked.connect(lambda index: self.chat_chosen.emit(index.data(ID_ROLE),
                                                                            index.data(MESSAGE_ROLE)))
        for widget in (self.new_button, self.search, self.folder_view, self.chat_list):
            layout.addWidget(widget, 1 if widget is self.chat_list else 0)
        self.refresh()

    def _list(self, model, menu) -> QListView:
        view = QListView()
        view.setModel(model)
        view.setEditTriggers(QListView.EditTrigger.NoEditTriggers)
        view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        view.customContextMenuRequested.connect(lambda pos: menu(view.indexAt(pos), view.viewport().mapToGlobal(pos)))
        return view

    @property
    def folder(self) -> int:
        """The folder shown (ALL, UNFILED or a folder id); new chats go into it."""
        return self.chat_model.folder

    def retranslate(self) -> None:
        self.new_button.setText(tr("New chat"))
        self.search.setPlaceholderText(tr("Search all chats…"))
        self.search.setAccessibleName(tr("Search all chats"))
        self.chat_list.setAccessibleName(tr("Conversations"))
        self.folder_view.setAccessibleName(tr("Folders"))
        self.refresh()

    def refresh(self, current: int | None = None) -> None:
        """Re-read the folders and the chat list; mark `current` (the open chat) if it is listed."""
        folder = self.folder
        self.folder_model.refresh()
        if folder not in [fid for fid, _ in self.folder_model.rows]:
            folder = ALL
        self.folder_view.setCurrentIndex(self.folder_model.index(self.folder_model.row_of(folder), 0))
        self.chat_model.refresh(folder=folder)
        self.select(current)

    def select(self, conv_id: int | None) -> None:
        row = self.chat_model.row_of(conv_id)
        if row is not None:
            self.chat_list.setCurrentIndex(self.chat_model.index(row, 0))

    def show_folder(self, folder: int) -> None:
        self.chat_model.refresh(folder=folder)

    # -- chats ------------------------------------------------------------------------------------

    def _chat_menu(self, index: QModelIndex, at) -> None:
        if not index.isValid():
            return
        conv_id = index.data(ID_ROLE)
        menu = QMenu(self)
        menu.addAction(tr("Rename…"), lambda: self.rename_chat(conv_id))
        move = menu.addMenu(tr("Move to folder"))
        for folder in self.store.folders():
            move.addAction(folder.name, lambda f=folder.id: self.folder_model.move_chats([conv_id], f))
        move.addAction(tr("No folder"), lambda: self.folder_model.move_chats([conv_id], UNFILED))
        menu.addAction(tr("Delete"), lambda: self.delete_chat.emit(conv_id))
        menu.exec(at)

    def rename_chat(self, conv_id: int, title: str | None = None) -> None:
        if title is None:
            title, ok = QInputDialog.getText(self, tr("Rename"), tr("Title:"), text=self.store.conversation(conv_id).title)
            if not ok:
                return
        self.store.rename(conv_id, title.strip())
        self.chat_model.refresh()
        self.changed.emit()

    # -- folders ----------------------------------------------------------------------------------

    def _folder_menu(self, index: QModelIndex, at) -> None:
        folder = index.data(ID_ROLE) if index.isValid() else None
        menu = QMenu(self)
        menu.addAction(tr("New folder…"), self.create_folder)
        if folder not in (None, ALL, UNFILED):
            menu.addAction(tr("Rename…"), lambda: self.rename_folder(folder))
            menu.addAction(tr("Folder settings…"), lambda: self.edit_folder(folder))
            menu.addAction(tr("Delete folder…"), lambda: self.delete_folder(folder))
        menu.exec(at)

    def create_folder(self, name: str | None = None) -> int | None:
        if name is None:
            name, ok = QInputDialog.getText(self, tr("New folder"), tr("Name:"))
            if not ok or not name.strip():
                return None
        folder = self.store.create_folder(name.strip())
        self.refresh()
        self.show_folder(folder)
        self.folder_view.setCurrentIndex(self.folder_model.index(self.folder_model.row_of(folder), 0))
        return folder

    def rename_folder(self, folder: int, name: str | None = None) -> None:
        if name is None:
            name, ok = QInputDialog.getText(self, tr("Rename"), tr("Name:"), text=self.store.folder(folder).name)
            if not ok or not name.strip():
                return
        self.store.update_folder(folder, name=name.strip())
        self.refresh()

    def edit_folder(self, folder: int) -> None:
        """The folder's default system prompt and sampling settings: new and moved chats start from them."""
        row = self.store.folder(folder)
        dialog = ChatSettingsDialog(row.system, row.settings or {}, self)
        dialog.setWindowTitle(tr("Folder settings") + f" — {row.name}")
        if dialog.exec():
            system, settings = dialog.values()
            self.store.update_folder(folder, system=system or "", settings=settings)
            self.changed.emit()

    def delete_folder(self, folder: int, with_chats: bool | None = None) -> None:
        """Remove a folder; the user chooses whether its chats move to no folder or are deleted too."""
        if with_chats is None:
            box = QMessageBox(QMessageBox.Icon.Question, tr("Delete folder"),
                              tr("Delete the folder “{name}”. What happens to its chats?").format(
                                  name=self.store.folder(folder).name), parent=self)
            keep = box.addButton(tr("Keep the chats"), QMessageBox.ButtonRole.AcceptRole)
            drop = box.addButton(tr("Delete the chats too"), QMessageBox.ButtonRole.DestructiveRole)
            box.addButton(QMessageBox.StandardButton.Cancel)
            box.exec()
            if box.clickedButton() not in (keep, drop):
                return
            with_chats = box.clickedButton() is drop
        deleted = self.store.delete_folder(folder, with_chats)
        self.refresh()
        if deleted:
            self.chats_deleted.emit(deleted)
        self.changed.emit()
