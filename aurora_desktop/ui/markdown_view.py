"""A read-only Markdown view that streams: finished blocks are committed once, only the tail is redrawn.

`set_markdown_streaming(text)` costs the size of the new blocks and the tail, not of the whole answer
(re-running setMarkdown per token is quadratic); `set_markdown_final(text)` renders the whole answer
once, when it is complete. Code blocks get a copy link and a light syntax highlight.
"""

from __future__ import annotations

import re

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QSyntaxHighlighter, QTextCharFormat, QTextCursor, QTextDocument, QTextFormat
from PySide6.QtWidgets import QApplication, QSizePolicy, QTextBrowser

from ..markdown_blocks import COPY_SCHEME, code_blocks, committed_end, with_copy_links

KEYWORDS = re.compile(r"\b(def|class|return|if|elif|else|for|while|in|import|from|as|with|try|except|finally|"
                      r"lambda|yield|None|True|False|and|or|not|function|const|let|var|int|void|public|static)\b")
STRINGS = re.compile(r"(\"[^\"\n]*\"|'[^'\n]*')")
COMMENTS = re.compile(r"(#[^\n]*|//[^\n]*)")


class CodeHighlighter(QSyntaxHighlighter):
    """Keywords, strings and comments inside fenced code blocks."""

    def __init__(self, document: QTextDocument, dark: bool) -> None:
        super().__init__(document)
        self.formats = {}
        for name, color in (("kw", "#c678dd" if dark else "#a626a4"), ("str", "#98c379" if dark else "#50a14f"),
                            ("com", "#7f848e" if dark else "#a0a1a7")):
            f = QTextCharFormat()
            f.setForeground(QColor(color))
            self.formats[name] = f

    def highlightBlock(self, text: str) -> None:
        if not self.currentBlock().blockFormat().hasProperty(QTextFormat.Property.BlockCodeFence):
            return
        for pattern, name in ((KEYWORDS, "kw"), (STRINGS, "str"), (COMMENTS, "com")):
            for m in pattern.finditer(text):
                self.setFormat(m.start(), m.end() - m.start(), self.formats[name])


class MarkdownView(QTextBrowser):
    """Grows to fit its text (the chat view scrolls, not each message)."""

    copied = Signal(str)

    def __init__(self, parent=None, dark: bool = False) -> None:
        super().__init__(parent)
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.anchorClicked.connect(self._anchor)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setFrameShape(QTextBrowser.Shape.NoFrame)
        self.document().setDocumentMargin(2)
        # The layout reports its size as it grows; setting the text width relays out everything, so it
        # happens only when the width really changes (per update it would make streaming quadratic).
        self.document().documentLayout().documentSizeChanged.connect(self._set_height)
        self.highlighter = CodeHighlighter(self.document(), dark)
        self.code_background = QColor("#2b2f36" if dark else "#f0f1f3")
        self.copy_label = "Copy code"
        self._source = ""
        self._committed = 0  # characters of the source committed to the document
        self._committed_pos = 0  # document position where the tail starts
        self._codes: list[str] = []

    # -- rendering --------------------------------------------------------------------------------

    def set_markdown_streaming(self, text: str) -> None:
        """Show `text` (a prefix of the growing answer): new finished blocks once, the tail again."""
        if not text.startswith(self._source[: self._committed]):
            self._reset()
        cut = committed_end(text, self._committed)
        cursor = QTextCursor(self.document())
        cursor.setPosition(self._committed_pos)
        cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
        cursor.removeSelectedText()
        if cut > self._committed:
            chunk = text[self._committed: cut]
            start = cursor.position()
            self._insert(cursor, with_copy_links(chunk, self.copy_label, len(self._codes)))
            self._shade_code(start)
            self._codes += code_blocks(chunk)
            self._committed = cut
            self._committed_pos = cursor.position()
        tail = text[cut:]
        if tail:
            self._insert(cursor, tail)
        self._source = text

    def set_markdown_final(self, text: str) -> None:
        """The whole text, rendered once (lists, tables and numbering across blocks come out right)."""
        self._codes = code_blocks(text)
        self.document().setMarkdown(with_copy_links(text, self.copy_label),
                                    QTextDocument.MarkdownFeature.MarkdownDialectGitHub)
        self._source, self._committed = text, len(text)
        self._committed_pos = self.document().characterCount() - 1
        self._shade_code(0)

    def markdown_source(self) -> str:
        return self._source

    def _reset(self) -> None:
        self.document().clear()
        self._source, self._committed, self._committed_pos, self._codes = "", 0, 0, []

    def _shade_code(self, start: int) -> None:
        """A background behind the code blocks from document position `start` on."""
        block = self.document().findBlock(start)
        while block.isValid():
            fmt = block.blockFormat()
            if fmt.hasProperty(QTextFormat.Property.BlockCodeFence) and fmt.background().color() != self.code_background:
                fmt.setBackground(self.code_background)
                QTextCursor(block).setBlockFormat(fmt)
            block = block.next()

    def _insert(self, cursor: QTextCursor, markdown: str) -> None:
        if cursor.position() > 0:
            cursor.insertBlock()
        cursor.insertMarkdown(markdown, QTextDocument.MarkdownFeature.MarkdownDialectGitHub)

    # -- size and links ---------------------------------------------------------------------------

    def _set_height(self, size) -> None:
        height = int(size.height()) + 6
        if self.height() != height:
            self.setFixedHeight(height)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        width = self.viewport().width()
        if self.document().textWidth() != width:
            self.document().setTextWidth(width)

    def sizeHint(self) -> QSize:
        return QSize(400, int(self.document().size().height()) + 6)

    def _anchor(self, url) -> None:
        if url.scheme() == COPY_SCHEME:
            index = int(url.path() or url.toString().split(":", 1)[1])
            if 0 <= index < len(self._codes):
                QApplication.clipboard().setText(self._codes[index])
                self.copied.emit(self._codes[index])
