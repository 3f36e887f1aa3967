"""The conversation: one bubble per message, each with its versions (`< 2/3 >`) and actions."""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, QUrl, Signal
from PySide6.QtWidgets import (
    QFrame, QHBoxLayout, QLabel, QScrollArea, QSizePolicy, QToolButton, QVBoxLayout, QWidget,
)

from ..store import MessageRow
from .markdown_view import MarkdownView


class MessageWidget(QFrame):
    """One message: who, its versions, its actions, its text."""

    flip = Signal(int, int)  # message id, -1 or +1
    edit = Signal(int)
    regenerate = Signal(int)
    copy = Signal(int)

    def __init__(self, row: MessageRow, tr, dark: bool, parent=None) -> None:
        super().__init__(parent)
        self.row = row
        self.setObjectName("userBubble" if row.role == "user" else "assistantBubble")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        head = QHBoxLayout()
        self.who = QLabel(tr("You") if row.role == "user" else "Aurora")
        self.who.setObjectName("who")
        head.addWidget(self.who)
        head.addStretch(1)
        self.status = QLabel("")
        self.status.setObjectName("status")
        head.addWidget(self.status)
        if row.versions > 1:
            prev_b, next_b = QToolButton(), QToolButton()
            prev_b.setText("<")
            next_b.setText(">")
            prev_b.setAccessibleName(tr("Previous version"))
            next_b.setAccessibleName(tr("Next version"))
            prev_b.setEnabled(row.version > 1)
            next_b.setEnabled(row.version < row.versions)
            prev_b.clicked.connect(lambda: self.flip.emit(row.id, -1))
            next_b.clicked.connect(lambda: self.flip.emit(row.id, +1))
            self.versions = QLabel(f"{row.version}/{row.versions}")
            head.addWidget(prev_b)
            head.addWidget(self.versions)
            head.addWidget(next_b)
        self.actions = {}
        for key, label, signal in (("copy", tr("Copy"), self.copy),
                                   ("edit" if row.role == "user" else "regenerate",
                                    tr("Edit") if row.role == "user" else tr("Regenerate"),
                                    self.edit if row.role == "user" else self.regenerate)):
            b = QToolButton()
            b.setText(label)
            b.setAccessibleName(label)
            b.setAutoRaise(True)
            b.clicked.connect(lambda _=False, s=signal: s.emit(self.row.id))
            head.addWidget(b)
            self.actions[key] = b
        layout.addLayout(head)
        self.view = MarkdownView(self, dark)
        self.view.copy_label = tr("Copy code")
        self.view.setAccessibleName(tr("Message text"))
        layout.addWidget(self.view)
        self.sources = QLabel()  # an answer's knowledge-base sources, each a link that opens the file
        self.sources.setObjectName("sources")
        self.sources.setWordWrap(True)
        self.sources.setTextFormat(Qt.TextFormat.RichText)
        self.sources.setOpenExternalLinks(True)
        self.sources.hide()
        layout.addWidget(self.sources)
        self.tr = tr
        self.set_status(row.status, tr)
        if row.role == "user":
            self.view.setPlainText(row.content)
        else:
            self.view.set_markdown_final(row.content)

    def set_sources(self, sources: list[dict]) -> None:
        """`Sources: [1] 报告.pdf, p. 3 · [2] …` under the answer; a click opens the file (the system's viewer)."""
        if not sources:
            self.sources.hide()
            return
        links = []
        for n, s in enumerate(sources, 1):
            name = Path(s["path"]).name + (", " + self.tr("p. {page}").format(page=s["page"]) if s.get("page") else "")
            links.append(f'<a href="{html.escape(QUrl.fromLocalFile(s["path"]).toString())}">[{n}] '
                         f"{html.escape(name)}</a>")
        self.sources.setText(html.escape(self.tr("Sources:")) + " " + " · ".join(links))
        self.sources.setToolTip("\n".join(s["path"] for s in sources))
        self.sources.show()

    def set_status(self, status: str, tr) -> None:
        text = {"interrupted": tr("interrupted"), "stopped": tr("stopped"), "error": tr("error"),
                "streaming": tr("writing…")}.get(status, "")
        self.status.setText(text)

    def set_streaming(self, enabled: bool) -> None:
        for b in self.actions.values():
            b.setEnabled(not enabled)


class ChatView(QScrollArea):
    """The messages of the branch being shown, newest at the bottom."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.inner = QWidget()
        self.inner.setObjectName("chatInner")
        self.column = QVBoxLayout(self.inner)
        self.column.setContentsMargins(16, 16, 16, 16)
        self.column.setSpacing(12)
        self.column.addStretch(1)
        self.setWidget(self.inner)
        self.widgets: list[MessageWidget] = []
        self.follow = True  # keep the newest text in sight while it streams
        self.verticalScrollBar().rangeChanged.connect(self._range_changed)
        self.verticalScrollBar().valueChanged.connect(self._user_scrolled)

    def clear(self) -> None:
        for w in self.widgets:
            w.setParent(None)
            w.deleteLater()
        self.widgets = []

    def add(self, widget: MessageWidget) -> MessageWidget:
        widget.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Maximum)
        self.column.insertWidget(self.column.count() - 1, widget)
        self.widgets.append(widget)
        self.follow = True
        return widget

    def _range_changed(self, _lo: int, hi: int) -> None:
        if self.follow:
            self.verticalScrollBar().setValue(hi)

    def _user_scrolled(self, value: int) -> None:
        self.follow = value >= self.verticalScrollBar().maximum() - 4

    def scroll_to_bottom(self) -> None:
        QTimer.singleShot(0, self, lambda: self.verticalScrollBar().setValue(self.verticalScrollBar().maximum()))
