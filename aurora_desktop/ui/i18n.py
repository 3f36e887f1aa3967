"""Simplified Chinese and English: Qt `.ts` sources beside this file, `.qm` built by lrelease.

`./run setup` and the installers build the `.qm` files; an installed copy carries only those. In a source
checkout a `.qm` missing or older than its `.ts` is built into the user's cache on first use (PySide6 ships
`lrelease`). Qt's own strings (standard buttons, the file dialog) come from Qt's `qtbase_LANG.qm`. The
language follows the system locale unless the user picked one in View (kept in the settings); switching is
live (a LanguageChange event).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QLibraryInfo, QLocale, QStandardPaths, QTranslator

CONTEXT = "Aurora"
HERE = Path(__file__).parent / "translations"
LANGUAGES = {"zh_CN": "简体中文", "en": "English"}

_translators: list[QTranslator] = []  # Qt's own, then Aurora's
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
    """The compiled translations of `lang`.

    An installed copy (the installers, a wheel) carries the `.qm` alone: it is used as it is. A source
    checkout also has the `.ts`: a `.qm` older than it is rebuilt (beside it, else in the user's cache).
    """
    ts = HERE / f"aurora_{lang}.ts"
    qm = HERE / f"aurora_{lang}.qm"
    if not ts.is_file():
        return qm if qm.is_file() else None
    cache = Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.CacheLocation))
    candidates = [qm, cache / qm.name]
    for candidate in candidates:
        if candidate.is_file() and candidate.stat().st_mtime >= ts.stat().st_mtime:
            return candidate
    for candidate in candidates:
        try:
            if build_qm(ts, candidate):
                return candidate
        except OSError:
            continue
    return qm if qm.is_file() else None  # stale, but better than English under a Chinese locale


def qt_translations_dir() -> Path | None:
    """Where Qt's own translations (`qtbase_zh_CN.qm`: standard buttons, file dialogs) are."""
    folder = Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.TranslationsPath))
    if any(folder.glob("qtbase_*.qm")):
        return folder
    import PySide6  # a frozen bundle keeps PySide6's folder layout: PySide6/Qt/translations

    folder = Path(PySide6.__file__).parent / "Qt" / "translations"
    return folder if folder.is_dir() else None


def set_language(lang: str) -> bool:
    """Install `lang`'s translations, Aurora's and Qt's own (English needs none); widgets get a LanguageChange
    event. False (and English) when Aurora's translations for `lang` cannot be found."""
    global current
    app = QCoreApplication.instance()
    for translator in _translators:
        app.removeTranslator(translator)
    _translators.clear()
    current = "en"
    if lang == "en":
        return True
    qm = qm_file(lang)
    ours = QTranslator(app)
    if qm is None or not ours.load(str(qm)):
        return False
    qt_dir = qt_translations_dir()
    qt_own = QTranslator(app)
    if qt_dir is not None and qt_own.load(f"qtbase_{lang}", str(qt_dir)):
        _translators.append(qt_own)
    _translators.append(ours)
    for translator in _translators:
        app.installTranslator(translator)
    current = lang
    return True
