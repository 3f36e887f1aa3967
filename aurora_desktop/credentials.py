"""API keys for remote servers: in the system keyring where there is one, else in a file only the user can read.

    save_key("http://gpu-box:8080/v1", "sk-…")   -> "keyring" or the file's path (where it went)
    load_key("http://gpu-box:8080/v1")           -> the key or None
    forget_key("http://gpu-box:8080/v1")

Never in the chats database and never in the window's settings file. The keyring is the `keyring` package's
default backend (Secret Service, macOS Keychain, Windows Credential Locker); when it has none (a bare Linux
session) or refuses, the key goes to `~/.config/Aurora/remote-keys.json`, written 0600.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from aurora_core.files import read_json, write_text

SERVICE = "Aurora Desktop"
log = logging.getLogger(__name__)


def config_dir() -> Path:
    """The user's config folder for Aurora's keys (`aurora-serve`'s too)."""
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "Aurora"


def key_file() -> Path:
    return config_dir() / "remote-keys.json"


def _keyring():
    """The keyring module when it has a usable backend, else None."""
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        return None
    try:
        backend = keyring.get_keyring()
    except Exception:  # noqa: BLE001 -- a broken backend configuration is "no keyring"
        return None
    return None if isinstance(backend, fail.Keyring) else keyring


def _read_file() -> dict[str, str]:
    path = key_file()
    if not path.is_file():
        return {}
    try:
        data = read_json(path, "delete it and enter the key again")
    except Exception as exc:  # noqa: BLE001 -- an unreadable key file means no saved keys, said in the log
        log.warning("%s: ignored (%s)", path, exc)
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write_file(keys: dict[str, str]) -> None:
    key_file().parent.mkdir(parents=True, exist_ok=True)
    write_text(key_file(), json.dumps(keys, indent=1), private=True)


def save_key(url: str, key: str) -> str:
    """Keep `key` for `url`; returns "keyring" or the file it went to."""
    ring = _keyring()
    if ring is not None:
        try:
            ring.set_password(SERVICE, url, key)
            _drop_from_file(url)
            return "keyring"
        except Exception as exc:  # noqa: BLE001 -- a locked or refusing keyring: the file instead
            log.warning("the system keyring refused the key (%s); it is kept in %s", exc, key_file())
    keys = _read_file()
    keys[url] = key
    _write_file(keys)
    return str(key_file())


def load_key(url: str) -> str | None:
    ring = _keyring()
    if ring is not None:
        try:
            key = ring.get_password(SERVICE, url)
        except Exception:  # noqa: BLE001
            key = None
        if key:
            return key
    return _read_file().get(url)


def forget_key(url: str) -> None:
    ring = _keyring()
    if ring is not None:
        try:
            ring.delete_password(SERVICE, url)
        except Exception:  # noqa: BLE001 -- there was none
            pass
    _drop_from_file(url)


def _drop_from_file(url: str) -> None:
    keys = _read_file()
    if url in keys:
        del keys[url]
        _write_file(keys)
