"""Knowledge bases: retrieval quality of each way of indexing Chinese, indexing throughput, query latency.

1. Quality, on bench/data/kb_questions_zh.json (8 documents, 40 questions; a question is answered when a chunk of
   its document holding the answer phrase is retrieved), indexed among 1 MB of other text (see 2): recall@5 and MRR
   for every scheme in
   `aurora_desktop.kb.segment.SCHEMES` (FTS5 unicode61 and trigram as they are, CJK characters, jieba words, jieba
   words + characters), and with `--embedding MODEL.gguf` dense retrieval and its fusion with the default scheme.
2. Throughput: `KnowledgeBase.add` on --mb MB of Chinese text in 50 files (sentences of words drawn by their
   frequency in jieba's dictionary): characters/s and the process's peak RSS (jieba's dictionary included).
3. Latency: that index (and the question set's documents) grown to --chunks chunks (rows copied in SQL), median,
   p95 and max of the 40 questions' searches, three rounds.

    python bench/kb_bench.py [--mb 5] [--chunks 100000] [--embedding bge-m3-q8_0.gguf]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
QUESTIONS = HERE / "data" / "kb_questions_zh.json"


def load_set() -> dict:
    return json.loads(QUESTIONS.read_text(encoding="utf-8"))


def write_docs(folder: Path, documents: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in documents.items():
        (folder / name).write_text(text, encoding="utf-8")


def quality(search, questions: list[dict], k: int = 5) -> tuple[float, float]:
    """(recall@k, MRR@k) of `search(question, k) -> [(path, text)]`."""
    found, reciprocal = 0, 0.0
    for q in questions:
        for rank, (path, text) in enumerate(search(q["q"], k), 1):
            if Path(path).name == q["doc"] and q["answer"] in text:
                found += 1
                reciprocal += 1 / rank
                break
    return found / len(questions), reciprocal / len(questions)


def scheme_rows(data: dict, work: Path, embedding: str | None) -> list[tuple[str, float, float]]:
    from aurora_desktop.kb.index import KnowledgeBase
    from aurora_desktop.kb.segment import DEFAULT_SCHEME, SCHEMES

    docs = work / "docs"
    write_docs(docs, data["documents"])
    corpus(work / "distractors", 1.0, files=20, seed=1)  # 1 MB of other text around them, as in a real collection
    rows = []
    for name in SCHEMES:
        kb = KnowledgeBase(work / f"quality-{name}.sqlite", scheme=name)
        kb.add([docs, work / "distractors"])
        recall, mrr = quality(lambda q, k: [(h.path, h.text) for h in kb.search(q, k)], data["questions"])
        rows.append((name + (" (default)" if name == DEFAULT_SCHEME else ""), recall, mrr))
        if embedding and name == DEFAULT_SCHEME:
            kb.embed_with(embedding)
            for mode in ("dense", "fused"):
                recall, mrr = quality(lambda q, k: [(h.path, h.text) for h in kb.search(q, k, mode=mode)],
                                      data["questions"])
                rows.append((f"{mode} ({Path(embedding).name})" if mode == "dense" else
                             f"{DEFAULT_SCHEME} + dense, reciprocal-rank fusion", recall, mrr))
        kb.close()
    return rows


def corpus(folder: Path, mb: float, files: int = 50, seed: int = 0) -> int:
    """`mb` MB of Chinese text in `files` files: sentences of words drawn by their frequency in jieba's dictionary
    (349,046 words), so that the index sees Chinese's real spread of common and rare words. Returns characters."""
    import bisect
    import itertools

    import jieba

    entries = [line.split(" ") for line in (Path(jieba.__file__).parent / "dict.txt").read_text("utf-8").splitlines()]
    vocab = [e[0] for e in entries if len(e) >= 2]
    cumulative = list(itertools.accumulate(int(e[1]) for e in entries if len(e) >= 2))
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    per_file, total = int(mb * 1e6 / files), 0
    for n in range(files):
        parts, size = [], 0
        while size < per_file:
            words = [vocab[bisect.bisect(cumulative, rng.random() * cumulative[-1])] for _ in range(rng.randint(6, 24))]
            sentence = "".join(words) + rng.choice("。。。！？；")
            parts.append(sentence + ("\n\n" if rng.random() < 0.08 else ""))
            size += len(sentence.encode())
        text = "".join(parts)
        (folder / f"doc{n:03}.md").write_text(text, encoding="utf-8")
        total += len(text)
    return total


def grow(kb, chunks: int) -> None:
    """Copy the index's rows until it holds `chunks` chunks (the latency test's size)."""
    db = kb.db
    cols = ", ".join(kb.scheme.columns)
    with db:
        while kb.chunk_count() < chunks:
            need = chunks - kb.chunk_count()
            top = db.execute("SELECT max(id) FROM chunks").fetchone()[0]
            db.execute("INSERT INTO chunks (id, file_id, page, text) SELECT id + ?, file_id, page, text FROM chunks "
                       "ORDER BY id LIMIT ?", (top, need))
            db.execute(f"INSERT INTO fts (rowid, {cols}) SELECT rowid + ?, {cols} FROM fts WHERE rowid <= ? "
                       "ORDER BY rowid LIMIT ?", (top, top, need))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mb", type=float, default=5.0, help="MB of Chinese text for the throughput test")
    p.add_argument("--chunks", type=int, default=100_000, help="index size for the latency test")
    p.add_argument("--embedding", help="a GGUF embedding model (e.g. bge-m3) for dense retrieval and fusion")
    p.add_argument("--workdir", type=Path, default=None)
    args = p.parse_args()
    from aurora_desktop.kb.index import KnowledgeBase

    data = load_set()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="kb-bench-"))
    print(f"question set: {len(data['documents'])} documents, {len(data['questions'])} questions\n")
    print("| retrieval | recall@5 | MRR |\n|---|---:|---:|")
    for name, recall, mrr in scheme_rows(data, work, args.embedding):
        print(f"| {name} | {recall:.3f} | {mrr:.3f} |")

    chars = corpus(work / "corpus", args.mb)
    write_docs(work / "corpus" / "answers", data["documents"])  # the questions' answers are somewhere in it
    chars += sum(map(len, data["documents"].values()))
    kb = KnowledgeBase(work / "throughput.sqlite")
    t = time.perf_counter()
    report = kb.add([work / "corpus"])
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"\n| indexing {args.mb:g} MB ({chars:,} characters, {report.indexed} files) | value |\n|---|---:|")
    print(f"| wall time | {seconds:.1f} s |\n| throughput | {chars / seconds:,.0f} characters/s |")
    print(f"| chunks | {kb.chunk_count():,} |\n| peak RSS of the process (quality runs, jieba included) | "
          f"{peak / 1024:.0f} MiB |\n| database | "
          f"{os.path.getsize(kb.path) / 2**20:.1f} MiB |")

    grow(kb, args.chunks)
    times = []
    for _round in range(3):
        for q in data["questions"]:
            t = time.perf_counter()
            kb.search(q["q"], 5)
            times.append((time.perf_counter() - t) * 1000)
    times.sort()
    print(f"\n| search at {kb.chunk_count():,} chunks ({len(times)} searches) | ms |\n|---|---:|")
    print(f"| median | {statistics.median(times):.1f} |\n| p95 | {times[int(len(times) * 0.95)]:.1f} |"
          f"\n| max | {times[-1]:.1f} |")
    kb.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
