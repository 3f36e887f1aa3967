"""Matplotlib set up for Chinese labels: a CJK-capable font when one is installed, a clear note when not.

Matplotlib's default font (DejaVu Sans) has no CJK glyphs: Chinese category names would be empty boxes.
"""

from __future__ import annotations

import sys

CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN",
             "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Microsoft YaHei", "SimHei", "PingFang SC",
             "Hiragino Sans GB", "Arial Unicode MS")
_noted: list[bool] = []


def pyplot():
    """matplotlib.pyplot on the Agg backend, with a CJK font first in the sans-serif list when available."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    family = cjk_font()
    if family:
        matplotlib.rcParams["font.sans-serif"] = [family] + [
            f for f in matplotlib.rcParams["font.sans-serif"] if f != family]
        matplotlib.rcParams["font.family"] = "sans-serif"
        matplotlib.rcParams["axes.unicode_minus"] = False
    elif not _noted:
        _noted.append(True)
        print("note: no CJK font is installed, so Chinese labels in charts show as boxes; install one "
              "(Debian/Ubuntu: sudo apt-get install fonts-noto-cjk)", file=sys.stderr)
    return plt


def cjk_font() -> str | None:
    """The first installed CJK font matplotlib can use (its font cache may predate the font's install)."""
    from matplotlib import font_manager

    def known() -> str | None:
        installed = {f.name for f in font_manager.fontManager.ttflist}
        return next((name for name in CJK_FONTS if name in installed), None)

    if known() is None:
        for path in font_manager.findSystemFonts():
            if any(k in path.lower() for k in ("cjk", "wqy", "sourcehan", "yahei", "simhei", "pingfang")):
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):
                    continue
    return known()
