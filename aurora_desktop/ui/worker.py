"""Long work off the GUI thread: loading a model, streaming an answer, importing chats; each talks through signals."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QThread, Signal

from aurora_core.errors import AuroraError

from .. import import_chats
from ..conversation import Conversation, Message
from ..credentials import forget_key, save_key
from ..engine import ChatEngine, EngineConfig, SamplingSettings, consume
from ..remote import RemoteEngine
from ..store import prune_states

CONNECT_TIMEOUT_S = 15  # a server that does not list its models by then is reported, not waited for
ANSWER_TIMEOUT_S = 600  # the longest silence while a remote answer streams


class GenerationThread(QThread):
    """Streams one answer. `piece` per text piece, then `finished(Generation)` or `failed(message)`.

    Stop sets this answer's cancel event from the GUI thread: the engine checks it between tokens and
    between prompt-evaluation steps, so it stops at once, also while the prompt is being read (or while the
    answer waits for the engine that aurora-serve is using).
    """

    piece = Signal(str)
    finished_generation = Signal(object)
    failed = Signal(str)
    sources_found = Signal(list)  # the knowledge base's passages that went in with the question

    def __init__(self, engine: ChatEngine, conversation: Conversation, settings: SamplingSettings,
                 drop_oldest: bool = True, state: Path | None = None, state_budget: int = 0,
                 retrieve: Callable[[], tuple[str, list[dict]]] | None = None, parent=None) -> None:
        super().__init__(parent)
        self.engine, self.conversation, self.settings, self.drop_oldest = engine, conversation, settings, drop_oldest
        self.state, self.state_budget, self.retrieve = state, state_budget, retrieve
        self.cancel_event = threading.Event()

    def run(self) -> None:
        try:
            if self.retrieve is not None:  # the knowledge base is searched here, off the GUI thread
                text, sources = self.retrieve()
                if sources:
                    self.conversation.messages[-1] = Message("user", text)  # the thread's own copy of the turn
                    self.sources_found.emit(sources)
            with self.engine.turn(self.cancel_event):  # the answer and its saved KV state, with no other in between
                gen = consume(self.engine.stream(self.conversation, self.settings, self.drop_oldest, self.state),
                              self.piece.emit)
                if self.state is not None:  # the chat's KV cache, for the next time it is opened (also here, off
                    self.engine.save_state(self.state)  # the GUI thread), within the states' disk budget
                    prune_states(self.state.parent, self.state_budget, keep=self.state)
        except AuroraError as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # a bug: shown in full rather than swallowed
            self.failed.emit(f"{type(exc).__name__}: {exc}")
        else:
            self.finished_generation.emit(gen)

    def stop(self) -> None:
        self.cancel_event.set()  # this answer's alone (aurora-serve may be answering another program)


class LoadThread(QThread):
    """Loads a GGUF into a ChatEngine. Cancelling discards the engine when llama.cpp finishes with it."""

    loaded = Signal(object)
    failed = Signal(str)

    def __init__(self, path: str, config: EngineConfig, parent=None) -> None:
        super().__init__(parent)
        self.path, self.config, self.cancelled = path, config, False

    def run(self) -> None:
        try:
            engine = ChatEngine(self.path, self.config)
        except AuroraError as exc:
            self.failed.emit(str(exc))
            return
        except Exception as exc:
            self.failed.emit(f"{type(exc).__name__}: {exc}")
            return
        if self.cancelled:
            engine.close()
            return
        self.loaded.emit(engine)


class ConnectThread(QThread):
    """Connects to an OpenAI-compatible server (it lists its models first) and keeps its key (the system keyring may
    wait on the desktop's secret service), off the GUI thread: `connected(engine, note)` (note: "" or why the key
    was not kept) or `failed(message)`."""

    connected = Signal(object, str)
    failed = Signal(str)

    def __init__(self, url: str, api_key: str | None, model: str | None, parent=None) -> None:
        super().__init__(parent)
        self.url, self.api_key, self.model, self.cancelled = url, api_key, model, False

    def run(self) -> None:
        try:
            engine = RemoteEngine(self.url, self.api_key, self.model, timeout=CONNECT_TIMEOUT_S)
        except AuroraError as exc:
            self.failed.emit(str(exc))
            return
        engine.timeout = ANSWER_TIMEOUT_S
        if self.cancelled:
            return
        note = ""
        try:  # the key for the next time, never in the chats or the settings file
            save_key(self.url, self.api_key) if self.api_key else forget_key(self.url)
        except OSError as exc:
            note = exc.strerror or str(exc)
        self.connected.emit(engine, note)


class ImportThread(QThread):
    """Imports an exported chat file through `aurora_desktop.import_chats` in a process of its own (so a 200 MB
    file never stalls the window): `imported(ids)` when the whole file is in, `failed(message)` when none of it is."""

    imported = Signal(list)
    failed = Signal(str)

    def __init__(self, database: Path, path: str, parent=None) -> None:
        super().__init__(parent)
        self.database, self.path = database, path

    def run(self) -> None:
        result = subprocess.run(import_chats.command(self.database, self.path), capture_output=True, text=True)
        if result.returncode == 0:
            self.imported.emit(json.loads(result.stdout))
        else:
            lines = result.stderr.strip().splitlines()
            self.failed.emit(lines[-1] if lines else f"{self.path}: the import stopped (exit {result.returncode})")
