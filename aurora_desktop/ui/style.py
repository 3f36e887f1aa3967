"""Look and feel: Fusion, the system's light or dark palette, a CJK-capable font, chat bubbles."""

from __future__ import annotations

from PySide6.QtGui import QFont, QFontDatabase, QGuiApplication, QPalette
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Micro Hei", "Microsoft YaHei",
                "PingFang SC", "Hiragino Sans GB")


def cjk_family() -> str | None:
    """The first installed font family that has Chinese glyphs."""
    families = set(QFontDatabase.families())
    for name in CJK_FAMILIES:
        if name in families:
            return name
    for name in QFontDatabase.families(QFontDatabase.WritingSystem.SimplifiedChinese):
        return name
    return None


def is_dark(app: QApplication) -> bool:
    scheme = QGuiApplication.styleHints().colorScheme()
    if scheme != Qt.ColorScheme.Unknown:
        return scheme == Qt.ColorScheme.Dark
    return app.palette().window().color().lightness() < 128


def apply_style(app: QApplication, dark: bool | None = None) -> None:
    app.setStyle("Fusion")
    dark = is_dark(app) if dark is None else dark
    palette = QPalette() if dark else app.style().standardPalette()
    if dark:
        for role, color in ((QPalette.ColorRole.Window, "#1f2227"), (QPalette.ColorRole.WindowText, "#e6e6e6"),
                            (QPalette.ColorRole.Base, "#17191d"), (QPalette.ColorRole.AlternateBase, "#262a30"),
                            (QPalette.ColorRole.Text, "#e6e6e6"), (QPalette.ColorRole.Button, "#2b2f36"),
                            (QPalette.ColorRole.ButtonText, "#e6e6e6"), (QPalette.ColorRole.Highlight, "#3b82f6"),
                            (QPalette.ColorRole.HighlightedText, "#ffffff"), (QPalette.ColorRole.Link, "#7ab7ff"),
                            (QPalette.ColorRole.PlaceholderText, "#8a8f98"), (QPalette.ColorRole.ToolTipBase, "#2b2f36"),
                            (QPalette.ColorRole.ToolTipText, "#e6e6e6")):
            palette.setColor(role, color)
        for role in (QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText, QPalette.ColorRole.Text):
            palette.setColor(QPalette.ColorGroup.Disabled, role, "#6b7079")
    app.setPalette(palette)
    family = cjk_family()
    font = QFont(family) if family else app.font()
    font.setPointSize(11)
    app.setFont(font)
    app.setProperty("aurora_cjk_font", family or "")
    user_bg, bot_bg, border = ("#24364f", "#262a30", "#33373f") if dark else ("#e8f0fe", "#ffffff", "#dde1e6")
    chat_bg = "#17191d" if dark else "#f4f5f7"
    muted, good = ("#8a8f98", "#4ade80") if dark else ("#6b7079", "#15803d")
    app.setStyleSheet(f"""
        #chatInner {{ background: {chat_bg}; }}
        QFrame#userBubble {{ background: {user_bg}; border: 1px solid {border}; border-radius: 10px; }}
        QFrame#assistantBubble {{ background: {bot_bg}; border: 1px solid {border}; border-radius: 10px; }}
        QFrame#userBubble QTextBrowser, QFrame#assistantBubble QTextBrowser {{ background: transparent; }}
        QLabel#who {{ font-weight: bold; }}
        QLabel#status {{ color: #d97706; }}
        QLabel#chatTitle {{ font-size: 14pt; font-weight: bold; }}
        QLabel#welcomeTitle {{ font-size: 24pt; font-weight: bold; }}
        QLabel#welcomeHeading {{ font-size: 12pt; font-weight: bold; margin-top: 14px; }}
        QLabel#welcomeColumn {{ color: {muted}; }}
        QLabel#welcomeBest {{ font-weight: bold; color: {good}; }}
        QLabel#welcomeNoFit {{ color: {muted}; }}
        QPushButton#welcomeOpen {{ padding: 6px 18px; font-weight: bold; }}
        QLabel#notice {{ background: #fff4e5; color: #7a4b00; border-radius: 6px; padding: 6px 10px; margin: 0 12px; }}
    """)
    app.setProperty("aurora_dark", dark)
