"""The first screen, in the chat area while no model is loaded: what Aurora is, how to open a model, the
recent models, which Mixtral-8x7B file fits this computer, and where Aurora's files come from."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtWidgets import (
    QFrame, QGridLayout, QHBoxLayout, QLabel, QPushButton, QScrollArea, QVBoxLayout, QWidget,
)

from aurora_core.model_check import DEFAULT_N_CTX, available_memory, total_memory

from ..model_fit import GiB, Fit, mixtral_fits, recommended
from .i18n import tr

GB = 1e9
FIT_COLUMNS = ("Type", "File", "Needs", "Quality", "")


class WelcomePanel(QScrollArea):
    """Emits `open_requested` for the file dialog and `open_path` for a recent model."""

    open_requested = Signal()
    open_path = Signal(str)

    def __init__(self, n_ctx: int = DEFAULT_N_CTX, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("welcome")
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.n_ctx = n_ctx
        self.recent: list[str] = []
        inner = QWidget()
        inner.setObjectName("welcomeInner")
        self.setWidget(inner)
        outer = QHBoxLayout(inner)
        column = QVBoxLayout()
        column.setSpacing(10)
        outer.addStretch(1)
        outer.addLayout(column, 6)
        outer.addStretch(1)
        self.title = QLabel("Aurora Desktop")
        self.title.setObjectName("welcomeTitle")
        self.tagline = QLabel()
        self.tagline.setWordWrap(True)
        self.open_button = QPushButton()
        self.open_button.setObjectName("welcomeOpen")
        self.open_button.clicked.connect(self.open_requested)
        self.drop_hint = QLabel()
        open_row = QHBoxLayout()
        open_row.addWidget(self.open_button)
        open_row.addWidget(self.drop_hint, 1)
        self.recent_title = QLabel()
        self.recent_title.setObjectName("welcomeHeading")
        self.recent_box = QVBoxLayout()
        self.fit_title = QLabel()
        self.fit_title.setObjectName("welcomeHeading")
        self.fit_intro = QLabel()
        self.fit_intro.setWordWrap(True)
        self.fit_grid = QGridLayout()
        self.fit_grid.setHorizontalSpacing(18)
        self.source_title = QLabel()
        self.source_title.setObjectName("welcomeHeading")
        self.source = QLabel()
        self.source.setWordWrap(True)
        self.source.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        column.addStretch(1)
        for item in (self.title, self.tagline, open_row, self.recent_title, self.recent_box, self.fit_title,
                     self.fit_intro, self.fit_grid, self.source_title, self.source):
            column.addLayout(item) if not isinstance(item, QWidget) else column.addWidget(item)
        column.addStretch(2)
        self.retranslate()

    def set_recent(self, paths: list[str]) -> None:
        self.recent = [p for p in paths if Path(p).is_file()][:5]
        self._fill_recent()

    def set_context(self, n_ctx: int) -> None:
        self.n_ctx = n_ctx
        self._fill_fits()

    def changeEvent(self, event) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)

    def retranslate(self) -> None:
        self.tagline.setText(tr("Offline Chinese chat with a Mixtral model on your own computer. "
                                "Nothing you type leaves it."))
        self.open_button.setText(tr("Open a model file…"))
        self.drop_hint.setText(tr("or drop a .gguf file on this window"))
        self.recent_title.setText(tr("Recent models"))
        self.fit_title.setText(tr("Which model file fits this computer"))
        self.source_title.setText(tr("Where the model files come from"))
        self.source.setText(tr("Aurora's files are written by “aurora-export gguf” from Mixtral-8x7B-Instruct and "
                               "the Aurora adapter (README, “With the real model”). Any Mixtral or Llama GGUF "
                               "opens too."))
        self._fill_recent()
        self._fill_fits()

    def _fill_recent(self) -> None:
        _clear(self.recent_box)
        self.recent_title.setVisible(bool(self.recent))
        for path in self.recent:
            button = QPushButton(Path(path).name)
            button.setObjectName("welcomeRecent")
            button.setToolTip(path)
            button.setFlat(True)
            button.setStyleSheet("text-align: left;")
            button.clicked.connect(lambda _=False, p=path: self.open_path.emit(p))
            self.recent_box.addWidget(button)

    def fits(self) -> list[Fit]:
        return mixtral_fits(self.n_ctx)

    def _fill_fits(self) -> None:
        _clear(self.fit_grid)
        fits = self.fits()
        best = recommended(fits)
        self.fit_intro.setText(tr("This computer has {total:.0f} GB of memory ({free:.0f} GB free now). For "
                                  "Mixtral-8x7B at a context of {n_ctx:,} tokens:").format(
            total=total_memory() / GB, free=available_memory() / GB, n_ctx=self.n_ctx)
            + ("" if best else " " + tr("no file fits; a smaller model or another computer is needed.")))
        for col, name in enumerate(FIT_COLUMNS):
            head = QLabel(tr(name) if name else "")
            head.setObjectName("welcomeColumn")
            self.fit_grid.addWidget(head, 0, col)
        for row, fit in enumerate(fits, start=1):
            verdict = tr("recommended") if fit is best else tr("fits") if fit.fits else tr("too large")
            cells = (fit.type.name, f"{fit.type.file_bytes / GB:.1f} GB", f"{fit.need_bytes / GiB:.1f} GiB",
                     tr(fit.type.quality), ("✓ " if fit.fits else "✗ ") + verdict)
            for col, text in enumerate(cells):
                label = QLabel(text)
                label.setProperty("fits", fit.fits)
                label.setObjectName("welcomeBest" if fit is best else "welcomeFit" if fit.fits else "welcomeNoFit")
                self.fit_grid.addWidget(label, row, col)


def _clear(layout) -> None:
    while layout.count():
        item = layout.takeAt(0)
        if item.widget() is not None:
            item.widget().deleteLater()
