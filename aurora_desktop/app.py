"""`aurora-desktop [MODEL.gguf]`: the chat window. No network connection is made.

llama_cpp is imported before PySide6 (an access violation otherwise on some platforms, llama-cpp-python
#2029), and Qt picks an input method that works with the pip PySide6 (see `input_method_env`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from aurora_core.errors import run_main

from .cpu import version_text
from .engine import EngineConfig


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aurora-desktop",
        description="Aurora Desktop: a window for offline multi-turn Chinese chat with a GGUF model exported by "
        "aurora-export (or any Mixtral/Llama GGUF). Chats are kept in a SQLite database in your data folder; "
        "nothing is sent over the network.",
    )
    parser.add_argument("model", nargs="?", help="GGUF model file to open (skips the model panel)")
    parser.add_argument("--version", action="version", version=version_text("aurora-desktop"))
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder for the chat database (default: the platform's data folder, e.g. "
                        "~/.local/share/Aurora/Aurora Desktop)")
    parser.add_argument("--language", choices=("zh_CN", "en"), default=None,
                        help="interface language (default: the system's; switch any time in View)")
    parser.add_argument("--ctx", type=int, default=EngineConfig.n_ctx,
                        help="context size for MODEL (default: %(default)s)")
    parser.add_argument("--exit-after-show", action="store_true",
                        help="open the window, print the seconds it took to appear and the interface's language and "
                        "texts (menus, buttons, Qt's file dialog), and close it (a start-up check)")
    return parser


def input_method_env(environ: dict) -> dict:
    """Settings that make Chinese input work with the pip PySide6, which bundles no fcitx5 plugin.

    Under fcitx5 with no fcitx Qt plugin available, Qt talks to fcitx5 through its ibus emulation
    (`QT_IM_MODULE=ibus`). A user's own QT_IM_MODULE is kept unless it names fcitx, which this Qt cannot load.
    """
    out = {}
    fcitx = "fcitx" in (environ.get("XMODIFIERS", "") + environ.get("GTK_IM_MODULE", "")).lower() \
        or environ.get("QT_IM_MODULE", "").startswith("fcitx")
    if fcitx and not _has_fcitx_plugin():
        out["QT_IM_MODULE"] = "ibus"
    return out


def _has_fcitx_plugin() -> bool:
    try:
        import PySide6
    except ImportError:
        return False
    plugins = Path(PySide6.__file__).parent / "Qt" / "plugins" / "platforminputcontexts"
    return any("fcitx" in p.name for p in plugins.glob("*")) if plugins.is_dir() else False


def interface_texts(window) -> dict:
    """What the user reads first, for the start-up check: the language, the menus, the main buttons, whether
    the first screen is shown, and the buttons of Qt's own file dialog (translated by Qt's qtbase_*.qm)."""
    from PySide6.QtWidgets import QDialogButtonBox, QFileDialog

    from .ui import i18n

    dialog = QFileDialog(window)
    dialog.setOption(QFileDialog.Option.DontUseNativeDialog)
    box = dialog.findChild(QDialogButtonBox)
    file_dialog = [b.text() for b in box.buttons()] if box is not None else []
    dialog.deleteLater()
    return {"language": i18n.current,
            "menus": [re.sub(r"\(&\w\)|&", "", a.text()) for a in window.menuBar().actions()],
            "buttons": [window.new_button.text(), window.send_button.text(), window.welcome.open_button.text()],
            "first_screen": window.pages.currentWidget() is window.welcome,
            "file_dialog": file_dialog}


def main(argv: list[str] | None = None) -> int:
    return run_main("aurora-desktop", lambda: _window(build_parser().parse_args(argv)), terminate_like_ctrl_c=False)


def _window(args) -> int:
    import time

    started = time.perf_counter()
    import llama_cpp  # noqa: F401  -- before Qt

    os.environ.update(input_method_env(dict(os.environ)))
    from PySide6.QtCore import QCoreApplication, QSettings
    from PySide6.QtWidgets import QApplication

    from .store import Store
    from .ui import i18n
    from .ui.dialogs import data_dir
    from .ui.main_window import MainWindow
    from .ui.style import apply_style

    QCoreApplication.setOrganizationName("Aurora")
    QCoreApplication.setApplicationName("Aurora Desktop")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    apply_style(app)
    settings = QSettings()
    i18n.set_language(args.language or str(settings.value("language", i18n.system_language())))
    folder = args.data_dir or data_dir()
    store = Store(folder / "chats.sqlite")
    window = MainWindow(store, settings)
    window.show()
    if args.exit_after_show:
        from PySide6.QtCore import QTimer

        def shown() -> None:
            print(f"window shown after {time.perf_counter() - started:.2f} s", flush=True)
            print("interface: " + json.dumps(interface_texts(window), ensure_ascii=False), flush=True)
            window.close()

        QTimer.singleShot(0, shown)
    elif args.model:
        window.load_model(args.model, EngineConfig(n_ctx=args.ctx))
    rc = app.exec()
    store.close()
    return rc


if __name__ == "__main__":
    sys.exit(main())
