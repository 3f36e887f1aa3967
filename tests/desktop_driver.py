"""Runs the real window offscreen and asks one question after another, forever (for the SIGKILL test).

    python desktop_driver.py MODEL.gguf CHATS.sqlite

Prints one JSON line per finished answer: {"id", "content"}.
"""

from __future__ import annotations

import json
import sys

import llama_cpp  # noqa: F401  -- before Qt
from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication

from aurora_desktop.engine import EngineConfig
from aurora_desktop.store import Store
from aurora_desktop.ui.main_window import MainWindow


def main() -> None:
    model, db = sys.argv[1], sys.argv[2]
    app = QApplication([])
    window = MainWindow(Store(db), QSettings(db + ".ini", QSettings.Format.IniFormat))
    window.save_every_s = 0.05
    window.show()
    window.load_model(model, EngineConfig(n_ctx=4096, n_threads=1))
    count = [0]

    def ask() -> None:
        if window.engine is None:
            QTimer.singleShot(50, ask)
            return
        if window.conv_id is None:
            window.new_chat()
            window.store.set_settings(window.conv_id, {"temperature": 1.0, "max_tokens": 2000,
                                                       "context_policy": "drop_oldest"})
        count[0] += 1
        window.composer.setPlainText(f"第{count[0]}个问题：请写一个长故事。")
        window.composer.submit()
        window.streaming.thread.finished_generation.connect(report)

    def report(_gen) -> None:
        row = window.store.branch(window.conv_id)[-1]
        print(json.dumps({"id": row.id, "content": row.content}, ensure_ascii=False), flush=True)
        QTimer.singleShot(0, ask)

    QTimer.singleShot(0, ask)
    app.exec()


if __name__ == "__main__":
    main()
