"""The desktop window on a real Qt event loop (offscreen) with the real engine on a tiny-kit GGUF."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("PySide6")
import llama_cpp  # noqa: E402,F401  -- before Qt, as the app does

from PySide6.QtCore import QSettings, Qt  # noqa: E402
from PySide6.QtGui import QInputMethodEvent  # noqa: E402
from PySide6.QtWidgets import QMessageBox  # noqa: E402

from aurora_desktop.engine import EngineConfig  # noqa: E402
from aurora_desktop.store import Store  # noqa: E402
from aurora_desktop.ui import i18n  # noqa: E402
from aurora_desktop.ui.composer import SEND_CTRL_ENTER, Composer  # noqa: E402
from aurora_desktop.ui.main_window import MainWindow  # noqa: E402

LONG = {"temperature": 0.0, "top_p": 1.0, "max_tokens": 4000, "context_policy": "drop_oldest"}


@pytest.fixture
def dialogs(monkeypatch):
    """Message boxes recorded instead of shown (a modal box would wait for a person)."""
    shown = []
    for name in ("warning", "information"):
        monkeypatch.setattr(QMessageBox, name, lambda parent, title, text, *a, _n=name: shown.append((title, text)))
    return shown


@pytest.fixture
def window(qtbot, tmp_path, exported, dialogs):
    i18n.set_language("en")
    w = MainWindow(Store(tmp_path / "chats.sqlite"), QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    w.show()
    w.load_model(str(exported["f16"]), EngineConfig(n_ctx=2048, n_threads=2, n_batch=16))
    qtbot.waitUntil(lambda: w.engine is not None, timeout=60000)
    yield w
    w.close()
    w.store.close()


def send(qtbot, w, text, wait=True):
    w.composer.setPlainText(text)
    w.composer.submit()
    if wait:
        qtbot.waitUntil(lambda: w.streaming is None, timeout=60000)


def test_send_streams_and_stores_the_answer(qtbot, window):
    send(qtbot, window, "你好")
    branch = window.store.branch(window.conv_id)
    assert [(m.role, m.status) for m in branch] == [("user", "done"), ("assistant", "done")]
    assert branch[1].content and window.view.widgets[-1].view.markdown_source() == branch[1].content
    assert window.composer.toPlainText() == ""
    assert "tokens/s" in window.speed_label.text() and "/ 2,048" in window.ctx_label.text()
    assert window.store.conversation(window.conv_id).title == "你好"


def test_stop_keeps_what_was_written(qtbot, window):
    window.store.set_settings(window.store.create("x"), LONG)
    window.open_chat(window.store.conversations()[0].id)
    pieces = []
    send(qtbot, window, "写一个很长的故事", wait=False)
    window.streaming.thread.piece.connect(lambda p: (pieces.append(p), len(pieces) == 5 and window.stop()))
    qtbot.waitUntil(lambda: window.streaming is None, timeout=60000)
    answer = window.store.branch(window.conv_id)[-1]
    assert answer.status == "stopped" and 0 < len(answer.content)
    assert window.last_gen.completion_tokens < 4000


def test_stop_during_prompt_evaluation(qtbot, window):
    chat = window.store.create("long")
    window.store.set_settings(chat, LONG)
    window.open_chat(chat)
    evaluated = []
    real_eval = window.engine.llm.eval

    def slow_eval(tokens):  # stop arrives while the prompt is being read (between n_batch steps)
        evaluated.append(len(tokens))
        real_eval(tokens)
        if len(evaluated) == 2:
            window.stop()

    window.engine.llm.eval = slow_eval
    try:
        send(qtbot, window, "很长的问题。" * 80)
    finally:
        window.engine.llm.eval = real_eval
    assert window.last_gen.stop_reason == "cancelled" and window.last_gen.completion_tokens == 0
    assert evaluated == [16, 16]  # the rest of the prompt was never evaluated
    assert window.store.branch(window.conv_id)[-1].status == "stopped"


def test_regenerate_and_edit_keep_branches(qtbot, window):
    send(qtbot, window, "第一个问题")
    send(qtbot, window, "第二个问题")
    first_answer = window.store.branch(window.conv_id)[-1]
    window.regenerate(first_answer.id)
    qtbot.waitUntil(lambda: window.streaming is None, timeout=60000)
    last = window.view.widgets[-1]
    assert (last.row.version, last.row.versions) == (2, 2) and last.versions.text() == "2/2"
    window.flip(last.row.id, -1)
    assert window.store.branch(window.conv_id)[-1].id == first_answer.id
    question_two = window.store.branch(window.conv_id)[2]
    window.edit_message(question_two.id, "第二个问题（改）")
    qtbot.waitUntil(lambda: window.streaming is None, timeout=60000)
    branch = window.store.branch(window.conv_id)
    assert [m.content for m in branch[:3]] == ["第一个问题", branch[1].content, "第二个问题（改）"]
    assert (branch[2].version, branch[2].versions) == (2, 2)
    window.flip(branch[2].id, -1)  # back to the original question: its answers are all still there
    assert window.store.branch(window.conv_id)[2].content == "第二个问题"
    assert len(window.store.siblings(first_answer.id)) == 2


def test_switching_chats_during_generation(qtbot, window):
    chat = window.store.create("A")
    window.store.set_settings(chat, {**LONG, "max_tokens": 300})
    window.open_chat(chat)
    send(qtbot, window, "讲一个故事", wait=False)
    window.new_chat()  # switch away while the answer streams
    other = window.conv_id
    qtbot.waitUntil(lambda: window.streaming is None, timeout=60000)
    assert window.store.branch(other) == [] and window.view.widgets == []
    answer = window.store.branch(chat)[-1]
    assert answer.status == "done" and answer.content
    window.open_chat(chat)
    assert window.view.widgets[-1].view.markdown_source() == answer.content


def test_search_finds_chats_and_opens_them(qtbot, window):
    a = window.store.import_json({"title": "专家", "messages": [{"role": "user", "content": "混合专家模型是什么？"},
                                                               {"role": "assistant", "content": "一种稀疏模型。"}]})[0]
    window.store.import_json({"title": "别的", "messages": [{"role": "user", "content": "天气"},
                                                           {"role": "assistant", "content": "晴"}]})
    window.search.setText("专家")
    assert window.chat_model.rowCount() == 1
    index = window.chat_model.index(0, 0)
    window.chat_list.clicked.emit(index)
    assert window.conv_id == a and "专家" in window.chat_title.text()
    window.search.setText("")
    assert window.chat_model.rowCount() == 2


def test_export_import_round_trip(qtbot, window, tmp_path):
    send(qtbot, window, "你好")
    window.write_export(tmp_path / "one.json", [window.conv_id], "json")
    window.write_export(tmp_path / "one.md", [window.conv_id], "md")
    data = json.loads((tmp_path / "one.json").read_text())
    assert [m["role"] for m in data["messages"]] == ["user", "assistant"]
    assert "## Aurora" in (tmp_path / "one.md").read_text()
    window.import_chats(str(tmp_path / "one.json"))
    qtbot.waitUntil(lambda: window.importer is None)
    assert window.store.export_json(window.conv_id) == data and len(window.store.conversations()) == 2


def test_delete_with_undo(qtbot, window):
    send(qtbot, window, "保留我")
    conv = window.conv_id
    window.delete_chat(conv)
    assert window.store.conversations() == [] and window.undo_button.isVisible()
    window.undo_delete()
    assert [c.id for c in window.store.conversations()] == [conv] and window.conv_id == conv


def test_bad_model_file_leaves_the_app_as_it_was(qtbot, window, tmp_path, dialogs):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 10)
    engine = window.engine
    window.open_model(str(bad), ask=False)  # checked in the loading thread: the window goes on meanwhile
    qtbot.waitUntil(lambda: bool(dialogs), timeout=30000)
    assert dialogs[-1][0] == "Cannot open this model" and "bad.gguf" in dialogs[-1][1]
    assert window.engine is engine
    send(qtbot, window, "还能用吗")
    assert window.store.branch(window.conv_id)[-1].status == "done"


def test_context_policy_notice_and_stop_policy(qtbot, window, dialogs):
    chat = window.store.create("long")
    window.store.set_settings(chat, {"temperature": 0.0, "max_tokens": 64, "context_policy": "drop_oldest"})
    parent = None
    for i in range(40):
        parent = window.store.add(chat, parent, "user" if i % 2 == 0 else "assistant",
                                  f"第{i}条消息，内容比较长，用来填满上下文窗口。" * 6)
    window.open_chat(chat)
    send(qtbot, window, "最后的问题")
    assert window.last_gen.dropped_turns >= 2
    assert window.notice.isVisible() and "oldest" in window.notice.text() and "system prompt was kept" in window.notice.text()
    window.store.set_settings(chat, {"temperature": 0.0, "max_tokens": 64, "context_policy": "stop"})
    send(qtbot, window, "再问一个")
    assert dialogs and "beyond the context" in dialogs[-1][1]
    assert window.store.branch(chat)[-1].status == "error"


def test_language_switch_is_live(qtbot, window):
    assert i18n.set_language("zh_CN")
    qtbot.waitUntil(lambda: window.new_button.text() == "新对话")  # LanguageChange is a posted event
    assert window.send_button.text() == "发送" and window.file_menu.title() == "文件(&F)"
    assert window.composer.placeholderText() == "输入消息。回车发送，Shift+回车换行。"
    assert i18n.set_language("en")
    qtbot.waitUntil(lambda: window.new_button.text() == "New chat")


def test_enter_while_an_input_method_composes_does_not_send(qtbot):
    composer = Composer()
    qtbot.addWidget(composer)
    composer.show()
    sent = []
    composer.submitted.connect(sent.append)
    composer.setFocus()
    composer.inputMethodEvent(QInputMethodEvent("ni hao", []))  # pinyin shown, not yet committed
    assert composer.composing
    qtbot.keyClick(composer, Qt.Key.Key_Return)
    assert sent == []
    commit = QInputMethodEvent("", [])
    commit.setCommitString("你好")
    composer.inputMethodEvent(commit)
    assert not composer.composing and composer.toPlainText() == "你好"
    qtbot.keyClick(composer, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    assert sent == [] and composer.toPlainText() == "你好\n"
    qtbot.keyClick(composer, Qt.Key.Key_Return)
    assert sent == ["你好"]
    composer.send_key = SEND_CTRL_ENTER
    qtbot.keyClick(composer, Qt.Key.Key_Return)
    assert sent == ["你好"]
    qtbot.keyClick(composer, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert len(sent) == 2


def test_paste_of_large_text(qtbot):
    composer = Composer()
    qtbot.addWidget(composer)
    composer.insertPlainText("长文本。" * 50000)
    assert len(composer.toPlainText()) == 200000


def test_sigkill_mid_answer_loses_nothing(exported, tmp_path):
    """The app is killed with SIGKILL while an answer streams, after several finished ones."""
    import os
    import signal
    import sqlite3
    import subprocess
    import sys
    import time
    from pathlib import Path

    db = tmp_path / "chats.sqlite"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("desktop_driver.py")),
                             str(exported["f16"]), str(db)], stdout=subprocess.PIPE, text=True, env=env)
    import threading

    finished: list[dict] = []
    reader = threading.Thread(target=lambda: finished.extend(json.loads(x) for x in proc.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            time.sleep(0.02)
            if proc.poll() is not None:
                raise AssertionError(f"the app exited with {proc.returncode} before the kill")
            if len(finished) >= 3 and db.exists():
                ro = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
                streaming = ro.execute("SELECT id, content FROM messages WHERE status = 'streaming' "
                                       "AND length(content) > 0").fetchall()
                ro.close()
                if streaming:
                    break
        else:
            raise AssertionError("no answer was streaming with saved text in time")
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        reader.join(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    raw = sqlite3.connect(db)
    assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = {i: (c, s) for i, c, s in raw.execute("SELECT id, content, status FROM messages WHERE role = 'assistant'")}
    partial = [i for i, (c, s) in stored.items() if s == "streaming"]
    raw.close()
    for answer in finished:  # every finished answer, exactly as the app showed it
        assert stored[answer["id"]] == (answer["content"], "done")
    assert len(partial) == 1 and stored[partial[0]][0]  # the streamed part of the one being written
    reopened = Store(db)
    conv = reopened.conversations()[0].id
    last = reopened.branch(conv)[-1]
    assert (last.id, last.status, last.content) == (partial[0], "interrupted", stored[partial[0]][0])
    reopened.close()


SOAK = """
import sys
import llama_cpp
from PySide6.QtWidgets import QApplication, QLabel
from aurora_desktop.ui.markdown_view import MarkdownView
app = QApplication([])
label, view = QLabel(), MarkdownView()
before = sys.getrefcount(None)
text = ""
for i in range(30000):  # what a day of streaming does: tens of thousands of void Qt calls
    label.setText(str(i))
    label.setObjectName("x")
    if i % 10 == 0:
        text += f"第{i}个词 "
        view.set_markdown_streaming(text[-400:] if i % 1000 == 0 else text)
    if i % 100 == 0:
        app.processEvents()
print(before - sys.getrefcount(None))
"""


def test_soak_the_installed_pyside6_does_not_leak_none():
    """PySide6 6.12.0 on Python 3.11 loses a reference to None per void call and dies (none_dealloc)."""
    import os
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", SOAK], capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert abs(int(result.stdout.strip().splitlines()[-1])) < 1000  # not one per call


def test_streaming_render_equals_the_final_render_and_finds_code(qtbot):
    """The incremental view shows the same text as a full render, and its copy links copy the code."""
    from PySide6.QtWidgets import QApplication

    from aurora_desktop.markdown_blocks import committed_end
    from aurora_desktop.ui.markdown_view import MarkdownView

    answer = ("## 标题\n\n第一段文字。\n\n```python\nprint('你好')\n\nx = 1\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
              "- 列表一\n- 列表二\n\n最后一段" + "很长" * 1000)
    streaming, final = MarkdownView(), MarkdownView()
    qtbot.addWidget(streaming)
    qtbot.addWidget(final)
    for i in range(1, len(answer) + 1, 7):
        streaming.set_markdown_streaming(answer[:i])
    streaming.set_markdown_streaming(answer)
    final.set_markdown_final(answer)
    assert streaming.toPlainText().split() == final.toPlainText().split()
    assert committed_end(answer) > 0 and committed_end("```\nopen fence\n\nstill code\n") == 0
    copied = []
    final.copied.connect(copied.append)
    from PySide6.QtCore import QUrl

    final.anchorClicked.emit(QUrl("copy:0"))
    assert copied == ["print('你好')\n\nx = 1"] and QApplication.clipboard().text() == copied[0]


def test_chinese_text_has_glyphs_in_the_window_font(qtbot):
    """A CJK font is installed (./run setup installs fonts-noto-cjk) and the style picks it."""
    from PySide6.QtGui import QFontMetrics
    from PySide6.QtWidgets import QApplication

    from aurora_desktop.ui.style import apply_style, cjk_family

    app = QApplication.instance()
    apply_style(app, dark=False)
    family = cjk_family()
    assert family, "no CJK font installed: sudo apt-get install fonts-noto-cjk"
    metrics = QFontMetrics(app.font())
    assert app.font().family() == family
    assert all(metrics.inFontUcs4(ord(c)) for c in "你好，世界。混合专家模型")


def test_every_interface_string_has_a_chinese_translation():
    """Each tr("...") or self.tr("...") literal in the window's code has a translation in aurora_zh_CN.ts."""
    import ast
    import xml.etree.ElementTree as ET
    from pathlib import Path

    ui = Path(i18n.__file__).parent
    ts = ET.parse(ui / "translations" / "aurora_zh_CN.ts").getroot()
    translated = {m.findtext("source"): m.findtext("translation") for m in ts.iter("message")}
    used = {n.args[0].value for p in ui.glob("*.py") for n in ast.walk(ast.parse(p.read_text()))
            if isinstance(n, ast.Call) and "tr" in (getattr(n.func, "id", None), getattr(n.func, "attr", None))
            and n.args
            and isinstance(n.args[0], ast.Constant)}
    from aurora_desktop.model_fit import MIXTRAL_TYPES
    from aurora_desktop.ui.welcome import FIT_COLUMNS

    used |= {t.quality for t in MIXTRAL_TYPES} | {c for c in FIT_COLUMNS if c}  # passed to tr() as values
    assert len(used) > 80
    assert sorted(s for s in used if not translated.get(s)) == []


def test_light_and_dark_follow_the_system(qtbot, window):
    """A change of the system's colour scheme restyles the window (and back)."""
    from PySide6.QtWidgets import QApplication

    from aurora_desktop.ui.style import apply_style

    app = QApplication.instance()
    apply_style(app, dark=True)
    assert app.property("aurora_dark") and app.palette().window().color().lightness() < 128
    window.follow_color_scheme()  # what the styleHints().colorSchemeChanged signal calls
    assert window.dark == bool(app.property("aurora_dark"))
    apply_style(app, dark=False)
    assert app.palette().window().color().lightness() > 128


@pytest.fixture
def bare_window(qtbot, tmp_path, dialogs):
    """The window as the installed app opens it from the menu: no model."""
    i18n.set_language("en")
    w = MainWindow(Store(tmp_path / "chats.sqlite"), QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    w.show()
    yield w
    w.close()
    w.store.close()


def test_first_screen_while_no_model_is_loaded(qtbot, bare_window, exported, monkeypatch):
    from PySide6.QtWidgets import QFileDialog, QLabel, QPushButton

    w = bare_window
    assert w.pages.currentWidget() is w.welcome and not w._action_keys["close_model"].isEnabled()
    texts = [label.text() for label in w.welcome.findChildren(QLabel)]
    assert any("Offline Chinese chat" in t for t in texts) and any("aurora-export gguf" in t for t in texts)
    assert any(t.startswith("This computer has") for t in texts)
    assert all(name in texts for name in ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q3_K_M", "Q2_K"))
    asked = []
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (asked.append(a), ("", ""))[1])
    qtbot.mouseClick(w.welcome.open_button, Qt.MouseButton.LeftButton)
    assert len(asked) == 1  # the button opens the file dialog
    # a recent model is one click away
    w.settings.setValue("recent_models", [str(exported["f16"])])
    w.update_first_screen()
    opened = []
    monkeypatch.setattr(w, "open_model", lambda path, ask=True: opened.append(path))
    w.welcome.open_path.disconnect()
    w.welcome.open_path.connect(w.open_model)
    [recent] = [b for b in w.welcome.findChildren(QPushButton) if b.objectName() == "welcomeRecent"]
    assert recent.text() == exported["f16"].name
    qtbot.mouseClick(recent, Qt.MouseButton.LeftButton)
    assert opened == [str(exported["f16"])]
    # Chinese
    assert i18n.set_language("zh_CN")
    qtbot.waitUntil(lambda: w.welcome.open_button.text() == "打开模型文件…")  # LanguageChange is an event
    try:
        assert "哪个模型文件适合这台电脑" in [label.text() for label in w.welcome.findChildren(QLabel)]
    finally:
        i18n.set_language("en")


def test_first_screen_goes_when_a_model_loads_and_comes_back_when_it_is_closed(qtbot, bare_window, exported):
    w = bare_window
    w.load_model(str(exported["f16"]), EngineConfig(n_ctx=1024, n_threads=2))
    qtbot.waitUntil(lambda: w.engine is not None, timeout=60000)
    assert w.pages.currentWidget() is w.view and w._action_keys["close_model"].isEnabled()
    w._action_keys["close_model"].trigger()
    assert w.engine is None and w.pages.currentWidget() is w.welcome
    assert w.model_label.text() == "No model"
    w.new_chat()  # reading or starting a chat without a model shows the chat
    assert w.pages.currentWidget() is w.view


def test_view_menu_language_is_kept_in_the_settings(qtbot, bare_window):
    bare_window._action_keys["lang_zh"].trigger()
    qtbot.waitUntil(lambda: bare_window.file_menu.title() == "文件(&F)")
    assert bare_window.settings.value("language") == "zh_CN"
    bare_window._action_keys["lang_en"].trigger()
    assert bare_window.settings.value("language") == "en"


def test_which_mixtral_file_fits():
    from aurora_desktop.model_fit import GiB, mixtral_fits, recommended

    def best(gib, n_ctx=4096):
        fit = recommended(mixtral_fits(n_ctx, memory=gib * GiB))
        return fit.type.name if fit else None

    assert best(32) == "Q4_K_M"  # the README's rule: Q4_K_M + KV cache needs a 32 GB computer
    assert best(24) == "Q3_K_M" and best(16) is None and best(64) == "Q8_0" and best(48) == "Q6_K"
    q4 = next(f for f in mixtral_fits(4096, memory=32 * GiB) if f.type.name == "Q4_K_M")
    assert q4.need_bytes - q4.type.file_bytes == 32 * 2 * 8 * 128 * 4096 * 2  # Mixtral's f16 KV cache: 0.5 GiB
    assert best(32, n_ctx=32768) == "Q3_K_M"  # a long context leaves less room for weights


def test_a_deleted_chat_is_gone_from_every_file_after_the_window_closes(qtbot, tmp_path, dialogs):
    """Delete means deleted: after the undo window (at the latest when the program closes) the chat's text is
    in none of chats.sqlite, -wal, -shm, nor anywhere under the data folder."""
    secret = "机密口令-7f3a9c-SECRET-PASSPHRASE"
    data = tmp_path / "data"
    store = Store(data / "chats.sqlite")
    w = MainWindow(store, QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    w.show()
    kept = store.import_json({"title": "留下", "messages": [{"role": "user", "content": "你好"},
                                                            {"role": "assistant", "content": "你好！"}]})[0]
    gone = store.import_json({"title": secret, "messages": [{"role": "user", "content": f"记住 {secret}"},
                                                            {"role": "assistant", "content": f"好的：{secret}"}]})[0]
    assert store.search(secret[:9])  # it was in the full-text index
    w.delete_chat(gone)
    assert store.exists(gone)  # still undoable
    w.close()
    store.close()

    def found() -> list[str]:
        needles = (secret.encode("utf-8"), "7f3a9c".encode("utf-16-le"))
        return [str(p) for p in data.rglob("*") if p.is_file() and any(n in p.read_bytes() for n in needles)]

    assert found() == []
    reopened = Store(data / "chats.sqlite")
    assert [c.id for c in reopened.conversations()] == [kept] and not reopened.exists(gone)
    assert reopened.search(secret[:9]) == [] and reopened.branch(kept)[1].content == "你好！"
    reopened.close()


def test_purge_waits_for_the_undo_window(tmp_path):
    import time

    store = Store(tmp_path / "chats.sqlite")
    a = store.create("a")
    store.delete(a)
    assert store.purge(deleted_before=time.time() - 10) == 0 and store.exists(a)
    store.undelete(a)
    store.delete(a)
    assert store.purge() == 1 and not store.exists(a)
    store.close()


# ---------------------------------------------------------------- hostile input in the window


def test_import_runs_apart_is_all_or_nothing_and_says_why(qtbot, bare_window, dialogs, tmp_path):
    from PySide6.QtCore import QTimer

    w = bare_window
    chat = {"title": "好", "messages": [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "你好！"}]}
    cases = {"deep.json": "[" * 100_000 + "]" * 100_000,
             "second-breaks.json": json.dumps([chat, {"messages": [{"role": "assistant", "content": "x"}]}]),
             "gbk.json": None}
    (tmp_path / "gbk.json").write_bytes(json.dumps(chat, ensure_ascii=False).encode("gbk"))
    for name, text in cases.items():
        if text is not None:
            (tmp_path / name).write_text(text)
        w.import_chats(str(tmp_path / name))
        qtbot.waitUntil(lambda: w.importer is None, timeout=60000)
        title, message = dialogs[-1]
        assert title == "Import failed" and message.startswith(str(tmp_path / name)) and "\n" not in message
    assert w.store.conversations() == []  # not the first chat of second-breaks.json either
    many = tmp_path / "many.json"
    many.write_text(json.dumps([dict(chat, title=f"第{i}个") for i in range(3000)], ensure_ascii=False))
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(w.importer is not None))
    timer.start(10)
    w.import_chats(str(many))
    qtbot.waitUntil(lambda: w.importer is None, timeout=60000)
    timer.stop()
    assert sum(ticks) >= 5  # the window went on handling events while the import ran
    assert len(w.store.conversations()) == 3000 and w.conv_id == w.store.conversations()[0].id


def test_a_model_name_is_plain_text_and_short(qtbot, bare_window, exported, tmp_path):
    import gguf
    from hostile.gguf_forge import rewrite

    name = "<h1 style='font-size:90px'>大标题</h1>" + "名" * (5 << 20)
    model = rewrite(exported["f16"], tmp_path / "named.gguf", {"general.name": (name, gguf.GGUFValueType.STRING)})
    w = bare_window
    w.load_model(str(model), EngineConfig(n_ctx=512, n_threads=2))
    qtbot.waitUntil(lambda: w.engine is not None, timeout=60000)
    w.update_status()
    shown = w.model_label.text()
    assert w.model_label.textFormat() == Qt.TextFormat.PlainText
    assert shown.startswith("<h1 style=") and shown.endswith("…") and len(shown) == 120


def test_folders_and_delete_all_in_the_window(qtbot, window, tmp_path):
    store = window.store
    folder = window.sidebar.create_folder("工作")
    store.update_folder(folder, system="用一句话回答。", settings={"max_tokens": 6, "temperature": 0.0})
    window.new_chat()
    assert store.conversation(window.conv_id).folder_id == folder  # new chats go into the folder shown
    send(qtbot, window, "你好")
    assert window.session.conversation.system == "用一句话回答。" and window.last_gen.completion_tokens <= 6
    assert [window.chat_model.index(i).data() for i in range(window.chat_model.rowCount())] == ["你好"]
    window.sidebar.delete_folder(folder, with_chats=False)
    assert store.conversation(window.conv_id).folder_id is None and store.folders() == []
    window.delete_all_chats(confirmed=True)
    assert store.conversations() == [] and window.conv_id is None and window.view.widgets == []
    assert store.search("你好") == []
