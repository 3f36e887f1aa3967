"""The chat list and the folder list as Qt models over the store; views only display them.

`ConversationListModel` holds the chats of one folder (or all, or those a search finds); `FolderListModel`
holds "All chats", each folder and "No folder". A chat dragged from one onto the other moves into that folder.
Both work without a window (the tests use them alone).
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QAbstractListModel, QByteArray, QMimeData, QModelIndex, Qt, Signal

from ..store import ALL, UNFILED, Store
from .i18n import tr

ID_ROLE = Qt.ItemDataRole.UserRole + 1  # the chat's (or folder's) id
MESSAGE_ROLE = Qt.ItemDataRole.UserRole + 2  # the message a search hit points at
CHAT_MIME = "application/x-aurora-chat"


@dataclass(frozen=True)
class ListEntry:
    conv_id: int
    title: str
    snippet: str = ""
    message_id: int | None = None


class ConversationListModel(QAbstractListModel):
    """The chats of `folder` (ALL, UNFILED or a folder id), newest first; with `query`, the search hits."""

    def __init__(self, store: Store, parent=None) -> None:
        super().__init__(parent)
        self.store, self.folder, self.query = store, ALL, ""
        self.entries: list[ListEntry] = []

    def refresh(self, folder: int | None = None, query: str | None = None) -> None:
        self.folder = self.folder if folder is None else folder
        self.query = self.query if query is None else query.strip()
        self.beginResetModel()
        if self.query:
            self.entries = [ListEntry(h.conversation_id, h.title, h.snippet, h.message_id)
                            for h in self.store.search(self.query, folder=self.folder)]
        else:
            self.entries = [ListEntry(c.id, c.title) for c in self.store.conversations(self.folder)]
        self.endResetModel()

    def row_of(self, conv_id: int | None) -> int | None:
        return next((i for i, e in enumerate(self.entries) if e.conv_id == conv_id), None)

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802 (Qt's name)
        return 0 if parent.isValid() else len(self.entries)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        entry = self.entries[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            title = entry.title or tr("New chat")
            return f"{title}\n{entry.snippet}" if entry.snippet else title
        if role == Qt.ItemDataRole.ToolTipRole:
            return entry.title or tr("New chat")
        if role == ID_ROLE:
            return entry.conv_id
        if role == MESSAGE_ROLE:
            return entry.message_id
        return None

    def flags(self, index: QModelIndex) -> Qt.ItemFlag:
        base = super().flags(index)
        return base | Qt.ItemFlag.ItemIsDragEnabled if index.isValid() else base

    def mimeTypes(self) -> list[str]:  # noqa: N802
        return [CHAT_MIME]

    def mimeData(self, indexes) -> QMimeData:  # noqa: N802
        mime = QMimeData()
        ids = ",".join(str(self.entries[i.row()].conv_id) for i in indexes if i.isValid())
        mime.setData(CHAT_MIME, QByteArray(ids.encode()))
        return mime

    def supportedDragActions(self) -> Qt.DropAction:  # noqa: N802
        return Qt.DropAction.MoveAction


class FolderListModel(QAbstractListModel):
    """"All chats", the folders by name, "No folder"; dropping chats on a row moves them there."""

    moved = Signal()  # chats changed folder by a drop

    def __init__(self, store: Store, parent=None) -> None:
        super().__init__(parent)
        self.store = store
        self.rows: list[tuple[int, str]] = []
        self.refresh()

    def refresh(self) -> None:
        self.beginResetModel()
        folders = [(f.id, f.name) for f in self.store.folders()]
        self.rows = [(ALL, "")] + folders + ([(UNFILED, "")] if folders else [])
        self.endResetModel()

    def row_of(self, folder: int) -> int:
        return next((i for i, (fid, _) in enumerate(self.rows) if fid == folder), 0)

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.rows)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        folder, name = self.rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return {ALL: tr("All chats"), UNFILED: tr("No folder")}.get(folder, name)
        if role == ID_ROLE:
            return folder
        return None

    def flags(self, index: QModelIndex) -> Qt.ItemFlag:
        base = super().flags(index)
        return base | Qt.ItemFlag.ItemIsDropEnabled if index.isValid() and self.rows[index.row()][0] != ALL else base

    def mimeTypes(self) -> list[str]:  # noqa: N802
        return [CHAT_MIME]

    def supportedDropActions(self) -> Qt.DropAction:  # noqa: N802
        return Qt.DropAction.MoveAction | Qt.DropAction.CopyAction

    def canDropMimeData(self, data, action, row, column, parent) -> bool:  # noqa: N802
        return data.hasFormat(CHAT_MIME) and parent.isValid() and self.rows[parent.row()][0] != ALL

    def dropMimeData(self, data, action, row, column, parent) -> bool:  # noqa: N802
        if not self.canDropMimeData(data, action, row, column, parent):
            return False
        self.move_chats([int(x) for x in bytes(data.data(CHAT_MIME)).decode().split(",") if x],
                        self.rows[parent.row()][0])
        return True

    def move_chats(self, conv_ids: list[int], folder: int) -> None:
        for conv_id in conv_ids:
            self.store.move(conv_id, None if folder == UNFILED else folder)
        self.moved.emit()
