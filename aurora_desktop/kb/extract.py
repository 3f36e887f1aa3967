"""Text out of a user's file, honestly: every file ends as text with its page numbers, or as a reason it has none.

    extract(Path("报告.pdf"))  -> Extracted(pages=[(1, "…"), (2, "…")], encoding=None)
    extract(Path("笔记.txt"))  -> Extracted(pages=[(None, "…")], encoding="gb18030")
    extract(Path("扫描.pdf"))  -> raises Unreadable("no text layer (a scanned PDF?): …")

Plain text is UTF-8 (with or without BOM), UTF-16 (BOM) or GB18030 (a superset of GBK and GB2312) — decoded
strictly, and GB18030 only when the result reads as text (mostly CJK, ASCII and punctuation): a file in another
encoding is reported, never indexed as mojibake. PDF through pypdf (pure Python), page by page; DOCX by reading
`word/document.xml` from the zip with a size cap (a zip bomb is refused); HTML through the standard library's
parser, without scripts and styles.
"""

from __future__ import annotations

import codecs
import html.parser
import re
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

MAX_FILE_BYTES = 64 << 20  # bigger files are skipped with this reason (a 200 MB log is not a document)
MAX_DOCX_XML_BYTES = 64 << 20  # the unpacked document.xml of a DOCX (a zip bomb unpacks to gigabytes)
MIN_TEXT_CHARS = 20  # less text than this (after whitespace) is "too little text", reported, not indexed
TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".text", ".csv", ".log", ".rst")
HTML_SUFFIXES = (".html", ".htm", ".xhtml")
SUFFIXES = TEXT_SUFFIXES + HTML_SUFFIXES + (".pdf", ".docx")


class Unreadable(Exception):
    """The file yields no usable text; the message says why (shown in `aurora-kb list` and the window)."""


@dataclass
class Extracted:
    pages: list[tuple[int | None, str]]
    """(page number from 1, or None for formats without pages; the page's text)."""
    encoding: str | None = None

    @property
    def chars(self) -> int:
        return sum(len(text) for _page, text in self.pages)


def extract(path: Path) -> Extracted:
    """The text of `path` by its suffix; `Unreadable` with a reason when there is none to index."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise Unreadable(f"not a supported type ({', '.join(SUFFIXES)})")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise Unreadable(f"larger than {MAX_FILE_BYTES >> 20} MiB ({size / 2**20:,.0f} MiB); split it")
    data = path.read_bytes()
    if suffix == ".pdf":
        result = _pdf(data)
    elif suffix == ".docx":
        result = Extracted([(None, _docx(data))])
    else:
        text, encoding = decode(data)
        result = Extracted([(None, _html(text) if suffix in HTML_SUFFIXES else text)], encoding)
    visible = sum(len("".join(t.split())) for _p, t in result.pages)
    if visible < MIN_TEXT_CHARS:
        raise Unreadable(f"too little text ({visible} characters)" if suffix != ".pdf" else
                         f"no text layer (a scanned PDF?): {visible} characters on {len(result.pages)} pages")
    return result


# ---------------------------------------------------------------- plain text and its encoding

BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def decode(data: bytes) -> tuple[str, str]:
    """(text, encoding) of plain-text bytes; `Unreadable` when the encoding cannot be told."""
    for bom, encoding in BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding), encoding
            except UnicodeDecodeError as exc:
                raise Unreadable(f"starts with a {encoding} mark but is not {encoding} (byte {exc.start})") from None
    if b"\x00" in data[:4096]:
        raise Unreadable("binary data or UTF-16 without a byte-order mark; save it as UTF-8")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        text = None
    if text is not None and reads_as_text(text):
        return text, "gb18030"
    raise Unreadable("the encoding is neither UTF-8, UTF-16 nor GB18030/GBK; save it as UTF-8")


def reads_as_text(text: str) -> bool:
    """Whether text decoded as GB18030 reads as Chinese or Western prose rather than another encoding's bytes: at
    least 95% of its characters are ASCII, CJK ideographs, CJK or full-width punctuation or spaces, and at least 80%
    of its ideographs are among GB2312's 3,755 first-level (common) hanzi, which cover more than 99% of running
    Chinese text. Latin-1 or Shift-JIS bytes read as GB18030 give box drawing, private-use characters and rare
    ideographs (日本語 in Shift-JIS reads as 擔杮岅)."""
    sample = text[:200_000]
    if not sample:
        return True
    common = sum(1 for ch in sample if ch.isascii() or "\u4e00" <= ch <= "\u9fa5" or "\u3000" <= ch <= "\u303f"
                 or "\uff00" <= ch <= "\uffef" or ch in "“”‘’…—·" or unicodedata.category(ch) == "Zs")
    ideographs = [ch for ch in sample if "\u4e00" <= ch <= "\u9fa5"]
    first_level = sum(1 for ch in ideographs if _gb2312_level_one(ch))
    return common / len(sample) >= 0.95 and (not ideographs or first_level / len(ideographs) >= 0.8)


def _gb2312_level_one(ch: str) -> bool:
    try:
        encoded = ch.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return 0xB0 <= encoded[0] <= 0xD7


# ---------------------------------------------------------------- HTML


class _TextOf(html.parser.HTMLParser):
    SKIP = {"script", "style", "noscript", "template", "head"}
    BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "pre", "table"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in self.SKIP and self.skipping:
            self.skipping -= 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self.skipping:
            self.parts.append(data)


def _html(text: str) -> str:
    parser = _TextOf()
    parser.feed(text)
    parser.close()
    return re.sub(r"\n\s*\n+", "\n\n", "".join(parser.parts)).strip()


# ---------------------------------------------------------------- DOCX

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def _docx(data: bytes) -> str:
    import io

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            info = z.getinfo("word/document.xml")
            if info.file_size > MAX_DOCX_XML_BYTES:
                raise Unreadable(f"its document.xml unpacks to {info.file_size / 2**20:,.0f} MiB (a zip bomb?)")
            with z.open(info) as f:
                xml = f.read(MAX_DOCX_XML_BYTES + 1)  # the header's size may lie; the read is capped anyway
    except (zipfile.BadZipFile, KeyError, EOFError, zipfile.LargeZipFile, NotImplementedError, OSError) as exc:
        raise Unreadable(f"not a readable DOCX ({exc})") from None
    if len(xml) > MAX_DOCX_XML_BYTES:
        raise Unreadable(f"its document.xml unpacks to more than {MAX_DOCX_XML_BYTES >> 20} MiB (a zip bomb?)")
    if b"<!DOCTYPE" in xml[:4096] or b"<!ENTITY" in xml:
        raise Unreadable("its document.xml declares entities (refused: an XML bomb?)")
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as exc:
        raise Unreadable(f"its document.xml is not XML ({exc})") from None
    paragraphs = []
    for p in root.iter(f"{W}p"):
        paragraphs.append("".join(t.text or "" for t in p.iter(f"{W}t")))
    return "\n".join(paragraphs)


# ---------------------------------------------------------------- PDF

# PDF writers that map a glyph back to text through the font's cmap (Qt's QPdfWriter among them) often write a CJK
# radical code point for an ideograph whose glyph the font shares with it: 页 comes out as ⻚ (U+2EDA), 二 as ⼆
# (U+2F06). Search for 页 then misses it. The Kangxi radicals (U+2F00-U+2FD5) have NFKC mappings; the CJK radicals
# supplement has none, so its pairs are here: read from Noto Sans CJK SC's cmap (the ideograph that shares each
# radical's glyph; the same as Unicode's EquivalentUnifiedIdeograph.txt for these).
RADICALS_SUPPLEMENT = dict(zip(*[iter(
    "⺂乛⺃乚⺅亻⺉刂⺏尣⺐尢⺒巳⺓幺⺔彑⺕彐⺖忄⺘扌⺙攵⺛旡⺞歺⺟母⺠民⺡氵⺣灬⺤爫⺦丬⺨犭⺭礻⺯糹⺰纟⺱罓⺹耂⺺肀⺾艹⻂衤⻅见"
    "⻆角⻈讠⻉贝⻋车⻌辶⻐钅⻑長⻒镸⻓长⻔门⻖阝⻘青⻙韦⻚页⻛风⻜飞⻝食⻟飠⻠饣⻢马⻣骨⻤鬼⻥鱼⻦鸟⻧卤⻨麦⻩黄⻪黾"
    "⻫斉⻬齐⻮齿⻯竜⻰龙⻱龜⻲亀⻳龟")] * 2))
RADICAL = re.compile("[\u2e80-\u2eff\u2f00-\u2fdf]")


def unradical(text: str) -> str:
    """CJK radicals that stand for ideographs, replaced by the ideographs."""
    return RADICAL.sub(lambda m: RADICALS_SUPPLEMENT.get(m.group()) or unicodedata.normalize("NFKC", m.group()), text)



def _pdf(data: bytes) -> Extracted:
    import io
    import logging

    import pypdf
    from pypdf.errors import FileNotDecryptedError, PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # its warnings about odd files are not the user's business
    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                if not reader.decrypt(""):  # an owner password alone still lets anyone read it
                    raise Unreadable("encrypted with a password; save a copy without one")
            except (NotImplementedError, FileNotDecryptedError):
                raise Unreadable("encrypted in a way that cannot be read here; save a copy without a password") from None
        pages = [(number, re.sub(r"[ \t]+", " ", unradical(page.extract_text() or "")))
                 for number, page in enumerate(reader.pages, 1)]
    except Unreadable:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError,
            ZeroDivisionError, OSError) as exc:
        raise Unreadable(f"not a readable PDF ({type(exc).__name__}: {str(exc)[:120]})") from None
    return Extracted(pages)
