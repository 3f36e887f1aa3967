"""The chat engine: one GGUF, one conversation at a time, tokens streamed as text.

    engine = ChatEngine("aurora-q4_k_m.gguf")
    conv = Conversation(system="你是一个乐于助人的助手。")
    conv.add_user("你好")
    gen = consume(engine.stream(conv), lambda piece: print(piece, end=""))  # whole UTF-8 characters
    conv.add_assistant(gen.text, gen.reply_ids)

From keystroke to token: `stream` renders the conversation with the GGUF's own chat template
(sandboxed, `aurora_core.chat_format`), tokenizes it fragment by fragment exactly as training did
(Mixtral-Instruct's reference tokenization), drops the
oldest turns if the conversation no longer fits the context (never the system prompt), evaluates
only the tokens that are not already in llama.cpp's KV cache, then samples token by token until
EOS, a stop string, `max_tokens` or `cancel()`.

`stream` is a generator of text pieces whose return value is the `Generation` (use `consume`), so
nothing about an answer is shared between threads. `Llama` is not thread-safe: one answer at a time holds the
engine (`stream` takes its turn lock; a second caller, e.g. the window while aurora-serve answers a program,
waits); any thread may call `cancel()`, or set the `cancel` event it gave to `stream` to stop that answer alone.
"""

from __future__ import annotations

import codecs
import logging
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Generator

from aurora_core.chat_format import CHAT_TEMPLATE, ChatTemplate, ChatTemplateError, Reply, encode_pieces, probe
from aurora_core.errors import AuroraError
from aurora_core.files import fingerprint
from aurora_core.llama_runtime import (
    StateIgnored, can_shift, evaluate_with_prefix, load_llama, load_sequence, save_sequence, shift_cache,
)
from aurora_core.model_check import DEFAULT_N_CTX, ModelCheckError, ModelInfo, check_gguf

from .conversation import Conversation

log = logging.getLogger("aurora.engine")


@dataclass
class EngineConfig:
    """How llama.cpp loads the model."""

    n_ctx: int = DEFAULT_N_CTX
    """Context size in tokens (0: the model's own)."""
    n_threads: int | None = None
    """CPU threads (default: llama.cpp's choice)."""
    n_gpu_layers: int = 0
    """Layers offloaded to a GPU, if llama.cpp was built with one (-1: all)."""
    n_batch: int = 512
    """Prompt tokens evaluated per step (cancellation is checked between steps)."""
    seed: int = 0xFFFFFFFF
    """Sampling seed (0xFFFFFFFF: random)."""
    lora_path: str | None = None
    """Optional GGUF LoRA adapter applied at load time."""
    kv_cache_type: str = "f16"
    """K/V cache element type: f16, or q8_0 (half the memory; needs flash attention, which it turns on)."""
    flash_attn: bool = False
    """Flash attention (smaller compute buffer; required by a q8_0 V cache)."""
    context_shift: bool = True
    """When a chat outgrows the context, its oldest turns are dropped down to about half the context, and:
    shift (True) moves the kept turns' cells in the KV cache back into place, so nothing is read again
    (seamless, approximate: their keys and values were computed with the dropped turns in view); exact
    (False) evaluates the kept turns again, once (later turns reuse the cache again)."""

    def __post_init__(self) -> None:
        if self.kv_cache_type not in KV_CACHE_TYPES:
            raise AuroraError(f"KV cache type {self.kv_cache_type!r}: choose {' or '.join(KV_CACHE_TYPES)}")
        if self.n_ctx < 0:
            raise AuroraError(f"context size {self.n_ctx}: must be 0 (the model's own) or a positive number")


KV_CACHE_TYPES = {"f16": 1, "q8_0": 8}  # llama.cpp's GGML_TYPE_F16, GGML_TYPE_Q8_0
KV_BYTES_PER_ELEMENT = {"f16": 2.0, "q8_0": 34 / 32}


class SettingsError(AuroraError, ValueError):
    """A sampling setting out of its range; the message names the setting and the range."""


# name: (type, lowest, highest, what it does); the ranges llama.cpp's samplers accept.
MAX_SEED = 2**32 - 1  # llama.cpp's sampler seed is a uint32; a bigger one would be cut silently
SAMPLING_RANGES = {
    "temperature": (float, 0.0, 5.0, "randomness; 0 always picks the most likely token"),
    "top_p": (float, 0.0, 1.0, "sample from the smallest set of tokens whose probabilities add up to this"),
    "top_k": (int, 0, 1000, "sample from this many most likely tokens (0: all)"),
    "min_p": (float, 0.0, 1.0, "drop tokens less likely than this fraction of the most likely one"),
    "repeat_penalty": (float, 0.5, 2.0, "penalty for repeating recent tokens (1: none)"),
    "max_tokens": (int, 1, 1 << 20, "longest answer in tokens"),
}


@dataclass
class SamplingSettings:
    """How each answer is sampled (ranges in SAMPLING_RANGES, checked when made and when changed)."""

    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    max_tokens: int = 512
    seed: int | None = None
    stop: tuple[str, ...] = ()

    KEYS = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "max_tokens", "seed")

    def __post_init__(self) -> None:
        for key, (kind, lo, hi, _) in SAMPLING_RANGES.items():
            value = getattr(self, key)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not (lo <= value <= hi):
                raise SettingsError(f"{key} {value!r} is out of range; choose {kind.__name__} from {lo} to {hi}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)
                                      or not 0 <= self.seed <= MAX_SEED):
            raise SettingsError(f"seed {self.seed!r} is out of range; choose a whole number from 0 to {MAX_SEED:,} "
                                "(or none: random)")

    def set(self, key: str, value: str) -> None:
        """Set one field from text (`/set temperature=0.2`), with a message naming the key on error."""
        if key not in self.KEYS:
            raise SettingsError(f"unknown setting {key!r}; choose from {', '.join(self.KEYS)}")
        kind = int if key in ("top_k", "max_tokens", "seed") else float
        try:
            new = None if key == "seed" and value in ("none", "") else kind(value)
        except ValueError:
            raise SettingsError(f"{key}={value!r}: expected a {kind.__name__}") from None
        old = getattr(self, key)
        setattr(self, key, new)
        try:
            self.__post_init__()
        except SettingsError:
            setattr(self, key, old)
            raise

    def describe(self) -> str:
        return ", ".join(f"{k}={getattr(self, k)}" for k in self.KEYS)


@dataclass
class Generation:
    """What the last `stream` did."""

    text: str = ""
    prompt_tokens: int = 0
    reused_tokens: int = 0
    restored_tokens: int = 0
    """Tokens the KV cache got back from the chat's saved state (before reuse was counted)."""
    shifted_tokens: int = 0
    """KV cache cells of dropped turns removed by a context shift (the kept turns were not read again)."""
    completion_tokens: int = 0
    dropped_turns: int = 0
    stop_reason: str = ""  # "eos", "stop", "length", "cancelled"
    time_to_first_token: float = 0.0
    seconds: float = 0.0
    sampled_ids: list[int] = field(default_factory=list)

    @property
    def reply_ids(self) -> list[int] | None:
        """The answer's ids for the next turn (`Message.reply_ids`): the sampled ids, when they spell exactly
        `text` (not after a stop string cut it)."""
        return None if self.stop_reason == "stop" else list(self.sampled_ids)

    @property
    def tokens_per_second(self) -> float:
        gen = self.seconds - self.time_to_first_token
        return (self.completion_tokens - 1) / gen if gen > 0 and self.completion_tokens > 1 else 0.0


class ContextFullError(AuroraError):
    pass


class Utf8Stream:
    """Bytes in, whole characters out: a multi-byte character split across tokens waits for its rest."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, data: bytes) -> str:
        return self._decoder.decode(data)

    def flush(self) -> str:
        return self._decoder.decode(b"", final=True)


class ChatEngine:
    remote = False  # RemoteEngine (remote.py) has the same face for a model on a server

    def __init__(self, model_path: str | Path, config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        self.info: ModelInfo = check_gguf(model_path, n_ctx=self.config.n_ctx,
                                          kv_bytes_per_element=KV_BYTES_PER_ELEMENT[self.config.kv_cache_type])
        lora = self.config.lora_path
        if lora is not None and not Path(lora).is_file():
            raise ModelCheckError(f"{lora}: no such LoRA file; export one with aurora-export lora")
        self.warnings: list[str] = []
        self.template = self._load_template(self.info.chat_template)
        self.llm = load_llama(self.info.path, lora=lora, n_ctx=self.config.n_ctx, n_threads=self.config.n_threads,
                              n_gpu_layers=self.config.n_gpu_layers, n_batch=self.config.n_batch,
                              seed=self.config.seed, type_k=KV_CACHE_TYPES[self.config.kv_cache_type],
                              type_v=KV_CACHE_TYPES[self.config.kv_cache_type],
                              flash_attn=self.config.flash_attn or self.config.kv_cache_type != "f16")
        # llama-cpp-python 0.3.36 compares the adapter pointer with None, so a LoRA that llama.cpp
        # rejected (a NULL pointer) passes silently; check it here.
        if lora is not None and not getattr(self.llm, "_lora_adapter", None):
            self.llm.close()
            raise ModelCheckError(f"{self.info.path}: llama.cpp could not load it with the LoRA {lora} "
                                  "(the adapter does not fit this model); export the LoRA against this base")
        self.bos, self.eos = self.llm.token_bos(), self.llm.token_eos()
        self.shifts = self.config.context_shift and can_shift(self.llm)
        if self.config.context_shift and not self.shifts:
            self.warnings.append("this model's KV cache cannot be shifted; a chat that outgrows the context has "
                                 "its kept turns read again once (the exact policy)")
        self._cancel = threading.Event()  # the answer being streamed now's
        self._turn = threading.RLock()  # one answer at a time (the window and aurora-serve share an engine)
        self._turn_depth = 0
        self._token_cache: dict[str, list[int]] = {}
        self._state_key: dict | None = None
        self.cache_owner: str | None = None  # the saved state (a chat's) that the KV cache holds now

    def _load_template(self, source: str | None) -> ChatTemplate:
        if not source:
            self.warnings.append("the model carries no chat template; using the built-in Mixtral-Instruct format")
            return ChatTemplate(CHAT_TEMPLATE)
        try:
            template = ChatTemplate(source)
            probe(template)
            return template
        except ChatTemplateError as exc:
            self.warnings.append(f"the model's chat template was refused ({exc}); "
                                 "using the built-in Mixtral-Instruct format")
            return ChatTemplate(CHAT_TEMPLATE)

    # -- formatting -------------------------------------------------------------------------------

    def prompt_tokens(self, conversation: Conversation) -> list[int]:
        """Token ids of the conversation as the model sees it, ready for the next answer.

        Text is tokenized fragment by fragment exactly as training formatted it. An answer this
        engine wrote keeps the ids it sampled, which are already in the KV cache, so the next turn
        evaluates only its new tokens.
        """
        offset = 1 if conversation.system else 0
        replies = {i + offset: Reply(tuple(m.reply_ids), m.content) for i, m in enumerate(conversation.messages)
                   if m.role == "assistant" and m.reply_ids is not None}
        pieces = self._render(conversation.as_messages(), replies)
        return encode_pieces(pieces, self._encode_cached, self.bos, self.eos)

    def _render(self, messages: list[dict], replies: dict):
        """The GGUF's template; if it fails at this turn, the built-in format from now on, with a note."""
        try:
            return self.template.render(messages, replies=replies)
        except ChatTemplateError as exc:
            if self.template.source == CHAT_TEMPLATE:
                raise
            self.warnings.append(f"the model's chat template failed ({exc}); using the built-in "
                                 "Mixtral-Instruct format from now on")
            self.template = ChatTemplate(CHAT_TEMPLATE)
            return self.template.render(messages, replies=replies)

    def _encode(self, text: str) -> list[int]:
        """Plain text to ids (llama.cpp adds the word-start, as SentencePiece does; never a control token)."""
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def _encode_cached(self, text: str) -> list[int]:
        """`_encode`, remembered per fragment: fitting a long chat renders it several times."""
        ids = self._token_cache.get(text)
        if ids is None:
            if len(self._token_cache) > 100_000:
                self._token_cache.clear()
            ids = self._token_cache[text] = self._encode(text)
        return ids

    def fit(self, conversation: Conversation, max_tokens: int, drop_oldest: bool = True) -> tuple[list[int], int]:
        """Prompt ids that leave room for `max_tokens`, dropping the oldest turns (never the system prompt).

        When the conversation does not fit, the fewest whole user/assistant pairs are dropped that bring it
        down to half the context (or, if no number of pairs does, that make it fit at all): the next turns
        then fit without dropping again, so the KV cache serves them. They are found by bisection, each
        rendering's fragments tokenized once (cached): O(n log n) in the number of messages, not O(n²).
        With `drop_oldest=False` (the "stop at the limit" policy) a conversation that no longer fits is refused.
        """
        n_ctx = self.llm.n_ctx()
        messages = conversation.messages

        def ids_without(pairs: int) -> list[int]:
            return self.prompt_tokens(Conversation(system=conversation.system, messages=messages[2 * pairs:]))

        most = max(0, (len(messages) - 1) // 2)  # keep at least the last message
        start = min(conversation.dropped_pairs, most) if drop_oldest else 0
        ids, dropped = ids_without(start), 2 * start
        if len(ids) + max_tokens > n_ctx:
            if not drop_oldest:
                raise ContextFullError(f"the conversation is {len(ids):,} tokens and the answer needs room for "
                                       f"{max_tokens:,} more, beyond the context of {n_ctx:,}; start a new chat "
                                       "or let the oldest turns be dropped")
            fits = lambda c: len(c) + max_tokens <= n_ctx  # noqa: E731
            half = lambda c: fits(c) and len(c) <= n_ctx // 2  # noqa: E731
            ok = half if half(ids_without(most)) else fits
            lo, hi = start + 1, most
            best = ids_without(hi) if hi > start else ids
            dropped = hi
            while lo < hi:
                mid = (lo + hi) // 2
                candidate = ids_without(mid)
                if ok(candidate):
                    best, dropped, hi = candidate, mid, mid
                else:
                    lo = mid + 1
            ids, dropped = best, 2 * dropped
        conversation.dropped_pairs = dropped // 2
        if len(ids) >= n_ctx:
            raise ContextFullError(f"the message is {len(ids):,} tokens, more than the context of {n_ctx:,}; "
                                   "shorten it or load the model with a larger context")
        return ids, dropped

    # -- generation -------------------------------------------------------------------------------

    def cancel(self) -> None:
        """Stop the answer being streamed (from any thread); the engine is ready for the next turn."""
        self._cancel.set()

    @contextmanager
    def turn(self, cancel: threading.Event | None = None):
        """Hold the engine (waiting while another thread's answer runs), e.g. for an answer and the saving of its
        KV state together. `cancel` (or a fresh event) becomes what `cancel()` sets, so a stop pressed for one
        answer never stops another. Re-entrant: `stream` inside a turn keeps the turn's event."""
        with self._turn:
            outer = self._cancel
            if cancel is not None or self._turn_depth == 0:
                self._cancel = cancel if cancel is not None else threading.Event()
            self._turn_depth += 1
            try:
                yield
            finally:
                self._turn_depth -= 1
                if self._turn_depth:
                    self._cancel = outer

    def stream(self, conversation: Conversation, settings: SamplingSettings | None = None,
               drop_oldest: bool = True, state: str | Path | None = None,
               cancel: threading.Event | None = None) -> Generator[str, None, Generation]:
        """Text pieces of the next assistant answer to `conversation` (whose last message is the user's);
        the generator's return value is the `Generation`. `state`: where this chat's KV state is saved
        (`save_state`); it is restored first when the cache holds another chat, so only what differs is read.
        `cancel`: an event that stops this answer (also while it waits for the engine)."""
        with self.turn(cancel):
            return (yield from self._stream(conversation, settings or SamplingSettings(), drop_oldest, state))

    def _stream(self, conversation: Conversation, s: SamplingSettings, drop_oldest: bool,
                state: str | Path | None) -> Generator[str, None, Generation]:
        start = time.perf_counter()
        if self._cancel.is_set():  # stopped while it waited for its turn
            return Generation(stop_reason="cancelled")
        restored = self.restore_state(state) if state is not None else 0
        self.cache_owner = str(state) if state is not None else None  # from here on the cache holds this chat
        ids, dropped = self.fit(conversation, min(s.max_tokens, max(16, self.llm.n_ctx() // 2)), drop_oldest)
        gen = Generation(prompt_tokens=len(ids), dropped_turns=dropped, restored_tokens=restored)
        if dropped and self.shifts:
            gen.shifted_tokens = shift_cache(self.llm, ids)
        gen.reused_tokens = self._evaluate_prompt(ids)
        if self._cancel.is_set():
            gen.stop_reason, gen.seconds = "cancelled", time.perf_counter() - start
            return gen
        return (yield from self._generate(ids, s, gen, start))

    def stream_text(self, prompt: str, settings: SamplingSettings | None = None,
                    cancel: threading.Event | None = None) -> Generator[str, None, Generation]:
        """A plain completion of `prompt` (after BOS, no chat template), for the OpenAI completions endpoint."""
        with self.turn(cancel):
            return (yield from self._stream_text(prompt, settings or SamplingSettings()))

    def _stream_text(self, prompt: str, s: SamplingSettings) -> Generator[str, None, Generation]:
        start = time.perf_counter()
        if self._cancel.is_set():
            return Generation(stop_reason="cancelled")
        self.cache_owner = None
        ids = [self.bos] + self._encode(prompt)
        if len(ids) >= self.llm.n_ctx():
            raise ContextFullError(f"the prompt is {len(ids):,} tokens, more than the context of {self.llm.n_ctx():,}")
        gen = Generation(prompt_tokens=len(ids))
        gen.reused_tokens = self._evaluate_prompt(ids)
        if self._cancel.is_set():
            gen.stop_reason, gen.seconds = "cancelled", time.perf_counter() - start
            return gen
        return (yield from self._generate(ids, s, gen, start, word_start=False))

    def _generate(self, ids: list[int], s: SamplingSettings, gen: Generation, start: float,
                  word_start: bool = True) -> Generator[str, None, Generation]:
        """Sample after the evaluated `ids` until EOS, a stop string, the budget or `cancel()`; text pieces out.
        `word_start`: the first piece's word-start space (`▁`) is not part of an answer's text."""
        if s.seed is not None:
            self.llm.set_seed(s.seed)
        utf8 = Utf8Stream()
        pending = ""  # text held back while it could be the start of a stop string
        budget = min(s.max_tokens, self.llm.n_ctx() - len(ids))
        gen.stop_reason = "length"
        tokens = self.llm.generate(ids, top_k=s.top_k, top_p=s.top_p, min_p=s.min_p, temp=s.temperature,
                                   repeat_penalty=s.repeat_penalty, reset=True)
        try:
            for token in tokens:
                if gen.completion_tokens == 0:
                    gen.time_to_first_token = time.perf_counter() - start
                if token == self.eos:
                    gen.stop_reason = "eos"
                    break
                gen.completion_tokens += 1
                gen.sampled_ids.append(token)
                pending += utf8.push(self.llm.detokenize([token]))
                if word_start and pending:
                    pending, word_start = pending[1:] if pending.startswith(" ") else pending, False
                out, pending, hit = _split_stop(pending, s.stop)
                if out:
                    gen.text += out
                    yield out
                if hit:
                    gen.stop_reason = "stop"
                    break
                if self._cancel.is_set():
                    gen.stop_reason = "cancelled"
                    break
                if gen.completion_tokens >= budget:
                    break
        finally:
            tokens.close()
            gen.seconds = time.perf_counter() - start
        if gen.stop_reason != "stop":
            tail = pending + utf8.flush()
            if tail:
                gen.text += tail
                yield tail
        return gen

    def _evaluate_prompt(self, ids: list[int]) -> int:
        """Evaluate what the KV cache does not hold yet, in steps that `cancel()` can interrupt."""
        return evaluate_with_prefix(self.llm, ids, self.config.n_batch, self._cancel.is_set)

    def matching_ids(self, text: str, ids) -> list[int] | None:
        """`ids` when this model's vocabulary writes them as `text` (an answer's saved ids, checked before they are
        reused: another model's ids mean other text), else None and the text is tokenized again."""
        n_vocab = self.llm.n_vocab()
        if not ids or not all(0 <= i < n_vocab for i in ids):
            return None
        try:
            written = self.llm.detokenize(list(ids)).decode("utf-8")
        except UnicodeDecodeError:
            return None
        return list(ids) if written.removeprefix(" ") == text else None

    # -- a chat's KV cache on disk ----------------------------------------------------------------

    def state_key(self) -> dict:
        """What a saved KV state is valid for: this model file, LoRA, context size and cache types."""
        if self._state_key is None:
            c = self.config
            self._state_key = {"model": fingerprint(self.info.path),
                               "lora": fingerprint(c.lora_path) if c.lora_path else None,
                               "n_ctx": self.llm.n_ctx(), "kv_cache_type": c.kv_cache_type,
                               "flash_attn": bool(c.flash_attn or c.kv_cache_type != "f16")}
        return self._state_key

    def save_state(self, path: str | Path) -> int:
        """Save what the KV cache holds (the chat just answered) to `path`; its size in bytes, or 0 when the
        disk refuses (one line in the log; the chat goes on)."""
        if self.llm.n_tokens == 0:
            return 0
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            size = save_sequence(self.llm, Path(path), self.state_key())
        except OSError as exc:
            log.warning("%s: the chat's KV state was not saved (%s)", path, exc.strerror or exc)
            return 0
        self.cache_owner = str(path)
        return size

    def restore_state(self, path: str | Path) -> int:
        """Load a state `save_state` wrote, when it fits this model and settings; the tokens restored, or 0 when
        there is none or it cannot be used (one line in the log; the chat is then evaluated as usual)."""
        path = Path(path)
        if str(path) == self.cache_owner or not path.is_file():
            return 0
        try:
            n = load_sequence(self.llm, path, self.state_key())
        except StateIgnored as exc:
            log.warning("%s; the chat is read instead", exc)
            self.cache_owner = None
            return 0
        os.utime(path)  # recently used: the last to go when the states outgrow their budget
        self.cache_owner = str(path)
        return n

    @property
    def n_ctx(self) -> int:
        """The context llama.cpp allocated, in tokens."""
        return self.llm.n_ctx()

    def close(self) -> None:
        """Free llama.cpp's model and context now (switching models must not keep the old one in memory)."""
        if getattr(self, "llm", None) is not None:
            self.llm.close()
            self.llm = None


def consume(stream: Generator[str, None, Generation], on_piece: Callable[[str], None] | None = None) -> Generation:
    """Run a `ChatEngine.stream` to its end, handing each text piece to `on_piece`; its Generation."""
    while True:
        try:
            piece = next(stream)
        except StopIteration as stop:
            return stop.value
        if on_piece is not None:
            on_piece(piece)


def _split_stop(text: str, stops: tuple[str, ...]) -> tuple[str, str, bool]:
    """(text safe to show, text held back, stop string found)."""
    if not stops:
        return text, "", False
    for stop in stops:
        i = text.find(stop)
        if i >= 0:
            return text[:i], "", True
    hold = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:k]):
                hold = max(hold, k)
                break
    return text[: len(text) - hold], text[len(text) - hold:], False
