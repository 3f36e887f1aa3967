"""A chat on a model that runs elsewhere: any OpenAI-compatible server (aurora-serve, llama.cpp's server, vLLM).

`RemoteEngine` has the face of `ChatEngine` that the terminal chat and the window use (`info`, `warnings`,
`stream`, `cancel`, `turn`, `save_state`, `close`): `stream` posts the conversation to `/chat/completions` with
`"stream": true` and yields the text of the server-sent events. Nothing connects anywhere unless the user gives
an address. Its KV cache and context are the server's: `remote` is True, `n_ctx` 0 (not known here).
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.parse
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generator

from aurora_core.errors import AuroraError

from .conversation import Conversation
from .engine import Generation, SamplingSettings


class RemoteError(AuroraError):
    pass


HANG_UP_POLL_S = 0.05  # how often a request checks its cancel event while the server is silent


@dataclass
class RemoteInfo:
    name: str
    path: str
    architecture: str = "remote"
    file_size: int = 0


class RemoteEngine:
    remote = True
    n_ctx = 0  # the server's; not known here

    def __init__(self, url: str, api_key: str | None = None, model: str | None = None, timeout: float = 600) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RemoteError(f"--remote {url!r}: give the server's address, e.g. http://127.0.0.1:8399/v1")
        self.url, self.parts, self.api_key, self.timeout = url.rstrip("/"), parts, api_key, timeout
        self.warnings: list[str] = []
        self._cancel, self._in_turn = threading.Event(), False
        self.model = model or self._first_model()
        self.info = RemoteInfo(name=f"{self.model} at {self.url}", path=self.url)

    def _connection(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.parts.scheme == "https" else http.client.HTTPConnection
        return cls(self.parts.hostname, self.parts.port, timeout=self.timeout)

    def _request(self, method: str, path: str, body: dict | None = None, cancel: threading.Event | None = None):
        """(connection, response) of one request; with `cancel`, setting it hangs up at once (`_Cancelled`), also
        while the server is silent (reading a long prompt) and nothing would arrive to check it between."""
        conn = self._connection()
        conn.hang_up = threading.Event()  # set by _close: ends the watch below
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        try:
            conn.connect()
            if cancel is not None:
                _hang_up_on(conn, cancel)
            conn.request(method, self.parts.path.rstrip("/") + path,
                         json.dumps(body, ensure_ascii=False).encode() if body is not None else None, headers)
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            _close(conn)
            if cancel is not None and cancel.is_set():
                raise _Cancelled() from None
            raise RemoteError(f"{self.url}: cannot reach the server "
                              f"({getattr(exc, 'strerror', None) or exc or type(exc).__name__})") from None
        if response.status != 200:
            text = response.read().decode("utf-8", "replace")
            _close(conn)
            try:
                message = json.loads(text)["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = text[:200] or response.reason
            raise RemoteError(f"{self.url}: the server said {response.status}: {message}")
        return conn, response

    def _first_model(self) -> str:
        conn, response = self._request("GET", "/models")
        try:
            data = json.loads(response.read())["data"]
            return str(data[0]["id"])
        except (ValueError, KeyError, IndexError, TypeError):
            raise RemoteError(f"{self.url}/models: no model listed; pass --model NAME") from None
        finally:
            _close(conn)

    @contextmanager
    def turn(self, cancel: threading.Event | None = None):
        """`ChatEngine.turn`'s face: the server keeps its own order; `cancel` becomes what `cancel()` sets."""
        self._cancel = cancel if cancel is not None else threading.Event()
        self._in_turn = True
        try:
            yield
        finally:
            self._in_turn = False

    def stream(self, conversation: Conversation, settings: SamplingSettings | None = None, drop_oldest: bool = True,
               state=None, cancel: threading.Event | None = None) -> Generator[str, None, Generation]:
        """The answer's text pieces as the server streams them; the `Generation` (with the server's usage) at the end."""
        s = settings or SamplingSettings()
        if cancel is not None or not self._in_turn:  # inside a turn without one: the turn's event
            self._cancel = cancel if cancel is not None else threading.Event()
        start = time.perf_counter()
        body = {"model": self.model, "messages": conversation.as_messages(), "stream": True,
                "stream_options": {"include_usage": True}, "max_tokens": s.max_tokens, "temperature": s.temperature,
                "top_p": s.top_p, **({"seed": s.seed} if s.seed is not None else {}),
                **({"stop": list(s.stop)} if s.stop else {})}
        gen = Generation(stop_reason="eos")
        try:
            conn, response = self._request("POST", "/chat/completions", body, self._cancel)
        except _Cancelled:
            return Generation(stop_reason="cancelled", seconds=time.perf_counter() - start)
        try:
            for raw in _lines(response, self._cancel):
                if self._cancel.is_set():
                    gen.stop_reason = "cancelled"
                    break
                line = raw.decode("utf-8", "replace").strip()
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                try:
                    event = json.loads(data)
                except ValueError:
                    raise RemoteError(f"{self.url}: the server sent something that is not JSON") from None
                if "error" in event:
                    raise RemoteError(f"{self.url}: {event['error'].get('message', 'the answer failed')}")
                usage = event.get("usage") or {}
                gen.prompt_tokens = usage.get("prompt_tokens", gen.prompt_tokens)
                gen.completion_tokens = usage.get("completion_tokens", gen.completion_tokens)
                for choice in event.get("choices") or []:
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        if not gen.text:
                            gen.time_to_first_token = time.perf_counter() - start
                        gen.text += piece
                        yield piece
                    if choice.get("finish_reason") == "length":
                        gen.stop_reason = "length"
            if self._cancel.is_set():
                gen.stop_reason = "cancelled"
        finally:
            _close(conn)  # also on cancel: the server sees the client go and stops
            gen.seconds = time.perf_counter() - start
        return gen

    def cancel(self) -> None:
        self._cancel.set()

    def save_state(self, path) -> int:  # the KV cache is the server's
        return 0

    def matching_ids(self, text: str, ids) -> None:  # the server tokenizes
        return None

    def close(self) -> None:
        pass


class _Cancelled(Exception):
    pass


def _hang_up_on(conn: http.client.HTTPConnection, cancel: threading.Event) -> None:
    """Shut the connection's socket when `cancel` is set (a read blocked on it returns), until `_close(conn)`."""
    over, sock = conn.hang_up, conn.sock

    def watch() -> None:
        while not over.is_set():
            if cancel.wait(HANG_UP_POLL_S):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return

    threading.Thread(target=watch, name="aurora-remote-hang-up", daemon=True).start()


def _close(conn: http.client.HTTPConnection) -> None:
    """Close the connection and end its hang-up watch (on every path: a failed request's watch would poll on)."""
    conn.close()
    conn.hang_up.set()


def _lines(response, cancel: threading.Event):
    """The response's lines until it ends, or until `cancel` hung up (then quietly)."""
    try:
        yield from response
    except (OSError, ValueError, http.client.HTTPException):
        if not cancel.is_set():
            raise
