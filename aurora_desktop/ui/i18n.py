"""Simplified Chinese and English: Qt `.ts` sources beside this file, `.qm` built by lrelease.

`./run setup` (and the installers) build the `.qm` files; if one is missing or older than its
`.ts`, it is built into the user's cache on first use (PySide6 ships `lrelease`). The language
follows the system locale unless the user picks one; switching is live (a LanguageChange event).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QLocale, QStandardPaths, QTranslator

CONTEXT = "Aurora"
HERE = Path(__file__).parent / "translations"
LANGUAGES = {"zh_CN": "简体中文", "en": "English"}

_translator: QTranslator | None = None
current = "en"


def tr(text: str) -> str:
    return QCoreApplication.translate(CONTEXT, text)


def system_language() -> str:
    return "zh_CN" if QLocale.system().language() == QLocale.Language.Chinese else "en"


def lrelease() -> str | None:
    exe = Path(sys.executable).with_name("pyside6-lrelease")
    return str(exe) if exe.exists() else shutil.which("pyside6-lrelease") or shutil.which("lrelease")


def build_qm(ts: Path, qm: Path) -> bool:
    tool = lrelease()
    if tool is None:
        return False
    qm.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([tool, "-silent", str(ts), "-qm", str(qm)], capture_output=True)
    return done.returncode == 0 and qm.is_file()


def qm_file(lang: str) -> Path | None:
    """The compiled translations of `lang`: beside the sources, else in the user's cache; built when stale."""
    ts = HERE / f"aurora_{lang}.ts"
    if not ts.is_file():
        return None
    cache = Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.CacheLocation))
    candidates = [HERE / ts.with_suffix(".qm").name, cache / ts.with_suffix(".qm").name]
    for qm in candidates:
        if qm.is_file() and qm.stat().st_mtime >= ts.stat().st_mtime:
            return qm
    for qm in candidates:
        try:
            if build_qm(ts, qm):
                return qm
        except OSError:
            continue
    return None


def set_language(lang: str) -> bool:
    """Install `lang`'s translations (English needs none); widgets get a LanguageChange event."""
    global _translator, current
    app = QCoreApplication.instance()
    if _translator is not None:
        app.removeTranslator(_translator)
        _translator = None
    current = "en"
    if lang == "en":
        return True
    qm = qm_file(lang)
    translator = QTranslator(app)
    if qm is None or not translator.load(str(qm)):
        return False
    app.installTranslator(translator)
    _translator, current = translator, lang
    return True
