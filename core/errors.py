"""One exception base for the user's mistakes, and the wrapper every command's `main` runs in.

`AuroraError` (and its subclasses) is a problem with the user's input or machine: the command prints
it as one line and exits 2. Any other exception is a bug and stays a traceback: a bug must not be
dressed up as a user error. A closed stdout (`aurora-export inspect F | head`) is not an error at all.
"""

from __future__ import annotations

import os
import sys
from typing import Callable

USER_ERROR = 2
INTERRUPTED = 130


class AuroraError(Exception):
    """A problem the user can fix; the message names the file (line, row or tensor) and what to do."""


def run_main(prog: str, body: Callable[[], int], terminate_like_ctrl_c: bool = True) -> int:
    """Run a command's body: AuroraError -> one line + exit 2, Ctrl-C -> 130, closed stdout -> quiet.

    SIGTERM and SIGHUP are turned into KeyboardInterrupt, so a killed export or training run cleans up
    its partial outputs exactly as after Ctrl-C (not for a Qt window, whose event loop must end it).
    """
    if terminate_like_ctrl_c:
        _terminate_like_ctrl_c()
    try:
        return body()
    except AuroraError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return USER_ERROR
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; no partial output was left", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:
        return _quiet_broken_pipe()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _terminate_like_ctrl_c() -> None:
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, _interrupt)


def _quiet_broken_pipe() -> int:
    """The reader went away: point stdout at /dev/null so the interpreter's final flush stays silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 0
