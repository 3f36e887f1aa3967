"""Chats imported in a process of their own: `python -m aurora_desktop.import_chats DATABASE FILE`.

The window runs this for File → Import so that reading, parsing and storing a 200 MB export never holds the
window's interpreter (a JSON parse is one long C call that keeps Python's lock). The whole file goes in, in one
transaction, or none of it; the ids of the new chats are printed as JSON, an error as one line (exit 2).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from aurora_core.errors import AuroraError

COMMAND = "import-chats"  # the installers' executable runs it as `aurora-desktop import-chats DATABASE FILE`


def command(database: Path, path: str | Path) -> list[str]:
    """The command line that imports `path` into `database`, for a checkout and for the installers' executable."""
    if getattr(sys, "frozen", False):
        return [sys.executable, COMMAND, str(database), str(path)]
    return [sys.executable, "-m", "aurora_desktop.import_chats", str(database), str(path)]


def main(argv: list[str] | None = None) -> int:
    from .store import Store

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m aurora_desktop.import_chats DATABASE FILE", file=sys.stderr)
        return 2
    try:
        store = Store(argv[0])
        try:
            ids = store.import_file(argv[1])
        finally:
            store.close()
    except AuroraError as exc:
        print(str(exc).replace("\n", " "), file=sys.stderr)
        return 2
    print(json.dumps(ids))
    return 0


if __name__ == "__main__":
    sys.exit(main())
