"""The window's switch "Serve to other programs": aurora-serve's server on the model the window has loaded.

Off by default and off again at every start. When on, the status bar shows the address and a button that copies
the API key (the same key as `aurora-serve`'s, in its 0600 file; not shown, so a shared screen does not show it);
the server listens on 127.0.0.1 only, with every one of aurora-serve's checks. The window and the programs share
one engine: an answer waits while another is being written.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QLabel, QToolButton

from aurora_core.errors import AuroraError

from ..serve import BackgroundServer, ServeConfig, key_file, stored_key
from .i18n import tr

DEFAULT_PORT = 8399


class ServeSwitch(QObject):
    """Starts and stops the server; `failed(message)` when it cannot start (the switch goes off again)."""

    failed = Signal(str)

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.server: BackgroundServer | None = None
        self.label = QLabel()
        self.label.setObjectName("serveLabel")
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.hide()
        self.copy_key = QToolButton()
        self.copy_key.clicked.connect(self._copy_key)
        self.copy_key.hide()

    @property
    def wanted(self) -> bool:
        return self.window._action_keys["serve"].isChecked()

    def set_on(self, on: bool) -> None:
        self.start() if on else self.stop()
        self.window._action_keys["serve"].setChecked(self.server is not None)

    def start(self) -> None:
        engine = self.window.engine
        if self.server is not None or engine is None or engine.remote:
            self.refresh()
            return
        port = int(self.window.settings.value("serve_port", DEFAULT_PORT))
        try:
            config = ServeConfig(port=port, api_key=stored_key(), model_name=Path(engine.info.path).stem)
            server = BackgroundServer(engine, config)
            server.start()
        except (AuroraError, OSError) as exc:
            self.failed.emit(str(exc))
            self.refresh()
            return
        self.server = server
        self.refresh()

    def stop(self) -> None:
        """Stop serving (answers being streamed to programs stop); the port is free again."""
        if self.server is not None:
            self.server.stop()
            self.server = None
        self.refresh()

    def engine_changed(self) -> None:
        """After a model was loaded, closed or replaced by a remote one: serve the new local model when wanted."""
        self.stop()
        if self.wanted:
            self.start()
            self.window._action_keys["serve"].setChecked(self.server is not None)

    def refresh(self) -> None:
        engine = self.window.engine
        self.window._action_keys["serve"].setEnabled(engine is not None and not engine.remote)
        if self.server is None:
            self.label.hide()
            self.copy_key.hide()
            return
        self.label.setText(tr("Serving to other programs at {url}").format(url=self.server.url))
        self.label.setToolTip(tr("Programs send the API key with each request; it is kept in {path}").format(
            path=key_file()))
        self.copy_key.setText(tr("Copy key"))
        self.copy_key.setToolTip(tr("Copy the API key that programs send with each request"))
        self.label.show()
        self.copy_key.show()

    def _copy_key(self) -> None:
        if self.server is None:
            return
        QGuiApplication.clipboard().setText(self.server.config.api_key)
        self.copy_key.setText(tr("Copied"))
        QTimer.singleShot(2000, self.copy_key, lambda: self.copy_key.setText(tr("Copy key")))  # not after it is gone
