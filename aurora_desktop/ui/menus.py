"""The window's actions and menus: one table of what each does, its shortcut and its text."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu

from .composer import SEND_CTRL_ENTER, SEND_ENTER
from .i18n import tr

SEPARATOR = None
FILE_MENU = ("open", "recent", "remote", "close_model", SEPARATOR, "serve", "knowledge", SEPARATOR, "new", "new_folder", SEPARATOR, "import", "export_md",
             "export_json", "export_folder", "export_all", SEPARATOR, "delete_all", SEPARATOR, "quit")
CHAT_MENU = ("search", "stop", "regenerate", "settings")
CHECKABLE = ("serve",)
VIEW_MENU = ("lang_zh", "lang_en", SEPARATOR, "send_enter", "send_ctrl")


def action_table(w) -> dict[str, tuple]:
    """key -> (slot, shortcut or None, text): the text is a function, so a language change re-reads it."""
    return {
        "open": (w.choose_model, QKeySequence.StandardKey.Open, lambda: tr("Open model…")),
        "remote": (w.choose_remote, None, lambda: tr("Use a model on a server…")),
        "close_model": (w.close_model, None, lambda: tr("Close model")),
        "serve": (lambda on: w.serve.set_on(on), None, lambda: tr("Serve to other programs")),
        "knowledge": (w.manage_knowledge_bases, None, lambda: tr("Knowledge bases…")),
        "new": (w.new_chat, QKeySequence.StandardKey.New, lambda: tr("New chat")),
        "new_folder": (lambda: w.sidebar.create_folder(), None, lambda: tr("New folder…")),
        "import": (w.import_chats, None, lambda: tr("Import JSON…")),
        "export_md": (lambda: w.export_chat("md"), None, lambda: tr("Export chat as Markdown…")),
        "export_json": (lambda: w.export_chat("json"), None, lambda: tr("Export chat as JSON…")),
        "export_folder": (lambda: w.export_all(w.sidebar.folder), None, lambda: tr("Export this folder as JSON…")),
        "export_all": (w.export_all, None, lambda: tr("Export all chats as JSON…")),
        "delete_all": (w.delete_all_chats, None, lambda: tr("Delete all chats…")),
        "quit": (w.close, QKeySequence.StandardKey.Quit, lambda: tr("Quit")),
        "search": (w.focus_search, QKeySequence.StandardKey.Find, lambda: tr("Search")),
        "stop": (w.stop, Qt.Key.Key_Escape, lambda: tr("Stop")),
        "regenerate": (w.regenerate_last, QKeySequence("Ctrl+R"), lambda: tr("Regenerate")),
        "settings": (w.edit_chat_settings, None, lambda: tr("Chat settings…")),
        "lang_zh": (lambda: w.set_language("zh_CN"), None, lambda: "简体中文"),
        "lang_en": (lambda: w.set_language("en"), None, lambda: "English"),
        "send_enter": (lambda: w.set_send_key(SEND_ENTER), None, lambda: tr("Enter sends")),
        "send_ctrl": (lambda: w.set_send_key(SEND_CTRL_ENTER), None, lambda: tr("Ctrl+Enter sends")),
    }


def build_menus(w) -> dict[str, QAction]:
    """Create every action on `w` and the File, Chat and View menus; returns the actions by key."""
    actions = {}
    for key, (slot, shortcut, _text) in action_table(w).items():
        action = QAction(w)
        action.triggered.connect(slot)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.setCheckable(key in CHECKABLE)
        w.addAction(action)
        actions[key] = action
    w.file_menu = w.menuBar().addMenu("")
    w.recent_menu = QMenu(w)
    w.recent_menu.aboutToShow.connect(w.fill_recent)
    for menu, keys in ((w.file_menu, FILE_MENU), (None, CHAT_MENU), (None, VIEW_MENU)):
        if menu is None:
            menu = w.menuBar().addMenu("")
            if keys is CHAT_MENU:
                w.chat_menu = menu
            else:
                w.view_menu = menu
        for key in keys:
            if key is SEPARATOR:
                menu.addSeparator()
            elif key == "recent":
                menu.addMenu(w.recent_menu)
            else:
                menu.addAction(actions[key])
    return actions


def retranslate_menus(w) -> None:
    for key, (_slot, _shortcut, text) in action_table(w).items():
        w._action_keys[key].setText(text())
    w.file_menu.setTitle(tr("&File"))
    w.recent_menu.setTitle(tr("Recent models"))
    w.chat_menu.setTitle(tr("&Chat"))
    w.view_menu.setTitle(tr("&View"))
