"""Write a folder or a file so that readers only ever see it whole; hash a file; read JSON from outside.

Outputs follow the user's umask (as `open` would), whatever temporary-file helper made them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import AuroraError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def new_folder(out: Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside `out`; on success it replaces `out`, on any error it is removed.

    An existing non-empty `out` is refused unless `force` (nothing of the user's is touched then).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AuroraError(f"{out}: is a file, not a folder; choose another output folder")
    if out.exists() and any(out.iterdir()) and not force:
        raise AuroraError(f"{out}: folder exists and is not empty; pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        for f in tmp.rglob("*"):
            if f.is_file():
                os.chmod(f, 0o666 & ~_umask())
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextmanager
def new_file(path: Path, mode: str = "w", private: bool = False) -> Iterator:
    """An open temporary file beside `path`, renamed onto it when the block ends without error. `private`: readable
    by the user alone (0600, as the temporary file is from the start), for keys."""
    path = Path(path)
    f = tempfile.NamedTemporaryFile(mode, encoding=None if "b" in mode else "utf-8", dir=path.parent,
                                    prefix=f".{path.name}.", delete=False)
    try:
        with f:
            yield f
        os.chmod(f.name, 0o600 if private else 0o666 & ~_umask())
        os.replace(f.name, path)
    except BaseException:
        if os.path.exists(f.name):
            os.unlink(f.name)
        raise


def write_text(path: Path, text: str, private: bool = False) -> None:
    """Write a text file through a temporary file in the same folder, then rename it into place (`private`: 0600)."""
    with new_file(path, private=private) as f:
        f.write(text)


def writable_folder(folder: Path, label: str, error: type[AuroraError] = AuroraError) -> Path:
    """`folder` made if missing and proven writable, or `error` naming `label` (the flag), before any work."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise error(f"{label} {folder}: is a file; choose a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".aurora-write-test."):
            pass
    except OSError as exc:
        raise error(f"{label} {folder}: cannot write there ({exc.strerror}); choose another folder") from None
    return folder


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fingerprint(*paths: str | Path | None) -> str:
    """A file's (or a folder's files') identity without reading it all: name, size, modification time and a
    hash of the first MiB of each. A model replaced at the same path gets another fingerprint."""
    digest = hashlib.sha256()
    for path in (Path(p) for p in paths if p):
        files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
        for f in files:
            stat = f.stat()
            digest.update(f"{f.name}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
            with open(f, "rb") as handle:
                digest.update(handle.read(1 << 20))
    return digest.hexdigest()[:16]


# ---------------------------------------------------------------- JSON from outside, bounded

MAX_JSON_DEPTH = 64  # real configs, datasets and mappings nest under 10 levels; 100,000 overflows Python's stack


def too_deep(value, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether lists and dicts in `value` nest deeper than `limit` (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def parse_json(text: str, where: str, what_to_do: str, error: type[AuroraError] = AuroraError):
    """`text` parsed as JSON, or `error` naming `where` (with line and column) and what to do.

    Nesting deeper than MAX_JSON_DEPTH is refused here, so no later step can overflow the stack on it.
    """
    deep = f"{where}: JSON nested more than {MAX_JSON_DEPTH} levels deep; {what_to_do}"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{where}:{exc.lineno}:{exc.colno}: invalid JSON ({exc.msg}); {what_to_do}") from None
    except RecursionError:
        raise error(deep) from None
    if too_deep(value):
        raise error(deep)
    return value


def read_json(path: Path, what_to_do: str, error: type[AuroraError] = AuroraError):
    """A JSON file, or `error` naming the file (and line and column) and what to do."""
    path = Path(path)
    if path.is_dir():
        raise error(f"{path}: is a folder, not a JSON file; {what_to_do}")
    if not path.is_file():
        raise error(f"{path}: missing; {what_to_do}")
    return parse_json(read_text(path, what_to_do, error), str(path), what_to_do, error)


def read_text(path: Path, what_to_do: str, error: type[AuroraError] = AuroraError) -> str:
    """A UTF-8 text file, or `error` naming it (not UTF-8, unreadable) and what to do."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise error(f"{path}: not UTF-8 text; {what_to_do}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read it ({exc.strerror}); {what_to_do}") from None
