"""The open chat as one object: its live conversation, its shown branch, its settings and the answer being written.

`ChatSession` is the only place that turns stored messages into the engine's `Conversation`; it keeps that
conversation (with the token ids each answer sampled, still in llama.cpp's KV cache) as turns are added, so a
turn reads nothing back from the database. It writes to the store as it goes and tells the views through
signals; it never touches a widget. A message's path from keystroke to token:

    Composer.submitted -> ChatSession.send -> store.add (question, empty answer) -> message_added x2
    -> GenerationThread (the knowledge base searched when the chat has one -> sources_shown; then engine.stream,
       off the GUI thread) -> piece -> answer_text (every RENDER_MS)
    -> Generation -> answer_ended(row, status) and generation(stats)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields, replace
from functools import partial

from PySide6.QtCore import QCoreApplication, QEvent, QObject, QTimer, Signal

from aurora_core.errors import AuroraError

from ..conversation import Conversation, Message
from ..engine import ChatEngine, Generation, SamplingSettings
from ..kb.sources import budget_for, message_with_sources, retrieve
from ..store import STATE_BUDGET, ChatRow, MessageRow, Store
from .worker import GenerationThread

RENDER_MS = 50  # the answer is redrawn at most this often while it streams
SAVE_EVERY_S = 1.0  # and saved this often (a crash loses at most this much of it)
CONTEXT_POLICIES = ("drop_oldest", "stop")
REMOTE_CONTEXT = 4096  # a remote model's context is not known here: the knowledge base's passages assume this
SAMPLING_KEYS = tuple(f.name for f in fields(SamplingSettings) if f.name in SamplingSettings.KEYS)


def sampling_for(settings: dict) -> SamplingSettings:
    """A chat's (or folder's) saved settings as SamplingSettings; missing keys take the engine's defaults."""
    chosen = {k: settings[k] for k in SAMPLING_KEYS if settings.get(k) is not None}
    try:
        return SamplingSettings(**chosen)
    except (AuroraError, TypeError):  # settings saved by an older version, or edited by hand
        return SamplingSettings()


@dataclass
class Streaming:
    """The answer being written: where it goes and what has arrived."""

    conv_id: int
    msg_id: int
    thread: GenerationThread
    text: str = ""
    dirty: bool = False
    saved_at: float = 0.0


class ChatSession(QObject):
    opened = Signal()  # another chat (or none) is shown: views rebuild from `chat` and `branch`
    message_added = Signal(object)  # a MessageRow appended to the shown branch
    answer_text = Signal(int, str)  # the answer being written: message id, its text so far
    answer_ended = Signal(object, str)  # its final MessageRow and status (done, stopped, error)
    generation = Signal(object)  # what the engine reports for the finished answer (Generation)
    notice = Signal(str)  # something the user should know about this turn (context outgrown)
    failed = Signal(str)  # the answer failed: a message for a dialog
    save_failed = Signal(str)  # the disk refused a write: the answer stays on screen
    streaming_changed = Signal(bool)
    sources_shown = Signal(int, list)  # answer id, the knowledge-base passages its question carried

    save_every_s = SAVE_EVERY_S
    save_states = True  # keep each chat's KV cache on disk, so a reopened chat answers without reading it again
    state_budget = STATE_BUDGET

    def __init__(self, store: Store, parent=None) -> None:
        super().__init__(parent)
        self.store = store
        self.engine: ChatEngine | None = None
        self.chat: ChatRow | None = None
        self.branch: list[MessageRow] = []
        self.conversation = Conversation()
        self.reply_ids: dict[int, list[int]] = {}  # answer id -> sampled ids (still in the KV cache)
        self.streaming: Streaming | None = None
        self.last_generation: Generation | None = None
        self.branch_reads = 0  # how often the shown branch was read from the store (tests count it)
        self.timer = QTimer(self)
        self.timer.setInterval(RENDER_MS)
        self.timer.timeout.connect(self._flush)

    # -- which chat -------------------------------------------------------------------------------

    @property
    def conv_id(self) -> int | None:
        return self.chat.id if self.chat else None

    def open(self, conv_id: int | None, message_id: int | None = None) -> None:
        """Show `conv_id` (at the version holding `message_id`, for a search hit); None shows nothing."""
        if message_id is not None:
            self.store.show_version(message_id)
        self.chat = self.store.conversation(conv_id) if conv_id is not None else None
        self._read_branch()
        self.opened.emit()

    def new(self, folder_id: int | None = None) -> int:
        """A new, empty chat (in `folder_id`, starting with its system prompt and settings), shown."""
        conv_id = self.store.create("", folder_id=folder_id)
        self.open(conv_id)
        return conv_id

    def reload(self) -> None:
        """Read the chat again (its title, settings, shown branch) after something else changed it."""
        if self.chat is not None:
            self.open(self.chat.id if self.store.exists(self.chat.id) else None)

    def _read_branch(self) -> None:
        self.branch = self.store.branch(self.chat.id) if self.chat else []
        self.branch_reads += 1
        self.conversation = Conversation(system=self.store.effective(self.chat.id)[0] if self.chat else None)
        for row in self.branch:
            if row.role == "user" and not (self.conversation.messages and
                                           self.conversation.messages[-1].role == "user"):
                self.conversation.add_user(message_with_sources(row.content, list(row.sources or ())))
            elif row.role == "assistant" and self.conversation.messages:
                ids = self.reply_ids.get(row.id) or (self.engine.matching_ids(row.content, row.token_ids)
                                                     if self.engine is not None and row.token_ids else None)
                self.conversation.add_assistant(row.content, ids)

    def effective_settings(self) -> dict:
        """The chat's settings over its folder's (a chat's own value wins)."""
        return self.store.effective(self.chat.id)[1] if self.chat else {}

    # -- turns ------------------------------------------------------------------------------------

    def send(self, text: str) -> None:
        """Add a user message (a new chat if none is open) and answer it."""
        if self.chat is None:
            self.new()
        if self.branch and self.branch[-1].role == "user":  # a question whose answer failed: replace it
            parent = self.branch.pop().parent_id
            self.conversation.messages.pop()
        else:
            parent = self.branch[-1].id if self.branch else None
        if not self.branch and not self.chat.title:
            self.store.rename(self.chat.id, text.splitlines()[0][:40])
            self.chat = replace(self.chat, title=text.splitlines()[0][:40])
        question = self._append(parent, "user", text)
        self.conversation.add_user(text)
        self._answer(question)

    def regenerate(self, answer_id: int | None = None) -> None:
        """A new version of the answer `answer_id` (default: the last one)."""
        answers = [r for r in self.branch if r.role == "assistant" and (answer_id in (None, r.id))]
        if self.busy or not answers:
            return
        question = answers[-1].parent_id
        self._truncate_after(question)
        self._answer(question)

    def edit(self, msg_id: int, text: str) -> None:
        """A new version of the question `msg_id` with `text`, answered."""
        row = next((r for r in self.branch if r.id == msg_id), None)
        if self.busy or row is None or not text.strip():
            return
        self._truncate_after(row.parent_id)
        question = self._append(row.parent_id, "user", text.strip())
        self.conversation.add_user(text.strip())
        self._answer(question)

    def flip(self, msg_id: int, delta: int) -> None:
        """Show another version of `msg_id` (and its newest continuation)."""
        versions = self.store.siblings(msg_id)
        target = versions[max(0, min(len(versions) - 1, versions.index(msg_id) + delta))]
        self.store.show_version(target)
        self._read_branch()
        self.opened.emit()

    def _truncate_after(self, parent_id: int | None) -> None:
        """Drop the shown messages below `parent_id` (a new version of its child follows) and re-read the version
        counts of what stays: one read of the branch."""
        if parent_id is not None:
            self.store.show_version(parent_id)
        self._read_branch()
        keep = next((i + 1 for i, r in enumerate(self.branch) if r.id == parent_id), 0)
        del self.branch[keep:]
        del self.conversation.messages[keep:]
        self.opened.emit()

    def _append(self, parent_id: int | None, role: str, content: str, status: str = "done") -> int:
        msg_id = self.store.add(self.chat.id, parent_id, role, content, status)
        versions = self.store.siblings(msg_id) if parent_id is not None or role == "user" else [msg_id]
        row = MessageRow(msg_id, parent_id, role, content, status, len(versions), len(versions))
        self.branch.append(row)
        self.message_added.emit(row)
        return msg_id

    # -- the answer being written -----------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self.streaming is not None or self.engine is None

    def _answer(self, question_id: int) -> None:
        settings = self.effective_settings()
        conversation = Conversation(self.conversation.system, list(self.conversation.messages),
                                    self.conversation.dropped_pairs)
        msg_id = self._append(question_id, "assistant", "", status="streaming")
        sampling = sampling_for(settings)
        thread = GenerationThread(self.engine, conversation, sampling,
                                  drop_oldest=settings.get("context_policy", "drop_oldest") == "drop_oldest",
                                  state=self.store.state_file(self.chat.id)
                                  if self.save_states and not self.engine.remote else None,
                                  state_budget=self.state_budget,
                                  retrieve=self._retrieval(settings, question_id, sampling), parent=self)
        self.streaming = Streaming(self.chat.id, msg_id, thread, saved_at=time.monotonic())
        thread.sources_found.connect(lambda sources: self._sources(question_id, msg_id, sources))
        thread.piece.connect(self._piece)
        thread.finished_generation.connect(self._finished)
        thread.failed.connect(self._failed)
        self.streaming_changed.emit(True)
        self.timer.start()
        thread.start()

    def _retrieval(self, settings: dict, question_id: int, sampling):
        """The knowledge-base search for a new question in a chat (or folder) that has one; None otherwise (also for
        a regenerated answer: its question keeps the passages it was first asked with)."""
        name = settings.get("knowledge_base")
        question = next((r for r in self.branch if r.id == question_id), None)
        if not name or question is None or question.sources:
            return None
        budget = budget_for(self.engine.n_ctx or REMOTE_CONTEXT, sampling.max_tokens)
        return partial(retrieve, name, question.content, budget)

    def _sources(self, question_id: int, answer_id: int, sources: list) -> None:
        """The passages that went in with the question: kept with it (so the chat is read again as the model saw
        it), and shown under the answer."""
        try:
            self.store.set_sources(question_id, sources)
        except AuroraError as exc:
            self.save_failed.emit(str(exc))
        for i, row in enumerate(self.branch):
            if row.id == question_id:
                self.branch[i] = replace(row, sources=tuple(sources))
                users = [k for k, m in enumerate(self.conversation.messages) if m.role == "user"]
                if users:
                    k = users[-1]
                    self.conversation.messages[k] = Message("user", message_with_sources(row.content, sources))
        self.sources_shown.emit(answer_id, sources)

    def _mine(self) -> Streaming | None:
        """The answer being written, if the signal came from its thread (not from one stopped before)."""
        stream = self.streaming
        return stream if stream is not None and self.sender() is stream.thread else None

    def _piece(self, piece: str) -> None:
        stream = self._mine()
        if stream is not None:
            stream.text += piece
            stream.dirty = True

    def _flush(self) -> None:
        stream = self.streaming
        if stream is None or not stream.dirty:
            return
        stream.dirty = False
        self.answer_text.emit(stream.msg_id, stream.text)
        if time.monotonic() - stream.saved_at >= self.save_every_s:
            self._save(stream, "streaming")

    def _save(self, stream: Streaming, status: str, token_ids: list[int] | None = None) -> None:
        try:
            self.store.update(stream.msg_id, stream.text, status, token_ids)
            stream.saved_at = time.monotonic()
        except AuroraError as exc:  # a full disk or a read-only file: the answer stays on screen
            self.save_failed.emit(str(exc))

    def _finished(self, gen: Generation) -> None:
        stream = self._mine()
        if stream is None:
            return
        stream.text = gen.text
        if stream.conv_id == self.conv_id:
            self.conversation.dropped_pairs = gen.dropped_turns // 2  # the engine keeps dropping these
        if gen.reply_ids is not None:
            self.reply_ids[stream.msg_id] = gen.reply_ids
        self._end(stream, "stopped" if gen.stop_reason == "cancelled" else "done")
        self.last_generation = gen
        self.generation.emit(gen)
        if gen.dropped_turns:
            self.notice.emit(str(gen.dropped_turns))

    def _failed(self, message: str) -> None:
        stream = self._mine()
        if stream is not None:
            self._end(stream, "error")
            self.failed.emit(message)

    def _end(self, stream: Streaming, status: str) -> None:
        self.timer.stop()
        self._save(stream, status, self.reply_ids.get(stream.msg_id))
        self.streaming = None
        stream.thread.wait()
        if stream.conv_id == self.conv_id:
            for i, row in enumerate(self.branch):
                if row.id == stream.msg_id:
                    self.branch[i] = replace(row, content=stream.text, status=status)
                    if self.conversation.messages[-1:] and self.conversation.messages[-1].role == "user":
                        self.conversation.add_assistant(stream.text, self.reply_ids.get(row.id))
                    self.answer_ended.emit(self.branch[i], status)
        self.streaming_changed.emit(False)

    def stop(self) -> None:
        """Stop the answer being written; what was written is kept."""
        if self.streaming is not None:
            self.streaming.thread.stop()

    def stop_and_wait(self) -> None:
        """Stop the answer and wait for its thread (before the model or the window closes)."""
        stream = self.streaming
        if stream is not None:
            stream.thread.stop()
            stream.thread.wait()
            QCoreApplication.sendPostedEvents(self, QEvent.Type.MetaCall)  # its last pieces and its end, now
            if self.streaming is stream:  # the thread ended without a word (it cannot, but never stream forever)
                self._end(stream, "stopped")
