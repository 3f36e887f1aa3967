"""The message box: Enter sends, Shift+Enter is a new line (or Ctrl+Enter sends, by setting).

Enter while an input method is composing (pre-edit text shown, e.g. pinyin not yet turned into
characters) never sends: it belongs to the input method.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QInputMethodEvent, QKeyEvent
from PySide6.QtWidgets import QPlainTextEdit

SEND_ENTER = "enter"
SEND_CTRL_ENTER = "ctrl+enter"


class Composer(QPlainTextEdit):
    submitted = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.send_key = SEND_ENTER
        self.composing = False
        self.setTabChangesFocus(True)
        self.setAttribute(Qt.WidgetAttribute.WA_InputMethodEnabled, True)
        self.setMaximumHeight(110)

    def inputMethodEvent(self, event: QInputMethodEvent) -> None:
        self.composing = bool(event.preeditString())
        super().inputMethodEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.composing:
            return  # the input method's Enter (it commits or cancels the pre-edit text itself)
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            mods = event.modifiers()
            ctrl = bool(mods & Qt.KeyboardModifier.ControlModifier)
            shift = bool(mods & Qt.KeyboardModifier.ShiftModifier)
            send = (not shift and not ctrl) if self.send_key == SEND_ENTER else ctrl
            if send:
                self.submit()
                return
            if self.send_key == SEND_ENTER and shift or self.send_key == SEND_CTRL_ENTER and not ctrl:
                self.insertPlainText("\n")
                return
        super().keyPressEvent(event)

    def submit(self) -> None:
        text = self.toPlainText().strip()
        if text:
            self.submitted.emit(text)
