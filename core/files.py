"""Write a folder or a file so that readers only ever see it whole; hash a file.

Outputs follow the user's umask (as `open` would), whatever temporary-file helper made them.
"""

from __future__ import annotations

import hashlib
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
def new_file(path: Path, mode: str = "w") -> Iterator:
    """An open temporary file beside `path`, renamed onto it when the block ends without error."""
    path = Path(path)
    f = tempfile.NamedTemporaryFile(mode, encoding=None if "b" in mode else "utf-8", dir=path.parent,
                                    prefix=f".{path.name}.", delete=False)
    try:
        with f:
            yield f
        os.chmod(f.name, 0o666 & ~_umask())
        os.replace(f.name, path)
    except BaseException:
        if os.path.exists(f.name):
            os.unlink(f.name)
        raise


def write_text(path: Path, text: str) -> None:
    """Write a text file through a temporary file in the same folder, then rename it into place."""
    with new_file(path) as f:
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
