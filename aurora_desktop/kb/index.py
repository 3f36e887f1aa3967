"""A knowledge base: the files and folders a user named, their text in chunks, and a Chinese-aware keyword index.

    kb = KnowledgeBase.open("论文")            # ~/.local/share/Aurora/Aurora Desktop/kb/论文.sqlite
    kb.add([Path("~/文档/报告.pdf"), Path("~/笔记")], progress=print)
    kb.search("混合专家模型有几个专家？", k=5)    # [Hit(path, page, text, score), …]
    kb.files()                                 # every file's state: indexed (chunks), skipped or failed (why)

One SQLite file per knowledge base. `sync` (run by `add`, and by `aurora-kb add` with no new paths) walks what was
added: a new or changed file (by size and time, then SHA-256) is extracted and chunked again, a removed file is
dropped, a renamed one keeps its chunks (same SHA-256). PDFs and DOCX files are read in a worker process with a time
limit, so a file that loops or explodes is one failed row and the rest is indexed. Each file is committed on its
own: a cancelled or killed run keeps what it finished.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from aurora_core.errors import AuroraError
from aurora_core.files import file_sha256

from .chunking import chunk_pages
from .extract import SUFFIXES, Extracted, Unreadable, extract
from .segment import DEFAULT_SCHEME, SCHEMES

SCHEMA_VERSION = 1
ISOLATED = (".pdf", ".docx")  # read in a worker process with EXTRACT_TIMEOUT_S
EXTRACT_TIMEOUT_S = 120.0
NAME = re.compile(r"^[^/\\:*?\"<>|\x00-\x1f]{1,64}$")
STATES = ("indexed", "skipped", "failed")
SEARCH_PHASES = ("AND", "OR", "BIGRAMS")
COMMON_SHARE = 0.05  # a word in more chunks than this share is left out of the "any of" phase (bench/kb_bench.py)
EMBED_BATCH = 32


class KnowledgeBaseError(AuroraError):
    pass


def kb_dir() -> Path:
    """Where knowledge bases live: the same data folder as the window's chats ($AURORA_KB_DIR overrides)."""
    if os.environ.get("AURORA_KB_DIR"):
        return Path(os.environ["AURORA_KB_DIR"])
    if os.name == "nt":
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    elif os.uname().sysname == "Darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "Aurora" / "Aurora Desktop" / "kb"


@dataclass
class FileRow:
    path: str
    state: str
    reason: str | None
    chunks: int
    chars: int
    encoding: str | None


@dataclass
class Hit:
    path: str
    page: int | None
    text: str
    score: float

    def cite(self) -> str:
        """`报告.pdf, p. 3` — how an answer's source is shown."""
        name = Path(self.path).name
        return f"{name}, p. {self.page}" if self.page else name


@dataclass
class SyncReport:
    indexed: int = 0
    unchanged: int = 0
    renamed: int = 0
    removed: int = 0
    skipped: int = 0
    failed: int = 0
    cancelled: bool = False
    embedded: int = 0
    chars: int = 0
    seconds: float = 0.0


Progress = Callable[[int, int, str], None]  # (files done, files in all, the file now)


class KnowledgeBase:
    def __init__(self, path: Path, scheme: str = DEFAULT_SCHEME) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path)
        self.db.execute("PRAGMA foreign_keys = ON")
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA cache_size = -65536")  # 64 MiB of pages: a search reads posting lists again and again
        self.scheme = SCHEMES[self._schema(scheme)]
        self.db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.vocab USING fts5vocab(main, fts, 'row')")
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._embedder = None  # dense.Embedder, loaded on first use
        self._matrix = None  # (chunk ids, their vectors) for dense search, read on first use
        self._total = None  # chunks in the index, for _common (counted on first use)

    @classmethod
    def open(cls, name: str, create: bool = True) -> "KnowledgeBase":
        if not NAME.match(name) or name.strip(". ") != name:
            raise KnowledgeBaseError(f"{name!r}: a knowledge base's name is 1 to 64 characters without / \\ : * ? "
                                     "\" < > | and not starting or ending with a dot or space")
        path = kb_dir() / f"{name}.sqlite"
        if not create and not path.is_file():
            raise KnowledgeBaseError(f"no knowledge base named {name!r}; make one with: aurora-kb add {name} FILE...")
        return cls(path)

    @classmethod
    def delete(cls, name: str) -> Path:
        """Remove the knowledge base `name` from the disk (its SQLite file and journals; the user's files stay);
        returns the path it had."""
        kb = cls.open(name, create=False)
        kb.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{kb.path}{suffix}").unlink(missing_ok=True)
        return kb.path

    @staticmethod
    def names() -> list[str]:
        return sorted(p.stem for p in kb_dir().glob("*.sqlite"))

    def _schema(self, scheme: str) -> str:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            s = SCHEMES[scheme]
            with self.db:
                self.db.executescript(f"""
                    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
                    CREATE TABLE roots (path TEXT PRIMARY KEY);
                    CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT UNIQUE NOT NULL, size INTEGER,
                        mtime REAL, sha256 TEXT, state TEXT NOT NULL, reason TEXT, chunks INTEGER DEFAULT 0,
                        chars INTEGER DEFAULT 0, encoding TEXT);
                    CREATE TABLE chunks (id INTEGER PRIMARY KEY, file_id INTEGER NOT NULL
                        REFERENCES files(id) ON DELETE CASCADE, page INTEGER, text TEXT NOT NULL);
                    CREATE INDEX chunks_file ON chunks(file_id);
                    CREATE TABLE vectors (chunk_id INTEGER PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE,
                        vec BLOB NOT NULL);
                    CREATE VIRTUAL TABLE fts USING fts5({", ".join(s.columns)}, tokenize='{s.tokenizer}');
                    PRAGMA user_version = {SCHEMA_VERSION};
                """)
                self.db.execute("INSERT INTO meta VALUES ('scheme', ?)", (scheme,))
            return scheme
        if version != SCHEMA_VERSION:
            raise KnowledgeBaseError(f"{self.path}: made by another version of Aurora (schema {version}); "
                                     "delete it and add the files again")
        return self.db.execute("SELECT value FROM meta WHERE key = 'scheme'").fetchone()[0]

    # -- what is in it ----------------------------------------------------------------------------

    def roots(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT path FROM roots ORDER BY path")]

    def files(self) -> list[FileRow]:
        return [FileRow(*r) for r in self.db.execute(
            "SELECT path, state, reason, chunks, chars, encoding FROM files ORDER BY path")]

    def chunk_count(self) -> int:
        return self.db.execute("SELECT count(*) FROM chunks").fetchone()[0]

    # -- adding, removing, keeping up with the disk -----------------------------------------------

    def add(self, paths: Iterable[Path], progress: Progress | None = None,
            cancel: Callable[[], bool] | None = None) -> SyncReport:
        """Add files or folders (folders with everything of a supported type in them), then `sync`."""
        with self.db:
            for p in paths:
                p = Path(p).expanduser().resolve()
                if not p.exists():
                    raise KnowledgeBaseError(f"{p}: no such file or folder")
                self.db.execute("INSERT OR IGNORE INTO roots VALUES (?)", (str(p),))
        return self.sync(progress, cancel)

    def remove(self, paths: Iterable[Path]) -> int:
        """Forget files or folders (their chunks go); the number of files dropped."""
        dropped, self._matrix, self._total = 0, None, None
        roots = self.roots()
        with self.db:
            for p in paths:
                p = str(Path(p).expanduser().resolve())
                if not any(r == p or r.startswith(p.rstrip("/") + "/") for r in roots):
                    inside = next((r for r in roots if p.startswith(r.rstrip("/") + "/")), None)
                    raise KnowledgeBaseError(f"{p}: part of the folder {inside}, which was added; remove that folder "
                                             "(and add the files you want one by one)" if inside else
                                             f"{p}: not in this knowledge base (aurora-kb list shows what is)")
                self.db.execute("DELETE FROM roots WHERE path = ? OR path LIKE ? ESCAPE '\\'", (p, _under(p)))
                ids = [r[0] for r in self.db.execute(
                    "SELECT id FROM files WHERE path = ? OR path LIKE ? ESCAPE '\\'", (p, _under(p)))]
                for file_id in ids:
                    self._drop(file_id)
                dropped += len(ids)
        return dropped

    def wanted(self) -> list[Path]:
        """Every file the roots name now (folders walked; hidden files and unsupported types left out)."""
        found: dict[str, Path] = {}
        for root in map(Path, self.roots()):
            if root.is_file():
                found[str(root)] = root
            elif root.is_dir():
                for dirpath, dirnames, filenames in os.walk(root):
                    dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                    for f in sorted(filenames):
                        if not f.startswith(".") and Path(f).suffix.lower() in SUFFIXES:
                            found[os.path.join(dirpath, f)] = Path(dirpath, f)
        return list(found.values())

    def sync(self, progress: Progress | None = None, cancel: Callable[[], bool] | None = None) -> SyncReport:
        start = time.perf_counter()
        report = SyncReport()
        wanted = self.wanted()
        known = {r[1]: r for r in self.db.execute("SELECT id, path, size, mtime, sha256 FROM files")}
        present = {str(p) for p in wanted}
        gone = {path: row for path, row in known.items() if path not in present}
        try:
            for n, path in enumerate(wanted):
                if cancel is not None and cancel():
                    report.cancelled = True
                    break
                if progress is not None:
                    progress(n, len(wanted), str(path))
                self._sync_file(path, known.get(str(path)), gone, report)
            else:
                if progress is not None:
                    progress(len(wanted), len(wanted), "")
                with self.db:
                    for row in gone.values():  # removed from the disk (a renamed file took its row already)
                        self._drop(row[0])
                        report.removed += 1
                if self._embedding_usable():  # new passages get their vectors too
                    report.embedded = self._embed_missing(None, cancel)
        finally:
            self._close_pool()
            self._matrix = self._total = None  # passages changed: counted and read again
        report.seconds = time.perf_counter() - start
        return report

    def _sync_file(self, path: Path, row, gone: dict, report: SyncReport) -> None:
        try:
            st = path.stat()
        except OSError:
            return
        if row is not None and row[2] == st.st_size and row[3] == st.st_mtime:
            report.unchanged += 1
            return
        sha = file_sha256(path)
        if row is not None and row[4] == sha:
            with self.db:
                self.db.execute("UPDATE files SET mtime = ? WHERE id = ?", (st.st_mtime, row[0]))
            report.unchanged += 1
            return
        moved = next((g for g in gone.values() if g[4] == sha), None) if row is None else None
        if moved is not None:  # renamed or moved: same bytes, the chunks stay
            with self.db:
                self.db.execute("UPDATE files SET path = ?, mtime = ? WHERE id = ?", (str(path), st.st_mtime, moved[0]))
            del gone[moved[1]]
            report.renamed += 1
            return
        self._index(path, st, sha, row[0] if row is not None else None, report)

    def _index(self, path: Path, st: os.stat_result, sha: str, file_id: int | None, report: SyncReport) -> None:
        try:
            extracted = self._extract(path)
            state, reason = "indexed", None
        except Unreadable as exc:
            extracted, state, reason = None, "skipped", str(exc)
        except (OSError, MemoryError) as exc:
            extracted, state, reason = None, "failed", f"{type(exc).__name__}: {exc}"
        chunks = chunk_pages(extracted.pages) if extracted else []
        if extracted is not None and not chunks:
            state, reason = "skipped", "no text to index"
        with self.db:  # one transaction per file: a cancelled run keeps every file it finished
            if file_id is not None:
                self._drop(file_id)
            cur = self.db.execute(
                "INSERT INTO files (path, size, mtime, sha256, state, reason, chunks, chars, encoding) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (str(path), st.st_size, st.st_mtime, sha, state, reason, len(chunks),
                 extracted.chars if extracted else 0, extracted.encoding if extracted else None))
            new_id = cur.lastrowid
            for c in chunks:
                chunk_id = self.db.execute("INSERT INTO chunks (file_id, page, text) VALUES (?, ?, ?)",
                                           (new_id, c.page, c.text)).lastrowid
                values = self.scheme.index(c.text)
                self.db.execute(f"INSERT INTO fts (rowid, {', '.join(self.scheme.columns)}) VALUES "
                                f"(?, {', '.join('?' * len(values))})", (chunk_id, *values))
        if state == "indexed":
            report.indexed += 1
            report.chars += extracted.chars
        else:
            report.skipped += state == "skipped"
            report.failed += state == "failed"

    def _drop(self, file_id: int) -> None:
        self.db.execute("DELETE FROM fts WHERE rowid IN (SELECT id FROM chunks WHERE file_id = ?)", (file_id,))
        self.db.execute("DELETE FROM files WHERE id = ?", (file_id,))  # its chunks go with it (ON DELETE CASCADE)

    # -- reading files safely ---------------------------------------------------------------------

    def _extract(self, path: Path) -> Extracted:
        if path.suffix.lower() not in ISOLATED:
            return extract(path)
        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        future = self._pool.submit(extract, path)
        try:
            return future.result(timeout=EXTRACT_TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            self._close_pool(kill=True)
            raise Unreadable(f"reading it took more than {EXTRACT_TIMEOUT_S:.0f} s (a damaged file?)") from None
        except concurrent.futures.process.BrokenProcessPool:
            self._close_pool(kill=True)
            raise Unreadable("reading it crashed the reader (a damaged file?)") from None

    def _close_pool(self, kill: bool = False) -> None:
        if self._pool is None:
            return
        if kill:  # a reader stuck in a loop: the process goes, the next file gets a new one
            for process in list(getattr(self._pool, "_processes", {}).values()):
                process.kill()
        self._pool.shutdown(wait=not kill, cancel_futures=True)
        self._pool = None

    # -- searching --------------------------------------------------------------------------------

    def search(self, question: str, k: int = 5, mode: str = "auto") -> list[Hit]:
        """The `k` passages that best match `question`, best first. `mode`: "keyword" (BM25, below), "dense" (the
        embedding model's nearest), "fused" (both by reciprocal rank), "auto" (fused when an embedding model is set
        and its file is there, else keyword)."""
        if mode == "auto":
            mode = "fused" if self._embedding_usable() else "keyword"
        if mode == "keyword":
            ranked = self._keyword(question, k)
        elif mode == "dense":
            ranked = self._dense(question, k)
        elif mode == "fused":
            from .dense import CANDIDATES, RRF_K, fuse

            lists = [[i for i, _ in self._keyword(question, CANDIDATES)], [i for i, _ in self._dense(question, CANDIDATES)]]
            ids = fuse(lists)[:k]
            ranked = [(i, sum(1 / (RRF_K + lst.index(i) + 1) for lst in lists if i in lst)) for i in ids]
        else:
            raise KnowledgeBaseError(f"search mode {mode!r}: choose keyword, dense, fused or auto")
        return self._hits(ranked)

    def _keyword(self, question: str, k: int) -> list[tuple[int, float]]:
        """(chunk id, BM25 score) of the `k` best, in phases: chunks with all the question's topic words, then with
        any of its longer words, then with any two of its neighbouring characters, until `k` are found (one OR over
        everything would score most of the index)."""
        found: dict[int, float] = {}
        for phase in SEARCH_PHASES:
            match = self.scheme.query(question, phase, self._common(question) if phase == "OR" else frozenset())
            if match:
                weights = "".join(f", {w}" for w in self.scheme.weights)
                for chunk_id, score in self.db.execute(
                        f"SELECT rowid, bm25(fts{weights}) AS score FROM fts WHERE fts MATCH ? ORDER BY score LIMIT ?",
                        (match, k + len(found))):
                    if chunk_id not in found and len(found) < k:
                        found[chunk_id] = -score
            if len(found) >= k:
                break
        return list(found.items())

    def _common(self, question: str) -> frozenset:
        """The question's words that are in more than COMMON_SHARE of the chunks (FTS5's own counts, fts5vocab)."""
        from .segment import or_words

        words = or_words(question)
        if self._total is None:
            self._total = self.chunk_count()
        total = self._total
        if not words or not total:
            return frozenset()
        rows = self.db.execute(f"SELECT term, doc FROM temp.vocab WHERE term IN ({', '.join('?' * len(words))})",
                               words).fetchall()
        return frozenset(term for term, docs in rows if docs > COMMON_SHARE * total)

    def _hits(self, ranked: list[tuple[int, float]]) -> list[Hit]:
        if not ranked:
            return []
        rows = {r[0]: r[1:] for r in self.db.execute(
            "SELECT chunks.id, files.path, chunks.page, chunks.text FROM chunks JOIN files ON files.id = chunks.file_id "
            f"WHERE chunks.id IN ({', '.join('?' * len(ranked))})", [i for i, _ in ranked])}
        return [Hit(*rows[i], score) for i, score in ranked if i in rows]

    # -- dense retrieval (optional: an embedding model the user gives) ----------------------------

    def embedding_model(self) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'embedding_model'").fetchone()
        return row[0] if row else None

    def _embedding_usable(self) -> bool:
        model = self.embedding_model()
        return model is not None and Path(model).is_file()

    def embed_with(self, model_path: str | Path | None, progress: Progress | None = None,
                   cancel: Callable[[], bool] | None = None) -> int:
        """Use `model_path` (a GGUF embedding model) for this knowledge base from now on and embed every passage
        that has no vector from it yet; None stops using one. Returns the passages embedded."""
        from .dense import Embedder

        if model_path is None:
            with self.db:
                self.db.execute("DELETE FROM meta WHERE key IN ('embedding_model', 'embedding_fingerprint')")
                self.db.execute("DELETE FROM vectors")
            self._close_embedder()
            return 0
        embedder = self._embedder_for(Path(model_path).expanduser().resolve())
        with self.db:
            old = self.db.execute("SELECT value FROM meta WHERE key = 'embedding_fingerprint'").fetchone()
            if old is None or old[0] != embedder.fingerprint:  # another model: its vectors mean nothing here
                self.db.execute("DELETE FROM vectors")
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('embedding_model', ?)", (str(embedder.path),))
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('embedding_fingerprint', ?)", (embedder.fingerprint,))
        return self._embed_missing(progress, cancel)

    def _embed_missing(self, progress: Progress | None = None, cancel: Callable[[], bool] | None = None) -> int:
        embedder = self._embedder_for(Path(self.embedding_model()))
        todo = self.db.execute("SELECT chunks.id, chunks.text FROM chunks LEFT JOIN vectors ON vectors.chunk_id = "
                               "chunks.id WHERE vectors.chunk_id IS NULL ORDER BY chunks.id").fetchall()
        done = 0
        for start in range(0, len(todo), EMBED_BATCH):
            if cancel is not None and cancel():
                break
            batch = todo[start:start + EMBED_BATCH]
            if progress is not None:
                progress(done, len(todo), "")
            vectors = embedder.embed([text for _id, text in batch])
            with self.db:  # each batch kept as it is done
                self.db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)",
                                    [(i, v.tobytes()) for (i, _t), v in zip(batch, vectors)])
            done += len(batch)
        self._matrix = None
        return done

    def _embedder_for(self, path: Path):
        from .dense import Embedder

        if self._embedder is None or self._embedder.path != path:
            self._close_embedder()
            self._embedder = Embedder(path)
        return self._embedder

    def _dense(self, question: str, k: int) -> list[tuple[int, float]]:
        import numpy as np

        from .dense import nearest

        if not self._embedding_usable():
            raise KnowledgeBaseError(f"{self.path}: no embedding model is set (or its file is gone); "
                                     "aurora-kb embed NAME MODEL.gguf")
        query = self._embedder_for(Path(self.embedding_model())).embed([question])[0]
        if self._matrix is None:
            rows = self.db.execute("SELECT chunk_id, vec FROM vectors ORDER BY chunk_id").fetchall()
            self._matrix = ([r[0] for r in rows],
                            np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
                            if rows else np.zeros((0, len(query)), dtype=np.float32))
        ids, matrix = self._matrix
        top = nearest(query, matrix, k)
        return [(ids[i], float(matrix[i] @ query)) for i in top]

    def _close_embedder(self) -> None:
        if self._embedder is not None:
            self._embedder.close()
            self._embedder = None
        self._matrix = None

    def close(self) -> None:
        self._close_pool()
        self._close_embedder()
        self.db.close()


def _under(path: str) -> str:
    """A LIKE pattern for everything inside folder `path`."""
    escaped = path.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.rstrip("/") + "/%"
