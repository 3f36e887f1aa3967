"""`aurora-kb`: knowledge bases of your own documents, for chats that answer from them (offline).

    aurora-kb add 论文 ~/文档/报告.pdf ~/笔记/        index files and folders (again: only what changed)
    aurora-kb list [论文]                            knowledge bases, or every file's state in one
    aurora-kb search 论文 "混合专家模型有几个专家？" [-k 5] [--json]
    aurora-kb remove 论文 ~/笔记/旧.md                forget files or folders
    aurora-kb embed 论文 bge-m3-q8_0.gguf             also search by meaning (a GGUF embedding model you have)
    aurora-kb delete 论文                             the whole knowledge base, from the disk
    aurora-chat MODEL.gguf --kb 论文                   answers from it, with their sources

TXT and Markdown (UTF-8, UTF-16, GB18030/GBK), PDF (with page numbers), DOCX and HTML. A file without text (a
scanned PDF), in an encoding that cannot be told, or damaged is listed with the reason and not indexed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from aurora_core.cli import HelpFormatter
from aurora_core.errors import run_main

from .index import KnowledgeBase, KnowledgeBaseError, SyncReport


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aurora-kb", description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=HelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="index files and folders (again: only what changed on the disk)")
    add.add_argument("kb", help="the knowledge base's name (made when new)")
    add.add_argument("paths", nargs="*", type=Path, help="files or folders; none: bring the index up to date")
    add.add_argument("--no-progress", action="store_true", help="no progress bar")
    rm = sub.add_parser("remove", help="forget files or folders (their text leaves the index)")
    rm.add_argument("kb")
    rm.add_argument("paths", nargs="+", type=Path)
    ls = sub.add_parser("list", help="the knowledge bases, or the files of one with their state")
    ls.add_argument("kb", nargs="?")
    ls.add_argument("--json", action="store_true")
    se = sub.add_parser("search", help="the chunks that best match a question")
    se.add_argument("kb")
    se.add_argument("question")
    se.add_argument("-k", type=int, default=5, help="how many chunks")
    se.add_argument("--json", action="store_true")
    se.add_argument("--mode", choices=("auto", "keyword", "dense", "fused"), default="auto",
                    help="keyword (BM25), dense (the embedding model), fused (both); auto: fused when a model is set")
    em = sub.add_parser("embed", help="search by meaning too: embed every passage with a GGUF embedding model")
    em.add_argument("kb")
    em.add_argument("model", help="a GGUF embedding model (e.g. bge-m3), or 'none' to stop using one")
    em.add_argument("--no-progress", action="store_true")
    de = sub.add_parser("delete", help="delete a knowledge base from the disk (your files stay)")
    de.add_argument("kb")
    return p


def main(argv: list[str] | None = None) -> int:
    return run_main("aurora-kb", lambda: _run(build_parser().parse_args(argv)))


def _run(args) -> int:
    if args.command == "list" and args.kb is None:
        for name in KnowledgeBase.names():
            kb = KnowledgeBase.open(name, create=False)
            files = kb.files()
            print(f"{name}\t{sum(f.state == 'indexed' for f in files)} files indexed, {kb.chunk_count()} chunks"
                  f"\t{kb.path}")
            kb.close()
        return 0
    if args.command == "delete":
        print(f"deleted {KnowledgeBase.delete(args.kb)}")
        return 0
    kb = KnowledgeBase.open(args.kb, create=args.command == "add")
    try:
        return COMMANDS[args.command](kb, args)
    finally:
        kb.close()


def _add(kb: KnowledgeBase, args) -> int:
    bar = None if args.no_progress or not sys.stderr.isatty() else _bar
    try:
        report = kb.add(args.paths, progress=bar) if args.paths else kb.sync(progress=bar)
    except KeyboardInterrupt:  # what was finished stays (one transaction per file)
        print("\naurora-kb: stopped; the files indexed so far are kept (run it again to go on)", file=sys.stderr)
        return 130
    if bar is not None:
        print(file=sys.stderr)
    print(_summary(report))
    for f in kb.files():
        if f.state != "indexed":
            print(f"  {f.state}: {f.path}: {f.reason}")
    return 0


def _summary(r: SyncReport) -> str:
    speed = f", {r.chars / r.seconds:,.0f} characters/s" if r.chars and r.seconds else ""
    return (f"indexed {r.indexed}, unchanged {r.unchanged}, renamed {r.renamed}, removed {r.removed}, "
            f"skipped {r.skipped}, failed {r.failed} ({r.seconds:.1f} s{speed})")


def _bar(done: int, total: int, path: str) -> None:
    width = 30
    filled = width * done // max(total, 1)
    name = Path(path).name[:40] if path else ""
    print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {name:<40}", end="", file=sys.stderr, flush=True)


def _remove(kb: KnowledgeBase, args) -> int:
    n = kb.remove(args.paths)
    print(f"removed {n} files from {args.kb}")
    return 0


def _list(kb: KnowledgeBase, args) -> int:
    files = kb.files()
    if args.json:
        print(json.dumps([f.__dict__ for f in files], ensure_ascii=False, indent=1))
        return 0
    for f in files:
        what = f"{f.chunks} chunks, {f.chars:,} characters" + (f", {f.encoding}" if f.encoding else "") \
            if f.state == "indexed" else f.reason
        print(f"{f.state:8} {f.path}  ({what})")
    if not files:
        print(f"{args.kb}: no files yet; aurora-kb add {args.kb} FILE|FOLDER...")
    return 0


def _search(kb: KnowledgeBase, args) -> int:
    if not 1 <= args.k <= 100:
        raise KnowledgeBaseError(f"-k {args.k}: choose 1 to 100")
    hits = kb.search(args.question, args.k, mode=args.mode)
    if args.json:
        print(json.dumps([h.__dict__ for h in hits], ensure_ascii=False, indent=1))
        return 0
    for n, h in enumerate(hits, 1):
        print(f"[{n}] {h.cite()}  (score {h.score:.2f})  {h.path}\n    {h.text}\n")
    if not hits:
        print("no match")
    return 0


def _embed(kb: KnowledgeBase, args) -> int:
    import time

    bar = None if args.no_progress or not sys.stderr.isatty() else _bar
    start = time.perf_counter()
    n = kb.embed_with(None if args.model == "none" else args.model, progress=bar)
    if bar is not None:
        print(file=sys.stderr)
    seconds = time.perf_counter() - start
    print(f"{args.kb}: no embedding model" if args.model == "none" else
          f"{args.kb}: {n} passages embedded with {args.model} ({seconds:.1f} s); searches are fused from now on")
    return 0


COMMANDS = {"add": _add, "remove": _remove, "list": _list, "search": _search, "embed": _embed}

if __name__ == "__main__":
    sys.exit(main())
