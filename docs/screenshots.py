"""Screenshots of the main window, in Chinese, light and dark, under a virtual X screen.

    xvfb-run -a -s "-screen 0 1280x860x24" python docs/screenshots.py      (writes docs/main-window-zh-*.png)
    xvfb-run -a -s "-screen 0 1280x860x24" python docs/screenshots.py --serve   (docs/serve-switch-zh.png)
    xvfb-run -a -s "-screen 0 1280x860x24" python docs/screenshots.py --kb      (docs/kb-answer-sources-zh.png)

A real window on Qt's xcb platform, grabbed from the screen. The conversations are imported (a tiny
demo model cannot write them) and sorted into two folders; the model loaded is a tiny-kit GGUF, so the
status bar is real.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import llama_cpp  # noqa: F401  -- before Qt

HERE = Path(__file__).parent

CHAT = {"title": "用 Python 计算斐波那契数列", "messages": [
    {"role": "system", "content": "你是一个乐于助人的中文助手。"},
    {"role": "user", "content": "请用 Python 写一个计算斐波那契数列的函数。"},
    {"role": "assistant", "content": "好的，下面是一个迭代版本，时间复杂度为 O(n)：\n\n```python\ndef fib(n: int) -> int:\n"
                                      "    \"\"\"返回第 n 个斐波那契数。\"\"\"\n    a, b = 0, 1\n    for _ in range(n):\n"
                                      "        a, b = b, a + b\n    return a\n```\n\n例如 `fib(10)` 返回 55。"},
    {"role": "user", "content": "不同的 GGUF 量化各有多大？"},
    {"role": "assistant", "content": "以 Mixtral-8x7B 为例（数值来自 llama.cpp 的公开测量）：\n\n"
                                      "| 量化 | 文件大小 | 困惑度 (wikitext) |\n|---|---:|---:|\n"
                                      "| F16 | 93 GB | 4.409 |\n| Q8_0 | 49.6 GB | 4.409 |\n"
                                      "| Q4_K_M | 26.4 GB | 4.511 |\n\n"
                                      "- **Q8_0**：几乎无损，需要约 50 GB 内存；\n"
                                      "- **Q4_K_M**：体积约为一半，适合 32 GB 内存的电脑。"},
]}
OTHER = [("长城的历史", "长城是什么时候修建的？", "长城始建于春秋战国时期，秦朝将其连接成万里长城。"),
         ("周末去哪儿玩", "北京周末适合带孩子去哪里？", "可以去科技馆、颐和园或者奥林匹克森林公园。"),
         ("翻译一句话", "把“温故而知新”翻译成英文。", "Review the old to learn the new.")]


def main() -> int:
    from PySide6.QtWidgets import QApplication

    from aurora_desktop.store import Store
    from aurora_desktop.ui import i18n
    from aurora_desktop.ui.style import apply_style

    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    gguf = Path(args[0]) if args else _tiny_gguf()
    app = QApplication([])
    i18n.set_language("zh_CN")
    if "--serve" in sys.argv:
        return _serve_switch(app, gguf)
    if "--kb" in sys.argv:
        return _kb_answer(app, gguf)
    for theme in ("light", "dark"):
        apply_style(app, dark=theme == "dark")
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(Path(tmp) / "chats.sqlite")
            for title, q, a in OTHER:
                store.import_json({"title": title, "messages": [{"role": "user", "content": q},
                                                                {"role": "assistant", "content": a}]})
            code = store.import_json(CHAT)[0]
            study, life = store.create_folder("编程学习", system="你是一位耐心的编程老师。"), store.create_folder("生活")
            chats = {c.title: c.id for c in store.conversations()}
            store.move(code, study)
            store.move(chats["翻译一句话"], study)
            store.move(chats["周末去哪儿玩"], life)
            window = _window(app, store, Path(tmp), gguf, (1280, 860), n_ctx=4096)
            window.sidebar.show_folder(study)
            window.sidebar.folder_view.setCurrentIndex(window.sidebar.folder_model.index(
                window.sidebar.folder_model.row_of(study), 0))
            window.open_chat(code)
            window.composer.setPlainText("再写一个递归版本，并解释它的缺点。")
            for _ in range(20):
                app.processEvents()
            _shoot_later(app, window, HERE / f"main-window-zh-{theme}.png", (1280, 860))
            window.close()
            store.close()
    return 0


def _window(app, store, tmp: Path, gguf: Path, size: tuple[int, int], n_ctx: int):
    """The real window at the screen's top left with the model loaded (waits for the loader thread)."""
    from PySide6.QtCore import QSettings

    from aurora_desktop.engine import EngineConfig
    from aurora_desktop.ui.main_window import MainWindow

    window = MainWindow(store, QSettings(str(tmp / "s.ini"), QSettings.Format.IniFormat))
    window.resize(*size)
    window.move(0, 0)
    window.show()
    window.load_model(str(gguf), EngineConfig(n_ctx=n_ctx, n_threads=2))
    while window.engine is None:
        app.processEvents()
    return window


def _shoot_later(app, window, out: Path, size: tuple[int, int]) -> None:
    """Run the event loop until the window has settled, then grab it from the X screen (the widget itself where
    nothing was composited) into `out`."""
    from PySide6.QtCore import QTimer

    def shoot() -> None:
        shot = app.primaryScreen().grabWindow(0).copy(0, 0, *size)
        if shot.toImage().pixelColor(size[0] // 2, size[1] // 2).lightness() == 0:
            shot = window.grab()
        shot.save(str(out))
        app.quit()

    QTimer.singleShot(800, shoot)
    app.exec()
    print(f"wrote {out}")


def _serve_switch(app, gguf: Path) -> int:
    """File → Serve to other programs switched on: the address and the Copy key button in the status bar."""
    from aurora_desktop.store import Store
    from aurora_desktop.ui.style import apply_style

    apply_style(app, dark=False)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["XDG_CONFIG_HOME"] = tmp  # a throwaway API key, not the user's
        store = Store(Path(tmp) / "chats.sqlite")
        window = _window(app, store, Path(tmp), gguf, (1180, 780), n_ctx=1024)
        window._action_keys["serve"].trigger()
        _shoot_later(app, window, HERE / "serve-switch-zh.png", (1180, 780))
        window.serve.stop()
        window.close()
        store.close()
    return 0


def _kb_answer(app, gguf: Path) -> int:
    """An answer from a knowledge base: a 3-page PDF written by Qt, indexed, and the sources under the answer."""
    from PySide6.QtCore import QRect, Qt
    from PySide6.QtGui import QFont, QPageSize, QPainter, QPdfWriter

    from aurora_desktop.kb.index import KnowledgeBase
    from aurora_desktop.store import Store
    from aurora_desktop.ui.style import apply_style

    apply_style(app, dark=False)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["AURORA_KB_DIR"] = str(Path(tmp) / "kb")
        pdf = Path(tmp) / "三页.pdf"
        writer = QPdfWriter(str(pdf))
        writer.setPageSize(QPageSize(QPageSize.PageSizeId.A5))
        painter = QPainter(writer)
        painter.setFont(QFont("Noto Sans CJK SC", 12))
        for n, text in enumerate(["第一页：混合专家模型在每一层有八个专家，每个词元只用其中两个。",
                                  "第二页：大熊猫主要吃竹子，也吃少量水果。", "第三页：长城始建于春秋战国时期。"]):
            if n:
                writer.newPage()
            painter.drawText(QRect(40, 40, 1000, 1400), Qt.TextFlag.TextWordWrap, text)
        painter.end()
        kb = KnowledgeBase.open("资料")
        kb.add([pdf])
        kb.close()
        store = Store(Path(tmp) / "chats.sqlite")
        conv = store.create("", settings={"temperature": 0.0, "max_tokens": 24, "knowledge_base": "资料"})
        window = _window(app, store, Path(tmp), gguf, (1180, 780), n_ctx=2048)
        window.open_chat(conv)
        window.composer.setPlainText("大熊猫吃什么？")
        window.composer.submit()
        while not store.branch(conv) or store.branch(conv)[-1].role != "assistant" or window.session.streaming:
            app.processEvents()
        _shoot_later(app, window, HERE / "kb-answer-sources-zh.png", (1180, 780))
        window.close()
        store.close()
    return 0


def _tiny_gguf() -> Path:
    from aurora_export.pipeline import ExportConfig, export_gguf
    from aurora_training.tiny import TinyBaseConfig, write_tiny_base

    work = Path("bench-output/screenshots")
    gguf = work / "aurora-demo.gguf"
    if not gguf.exists():
        base = write_tiny_base(work / "tiny-base", TinyBaseConfig(), force=True)
        export_gguf(ExportConfig(base, gguf, types="f16", force=True, progress=False))
    return gguf


if __name__ == "__main__":
    sys.exit(main())
