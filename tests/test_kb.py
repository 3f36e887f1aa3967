"""Knowledge bases on real files written by other programs' writers: PDFs from Qt's QPdfWriter (the Noto CJK font
embedded, so the text layer is Qt's), DOCX from python-docx, GBK text from Python's codec; pypdf reads them back.
Real SQLite files, the real jieba; aurora-kb and aurora-chat --kb as the user runs them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sysconfig
import zipfile
from pathlib import Path

import pytest

from aurora_desktop.kb.chunking import chunk_text, sentences
from aurora_desktop.kb.extract import MAX_FILE_BYTES, Unreadable, decode, extract
from aurora_desktop.kb.index import KnowledgeBase, KnowledgeBaseError
from aurora_desktop.kb.sources import with_sources

BIN = Path(sysconfig.get_path("scripts"))
PAGES = ["第一页：混合专家模型在每一层有八个专家，每个词元只用其中两个。",
         "第二页：大熊猫主要吃竹子，也吃少量水果。猫喜欢吃鱼。",
         "第三页：长城始建于春秋战国时期，秦朝把各段连接起来。Mixtral was released by Mistral AI."]
GBK_TEXT = "北京是中华人民共和国的首都，也是全国的政治和文化中心。上海是中国最大的城市之一。" * 2


def qt_pdf(path: Path, pages: list[str], image_only: bool = False) -> Path:
    """A PDF written by Qt (QPdfWriter + QPainter), one string per page; `image_only`: the text drawn into an
    image first, as a scanner would give it (no text layer)."""
    from PySide6.QtCore import QRect, Qt
    from PySide6.QtGui import QFont, QImage, QPageSize, QPainter, QPdfWriter

    writer = QPdfWriter(str(path))
    writer.setPageSize(QPageSize(QPageSize.PageSizeId.A5))
    writer.setResolution(150)
    painter = QPainter(writer)
    font = QFont("Noto Sans CJK SC", 12)
    for n, text in enumerate(pages):
        if n:
            writer.newPage()
        if image_only:
            image = QImage(700, 900, QImage.Format.Format_RGB32)
            image.fill(Qt.GlobalColor.white)
            p = QPainter(image)
            p.setFont(font)
            p.drawText(QRect(20, 20, 660, 860), Qt.TextFlag.TextWordWrap, text)
            p.end()
            painter.drawImage(0, 0, image)
        else:
            painter.setFont(font)
            painter.drawText(QRect(50, 50, 700, 1000), Qt.TextFlag.TextWordWrap, text)
    painter.end()
    return path


def docx(path: Path, paragraphs: list[str]) -> Path:
    import docx as python_docx

    d = python_docx.Document()
    for text in paragraphs:
        d.add_paragraph(text)
    d.save(str(path))
    return path


@pytest.fixture
def docs(qapp, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    qt_pdf(folder / "三页.pdf", PAGES)
    qt_pdf(folder / "扫描.pdf", ["这是一份扫描件，没有文字层。" * 3], image_only=True)
    (folder / "国标.txt").write_bytes(GBK_TEXT.encode("gbk"))
    (folder / "笔记.md").write_text("# 笔记\n\n深度学习需要大量的数据。梯度下降是一种优化方法。\n", encoding="utf-8")
    (folder / "utf16.txt").write_text("量化把权重从十六位浮点数变成四位整数。" * 2, encoding="utf-16")
    docx(folder / "报告.docx", ["年度报告", "今年公司的营业收入增长了百分之二十。", "明年计划开设三家新门店。"])
    (folder / "网页.html").write_text("<html><head><script>var secret = 1;</script><style>p{}</style></head>"
                                    "<body><h1>黄山</h1><p>黄山位于安徽省南部，以奇松、怪石、云海著称。</p></body></html>",
                                    encoding="utf-8")
    (folder / "latin1.txt").write_bytes(("Ã©tÃ© naïve café résumé déjà vu " * 20).encode("latin-1"))
    return folder


@pytest.fixture
def kb(tmp_path, monkeypatch):
    monkeypatch.setenv("AURORA_KB_DIR", str(tmp_path / "kb"))
    base = KnowledgeBase.open("测试")
    yield base
    base.close()


def states(kb) -> dict[str, tuple]:
    return {Path(f.path).name: (f.state, f.reason, f.chunks, f.encoding) for f in kb.files()}


# ---------------------------------------------------------------- extraction


def test_every_format_is_read_and_each_file_says_its_state(kb, docs):
    report = kb.add([docs])
    s = states(kb)
    assert report.indexed == 6 and report.skipped == 2, s
    assert s["国标.txt"][0] == "indexed" and s["国标.txt"][3] == "gb18030"
    assert s["utf16.txt"][3] == "utf-16" and s["笔记.md"][3] == "utf-8"
    assert s["扫描.pdf"][0] == "skipped" and "no text layer" in s["扫描.pdf"][1]
    assert s["latin1.txt"][0] == "skipped" and "encoding" in s["latin1.txt"][1]
    pages = extract(docs / "三页.pdf").pages
    assert [p for p, _t in pages] == [1, 2, 3]
    assert "".join(pages[1][1].split()).startswith("第二页：大熊猫主要吃竹子")  # Chinese out of Qt's PDF, not mojibake
    hit = kb.search("大熊猫吃什么", 1)[0]
    assert hit.path.endswith("三页.pdf") and hit.page == 2 and hit.cite() == "三页.pdf, p. 2"
    assert kb.search("营业收入", 1)[0].path.endswith("报告.docx")
    assert kb.search("黄山在哪里", 1)[0].path.endswith("网页.html")
    assert not kb.search("secret")  # the page's script is not text
    assert kb.search("首都", 1)[0].text.startswith("北京是中华人民共和国的首都")  # GBK decoded right


def test_gbk_is_told_from_other_encodings():
    assert decode("中文测试，这是国标编码。".encode("gbk")) == ("中文测试，这是国标编码。", "gb18030")
    assert decode("中文".encode("utf-8"))[1] == "utf-8"
    with pytest.raises(Unreadable, match="encoding"):
        decode("日本語のテキストです。これはシフトJISです。".encode("shift_jis") * 3)
    with pytest.raises(Unreadable, match="encoding"):
        decode(bytes(range(128, 256)) * 4)


def test_search_finds_chinese_words_of_any_length_and_english(kb, docs):
    kb.add([docs])
    for query, where in (("猫", "三页.pdf"), ("竹子", "三页.pdf"), ("营业收入", "报告.docx"),
                         ("春秋战国", "三页.pdf"), ("Mixtral", "三页.pdf"), ("mistral", "三页.pdf"),
                         ("梯度下降", "笔记.md"), ("量化", "utf16.txt")):
        hits = kb.search(query, 5)
        assert hits and Path(hits[0].path).name == where, (query, [(h.path, h.score) for h in hits])
    assert kb.search("", 5) == [] and kb.search("。，！", 5) == []
    assert kb.search('" OR * NEAR( AND', 5) == []  # FTS5 syntax in a question is text, never an error


def test_chunks_end_at_sentence_ends_and_overlap():
    text = "".join(f"这是第{n}句话，用来测试分块。" for n in range(40))
    chunks = chunk_text(text, max_chars=100, overlap=30)
    assert all(len(c) <= 100 for c in chunks) and len(chunks) > 5
    assert all(c.endswith("。") for c in chunks)
    for a, b in zip(chunks, chunks[1:]):  # the next chunk starts with this one's last sentences (<= 30 chars)
        shared = [x for x in sentences(b) if x in sentences(a)]
        assert shared and sentences(a)[-len(shared):] == shared and sum(map(len, shared)) <= 30
    assert sentences("他说：“好的。”然后走了！OK. Next") == ["他说：“好的。”", "然后走了！", "OK.", "Next"]


# ---------------------------------------------------------------- keeping up with the disk


def test_edit_remove_and_rename_are_followed(kb, docs):
    kb.add([docs])
    before = kb.chunk_count()
    again = kb.sync()
    assert again.indexed == 0 and again.unchanged == 8
    (docs / "笔记.md").write_text("# 笔记\n\n强化学习通过奖励来学习策略，智能体在环境中不断尝试。\n", encoding="utf-8")
    edited = kb.sync()
    assert edited.indexed == 1 and kb.search("强化学习", 1)[0].path.endswith("笔记.md")
    assert not kb.search("梯度下降")
    (docs / "报告.docx").unlink()
    removed = kb.sync()
    assert removed.removed == 1 and not kb.search("营业收入")
    (docs / "国标.txt").rename(docs / "首都.txt")
    renamed = kb.sync()
    assert renamed.renamed == 1 and renamed.indexed == 0
    assert kb.search("首都", 1)[0].path.endswith("首都.txt")
    assert kb.chunk_count() < before
    with pytest.raises(KnowledgeBaseError, match="part of the folder"):  # it would come back with the folder
        kb.remove([docs / "三页.pdf"])
    assert kb.remove([docs]) == 7 and kb.chunk_count() == 0 and kb.files() == [] and kb.roots() == []


def test_a_cancelled_run_keeps_what_it_finished(kb, docs):
    seen = []
    report = kb.add([docs], progress=lambda done, total, path: seen.append(done), cancel=lambda: len(seen) > 3)
    assert report.cancelled and 0 < len(kb.files()) < 8
    finished = len(kb.files())
    rest = kb.sync()  # goes on where it stopped
    assert rest.unchanged == finished and len(kb.files()) == 8


# ---------------------------------------------------------------- hostile files


def looping_pdf(path: Path) -> Path:
    """A PDF whose page tree is its own child."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [2 0 R] /Count 1 >>"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path.write_bytes(bytes(out))
    return path


def encrypted_pdf(source: Path, path: Path) -> Path:
    import pypdf

    writer = pypdf.PdfWriter(clone_from=str(source))
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="AES-128")
    with open(path, "wb") as f:
        writer.write(f)
    return path


def zip_bomb_docx(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        with z.open("word/document.xml", "w", force_zip64=True) as f:
            block = b" " * (1 << 20)
            for _ in range(200):  # 200 MiB of spaces: a few hundred KiB packed
                f.write(block)
    return path


def test_hostile_files_are_one_line_each_and_the_rest_is_indexed(kb, docs, tmp_path):
    bad = docs / "bad"
    bad.mkdir()
    with open(bad / "巨大.txt", "wb") as f:  # 200 MB (sparse: the disk is not filled)
        f.truncate(200 << 20)
    looping_pdf(bad / "循环.pdf")
    encrypted_pdf(docs / "三页.pdf", bad / "加密.pdf")
    (bad / "损坏.pdf").write_bytes(b"%PDF-1.7\n" + os.urandom(4096))
    zip_bomb_docx(bad / "炸弹.docx")
    (bad / "假的.docx").write_bytes(b"PK\x03\x04 not really a zip")
    report = kb.add([docs])
    s = states(kb)
    assert report.indexed == 6, s
    reasons = {name: s[name][1] for name in ("巨大.txt", "循环.pdf", "加密.pdf", "损坏.pdf", "炸弹.docx", "假的.docx")}
    assert f"larger than {MAX_FILE_BYTES >> 20} MiB" in reasons["巨大.txt"]
    assert "password" in reasons["加密.pdf"]
    assert "zip bomb" in reasons["炸弹.docx"]
    assert "not a readable DOCX" in reasons["假的.docx"]
    for name, why in reasons.items():
        assert s[name][0] in ("skipped", "failed") and why and "\n" not in why, (name, why)
    assert kb.search("大熊猫", 1)[0].page == 2  # the good files are all there


# ---------------------------------------------------------------- the commands


def run(*argv, env=None):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=300, env=env)


def test_aurora_kb_and_aurora_chat_with_sources(docs, exported, tmp_path):
    env = {**os.environ, "AURORA_KB_DIR": str(tmp_path / "kb")}
    added = run(BIN / "aurora-kb", "add", "资料", docs, "--no-progress", env=env)
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("indexed 6,") and "skipped: " in added.stdout and "扫描.pdf" in added.stdout
    listed = run(BIN / "aurora-kb", "list", "资料", env=env)
    assert "indexed  " in listed.stdout and "gb18030" in listed.stdout and "no text layer" in listed.stdout
    found = json.loads(run(BIN / "aurora-kb", "search", "资料", "熊猫吃什么", "--json", "-k", "2", env=env).stdout)
    assert found[0]["page"] == 2 and found[0]["path"].endswith("三页.pdf")
    chat = run(BIN / "aurora-chat", exported["q8_0"], "--kb", "资料", "--prompt", "熊猫吃什么？", "--max-tokens", "8",
               "--temperature", "0", "--ctx", "1024", "--json", env=env)
    assert chat.returncode == 0, chat.stderr
    answer = json.loads(chat.stdout)
    assert answer["sources"][0]["page"] == 2 and answer["prompt_tokens"] > 60  # the passages went in
    shown = run(BIN / "aurora-chat", exported["q8_0"], "--kb", "资料", "--prompt", "熊猫吃什么？", "--max-tokens", "8",
                "--temperature", "0", "--ctx", "1024", env=env)
    assert "sources:\n  [1] 三页.pdf, p. 2  " in shown.stdout
    missing = run(BIN / "aurora-chat", exported["q8_0"], "--kb", "没有", "--prompt", "你好", env=env)
    assert missing.returncode == 2 and "no knowledge base named '没有'" in missing.stderr
    gone = run(BIN / "aurora-kb", "delete", "资料", env=env)
    assert gone.returncode == 0 and not list((tmp_path / "kb").glob("资料*"))


def test_sources_fit_the_budget_and_are_numbered(kb, docs):
    kb.add([docs])
    hits = kb.search("熊猫 长城 首都", 5)
    text, used = with_sources("问题？", hits, budget_chars=10_000)
    assert used == hits and "[1] " in text and text.endswith("问题：问题？")
    small, few = with_sources("问题？", hits, budget_chars=0)  # the floor: MIN_BUDGET_CHARS of sources
    assert 1 <= len(few) < len(hits) and len(small) < len(text)
    assert with_sources("问题？", [], 1000) == ("问题？", [])


def test_dense_search_and_fusion_through_llama_cpp_embeddings(kb, docs, exported):
    """A GGUF run in llama.cpp's embedding mode (here the demo model, mean-pooled: random weights, so only the
    mechanics are tested; retrieval quality needs a real embedding model such as bge-m3)."""
    kb.add([docs])
    assert kb.search("大熊猫", 3, mode="auto") == kb.search("大熊猫", 3, mode="keyword")  # no model: keyword
    n = kb.embed_with(exported["q8_0"])
    assert n == kb.chunk_count() > 5
    passage = kb.search("营业收入", 1, mode="keyword")[0]
    same = kb.search(passage.text, 1, mode="dense")[0]  # a passage's own text is its nearest neighbour
    assert same.text == passage.text and same.score == pytest.approx(1.0, abs=1e-3)
    fused = kb.search("大熊猫吃什么", 5, mode="fused")
    assert len(fused) == 5 and len({h.text for h in fused}) == 5
    assert kb.search("大熊猫吃什么", 5) == fused  # auto: fused once a model is set
    (docs / "新.md").write_text("新加入的文件讲的是围棋，围棋起源于中国。" * 2, encoding="utf-8")
    report = kb.sync()
    assert report.indexed == 1 and report.embedded == 1  # new passages get vectors as they come
    assert kb.embed_with(None) == 0 and kb.search("围棋", 1)[0].path.endswith("新.md")


def test_dense_fusion_ranks_by_reciprocal_rank():
    from aurora_desktop.kb.dense import fuse

    assert fuse([[1, 2, 3], [3, 1, 4]]) == [1, 3, 2, 4]
    assert fuse([[], [7]]) == [7]
