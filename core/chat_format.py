"""The chat format: Mixtral-8x7B-Instruct's reference tokenization, for training and for chat.

The reference is Mistral's own encoder (`mistral-common`, v1 instruct tokenizer), on which
Mixtral-8x7B-Instruct-v0.1 was trained. It tokenizes `[INST] {user} [/INST]` and every reply as
separate SentencePiece fragments, so a reply starts with the word-start piece `▁`, and folds a
system prompt into the first user turn:

    <s>▁[INST]▁{system}\\n\\n{user 1}▁[/INST]▁{assistant 1}</s>▁[INST]▁{user 2}▁[/INST]

As one string (Mistral's own later Hugging Face template, which `CHAT_TEMPLATE` is), that is

    <s> [INST] {system}\\n\\n{user 1} [/INST] {assistant 1}</s> [INST] {user 2} [/INST]

tokenized with no word-start added after a control token: each text fragment is exactly its
characters, and its leading space becomes the `▁`. SentencePiece (Mixtral's model splits words
at `▁`) and llama.cpp both add a word-start to text they are given, so `encode_fragment` hands them
the fragment without its leading space. `<s>` and `</s>` are control tokens that only the
template emits; user and assistant text is always plain text (a user typing `</s>` gets characters).

Training encodes with `encode_conversation` (ids + labels); the chat engine renders the GGUF's
`tokenizer.chat_template` in `ChatTemplate` (Jinja's immutable sandbox) and encodes the pieces
with `encode_pieces`, the same function `encode_prompt` uses.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Callable, Sequence

from .errors import AuroraError

IGNORE_INDEX = -100
BOS, EOS, UNK = "<s>", "</s>", "<unk>"

CHAT_TEMPLATE = (
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- set system_message = messages[0]['content'] -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set system_message = '' -%}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{{- bos_token -}}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') -}}"
    "{%- endif -%}"
    "{%- if message['role'] == 'user' -%}"
    "{%- if loop.first and system_message -%}"
    "{{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' -}}"
    "{%- else -%}"
    "{{- ' [INST] ' + message['content'] + ' [/INST]' -}}"
    "{%- endif -%}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{- ' ' + message['content'] + eos_token -}}"
    "{%- else -%}"
    "{{- raise_exception('Only system, user and assistant roles are supported') -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
)
TEMPLATE_NAME = "Mixtral-Instruct reference form (mistral-common v1)"


class Control(enum.Enum):
    """A control token in a rendered conversation (not text, never typed by a user)."""

    BOS = BOS
    EOS = EOS


@dataclass(frozen=True)
class Turn:
    role: str  # "user" or "assistant"
    content: str


@dataclass(frozen=True)
class Reply:
    """An answer the engine sampled: its ids stand in for its text when the prompt is encoded."""

    ids: tuple[int, ...]
    text: str


Encode = Callable[[str], list[int]]  # SentencePiece-style: plain text -> ids, word-start added, no BOS


class ChatFormatError(AuroraError):
    """A conversation that the template cannot express."""


ORDER_RULE = "user and assistant alternate, starting with user"


def expected_role(position: int) -> str:
    """The role of the turn at `position` (0-based, the system prompt not counted)."""
    return "user" if position % 2 == 0 else "assistant"


def misplaced_role(roles: Sequence[str]) -> int | None:
    """The position of the first role out of order (see ORDER_RULE), None when all are in order."""
    return next((i for i, role in enumerate(roles) if role != expected_role(i)), None)


def check_order(turns: Sequence[Turn]) -> None:
    i = misplaced_role([t.role for t in turns])
    if i is not None:
        raise ChatFormatError(f"turn {i + 1} is {turns[i].role!r} but must be {expected_role(i)!r}: {ORDER_RULE}")


def user_text(content: str, system: str | None, first: bool) -> str:
    """One user turn as the template writes it."""
    if first and system:
        return f" [INST] {system}\n\n{content} [/INST]"
    return f" [INST] {content} [/INST]"


def reply_text(content: str) -> str:
    """One reply as the template writes it (its `</s>` follows as a control token)."""
    return " " + content


def render_fragments(turns: Sequence[Turn], system: str | None = None) -> list[str | Control]:
    """The conversation as pieces; `render_text` of them is exactly what `CHAT_TEMPLATE` renders."""
    check_order(turns)
    pieces: list[str | Control] = [Control.BOS]
    for i in range(0, len(turns), 2):
        text = user_text(turns[i].content, system, first=(i == 0))
        if i + 1 < len(turns):
            pieces += [text + reply_text(turns[i + 1].content), Control.EOS]
        else:
            pieces.append(text)
    return pieces


def render_text(pieces: Sequence[str | Control]) -> str:
    return "".join(p.value if isinstance(p, Control) else p for p in pieces)


def encode_fragment(encode: Encode, text: str) -> list[int]:
    """Ids of text that follows a control token: exactly its characters, its leading space the `▁`.

    `encode` adds a word-start of its own (SentencePiece's dummy prefix, llama.cpp's space prefix),
    so it gets the text without the space. A fragment with no leading space (another model's
    template) keeps the word-start that SentencePiece and llama.cpp add.
    """
    return encode(text[1:]) if text.startswith(" ") else encode(text)


def encode_pieces(pieces: Sequence, encode: Encode, bos_id: int, eos_id: int) -> list[int]:
    """Ids of rendered pieces: control tokens, text fragments, and sampled `Reply`s spliced in.

    A `Reply` takes the place of its text. Its ids begin with the word-start piece, so when the
    template wrote a space in front of it (the reference form), that space belongs to the reply.
    After a template that glues replies on, the reply's text is encoded instead.
    """
    ids: list[int] = []
    pieces = list(pieces)
    for k, piece in enumerate(pieces):
        if piece is Control.BOS:
            ids.append(bos_id)
        elif piece is Control.EOS:
            ids.append(eos_id)
        elif isinstance(piece, Reply):
            prev = pieces[k - 1] if k else None
            if isinstance(prev, str) and prev.endswith(" ") and piece.ids:
                ids += piece.ids
            else:
                ids += encode_fragment(encode, piece.text) if piece.text else []
        else:
            nxt = pieces[k + 1] if k + 1 < len(pieces) else None
            text = piece[:-1] if isinstance(nxt, Reply) and nxt.ids and piece.endswith(" ") else piece
            if text:
                ids += encode_fragment(encode, text)
    return ids


def _common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def encode_conversation(encode: Encode, turns: Sequence[Turn], system: str | None, bos_id: int, eos_id: int,
                        max_tokens: int | None = None) -> tuple[list[int], list[int]] | None:
    """Token ids and labels of a conversation that ends with an assistant turn.

    Labels are IGNORE_INDEX everywhere except each reply, from its first piece (the word-start
    `▁` included) through its `</s>`, in every turn. With `max_tokens`, whole user/assistant pairs
    are dropped from the end until the rest fits; returns None when not even the first pair fits.
    """
    check_order(turns)
    if not turns or len(turns) % 2:
        raise ChatFormatError("a training conversation must end with an assistant turn")
    ids: list[int] = [bos_id]
    labels: list[int] = [IGNORE_INDEX]
    for i in range(0, len(turns), 2):
        prompt = user_text(turns[i].content, system, first=(i == 0))
        full = encode_fragment(encode, prompt + reply_text(turns[i + 1].content))
        # The reply starts where the prompt's own tokenization stops matching (Mixtral's
        # tokenizer splits words at the space, so that is the reply's word-start piece).
        split = _common_prefix_len(encode_fragment(encode, prompt), full)
        pair_ids = full + [eos_id]
        pair_labels = [IGNORE_INDEX] * split + full[split:] + [eos_id]
        if max_tokens is not None and len(ids) + len(pair_ids) > max_tokens:
            break
        ids += pair_ids
        labels += pair_labels
    if len(ids) == 1:
        return None
    return ids, labels


def encode_prompt(encode: Encode, turns: Sequence[Turn], system: str | None, bos_id: int, eos_id: int) -> list[int]:
    """Token ids of a conversation that ends with a user turn, ready for generation."""
    return encode_pieces(render_fragments(turns, system), encode, bos_id, eos_id)


def template_overhead(encode: Encode) -> int:
    """Tokens the template adds around one user/assistant exchange with empty texts."""
    return 1 + len(encode_fragment(encode, user_text("", None, True))) + 1


# ---------------------------------------------------------------- the sandboxed renderer


BOS_MARK, EOS_MARK = "\ue000", "\ue001"
SLOT_OPEN, SLOT_CLOSE = "\ue002", "\ue003"
_MARKS = (BOS_MARK, EOS_MARK, SLOT_OPEN, SLOT_CLOSE)
_SPLIT = re.compile(f"({BOS_MARK}|{EOS_MARK}|{SLOT_OPEN}\\d+{SLOT_CLOSE})")


class ChatTemplateError(AuroraError):
    """A chat template that does not compile or does not render this conversation."""


MAX_TEMPLATE_CHARS = 256 * 1024  # real templates are a few KB; tool-calling ones ~20 KB
MAX_OUTPUT_CHARS = 16 << 20  # one rendering
MAX_ITERATIONS = 1_000_000  # range() steps in one rendering (nested loops multiply)
MAX_NUMBER = 1 << 20  # an integer handed to a method (ljust, center, repeat counts, ...), or a format width
MAX_INT_BITS = 4096  # an integer a template computes; bigger ones make one C call run for minutes
MAX_NESTING = 64  # open blocks and brackets; real templates nest under 10, Python's compiler fails near 20 blocks
RENDER_SECONDS = 2.0  # one rendering; a template still running then is stopped


class TemplateTimeout(Exception):
    """Raised inside the rendering thread by the watchdog."""


def _size(value) -> int:
    return len(value) if isinstance(value, (str, list, tuple)) else 0


def _check_size(n: int) -> None:
    from jinja2.sandbox import SecurityError

    if n > MAX_OUTPUT_CHARS:
        raise SecurityError(f"the template builds a value of more than {MAX_OUTPUT_CHARS:,} items")


_WIDTH = re.compile(r"[%:{][-#0 +<>^=,_]*(\d{7,})|\.(\d{7,})")  # %08d, {:>9999999}, %.9999999f


def _check_format(fmt) -> None:
    from jinja2.sandbox import SecurityError

    if isinstance(fmt, str):
        for m in _WIDTH.finditer(fmt):
            if int(m.group(1) or m.group(2)) > MAX_NUMBER:
                raise SecurityError(f"the template formats with a width above {MAX_NUMBER:,}")


def _int_bits(value) -> int:
    return value.bit_length() if isinstance(value, int) and not isinstance(value, bool) else 0


def _check_arithmetic(operator: str, left, right) -> None:
    """Refuse, before the C call, integer arithmetic whose result would exceed MAX_INT_BITS."""
    from jinja2.sandbox import SecurityError

    a, b = _int_bits(left), _int_bits(right)
    if not (a or b):
        return
    if operator == "**" and isinstance(right, int):
        bits = a * abs(right) if isinstance(left, int) else 0
    elif operator == "*":
        bits = a + b if isinstance(left, int) and isinstance(right, int) else 0
    else:
        bits = max(a, b) + 1
    if bits > MAX_INT_BITS:
        raise SecurityError(f"the template computes an integer of more than {MAX_INT_BITS:,} bits")


_TAG = re.compile(r"\{%-?\s*(\w*)(.*?)-?%\}|\{\{(.*?)\}\}", re.S)
_BLOCKS = {"if", "for", "macro", "call", "filter", "with", "block", "raw"}


def nesting_depth(source: str) -> int:
    """The deepest nesting of blocks plus brackets in a template (`{% if %}` inside `{% for %}` is 2)."""
    blocks = deepest = 0
    for m in _TAG.finditer(source):
        word, rest, expression = m.group(1) or "", m.group(2) or "", m.group(3)
        if word in _BLOCKS or (word == "set" and "=" not in rest):
            blocks += 1
        elif word.startswith("end"):
            blocks -= 1
        brackets = depth = 0
        for ch in expression if expression is not None else rest:
            depth += ch in "([{"
            depth -= ch in ")]}"
            brackets = max(brackets, depth)
        deepest = max(deepest, blocks + brackets)
    return deepest


def _bounded_join(join):
    def bounded(seq):
        items = list(seq)
        _check_size(sum(len(str(x)) for x in items))
        return join(items)

    return bounded


def _bounded_filter(name: str, func):
    def bounded(*args, **kwargs):
        values = [a for a in (*args, *kwargs.values()) if isinstance(a, (str, list, tuple))]
        _check_size(sum(_size(v) for v in values))
        if name == "format" and args:
            _check_format(args[0])
        if name == "replace" and len(args) >= 3 and isinstance(args[-1], str):
            _check_size(_size(args[-3]) * max(1, len(args[-1])))  # every character could become `new`
        result = func(*args, **kwargs)
        _check_size(_size(result))
        return result

    for attr in ("jinja_pass_arg",):  # keep what tells Jinja to pass the context or environment
        if hasattr(func, attr):
            setattr(bounded, attr, getattr(func, attr))
    return bounded


class _Watchdog:
    """Raises TemplateTimeout in the rendering thread if a rendering outlives RENDER_SECONDS."""

    def __init__(self, seconds: float) -> None:
        import threading

        self.thread_id = threading.get_ident()
        self.timer = threading.Timer(seconds, self._fire)
        self.timer.daemon = True

    def _fire(self) -> None:
        import ctypes

        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.thread_id), ctypes.py_object(TemplateTimeout))

    def __enter__(self) -> "_Watchdog":
        self.timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self.timer.cancel()


class _BoundedEnvironment:
    """ImmutableSandboxedEnvironment with limits on sizes, arithmetic, iteration and recursion."""

    @staticmethod
    def make():
        from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

        class Env(ImmutableSandboxedEnvironment):
            intercepted_binops = frozenset({"*", "**", "+", "-", "%"})

            def __init__(self) -> None:
                super().__init__(trim_blocks=True, lstrip_blocks=True)
                self.steps = 0
                self.globals["range"] = self.bounded_range
                self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}

            def bounded_range(self, *args):
                r = range(*args)
                if len(r) > MAX_ITERATIONS or self.steps + len(r) > MAX_ITERATIONS:
                    raise SecurityError(f"the template iterates more than {MAX_ITERATIONS:,} times")
                self.steps += len(r)
                return r

            def call_binop(self, context, operator, left, right):
                if operator == "**" and isinstance(right, (int, float)) and abs(right) > 64:
                    raise SecurityError("the template raises to a huge power")
                _check_arithmetic(operator, left, right)
                if operator == "*" and isinstance(left, int) and isinstance(right, (str, list, tuple)):
                    left, right = right, left
                if operator == "*" and isinstance(left, (str, list, tuple)) and isinstance(right, int) \
                        and len(left) * right > MAX_OUTPUT_CHARS:
                    raise SecurityError(f"the template builds a value of more than {MAX_OUTPUT_CHARS:,} items")
                if operator == "+":
                    _check_size(_size(left) + _size(right))
                if operator == "%" and isinstance(left, str):
                    _check_format(left)
                    args = right if isinstance(right, tuple) else (right,)
                    _check_size(len(left) + sum(len(str(a)) for a in args))
                return super().call_binop(context, operator, left, right)

            def wrap_str_format(self, value):
                if getattr(value, "__name__", "") in ("format", "format_map"):
                    _check_format(getattr(value, "__self__", None))
                return super().wrap_str_format(value)

            def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 (Jinja's own signature)
                numbers = [a for a in (*args, *kwargs.values()) if isinstance(a, int) and not isinstance(a, bool)]
                if any(abs(n) > MAX_NUMBER for n in numbers):
                    raise SecurityError(f"the template passes a number above {MAX_NUMBER:,} to a function")
                _check_size(sum(_size(a) for a in (*args, *kwargs.values())))
                return super().call(__context, __obj, *args, **kwargs)

        return Env()


class ChatTemplate:
    """A chat template compiled in Jinja's immutable sandbox, rendered within bounds.

    A GGUF is untrusted input: its template cannot reach Python objects (`''.__class__.__mro__` raises
    SecurityError), cannot build huge values (`'x' * 4000000000`), iterate without end (nested
    `range(99999)`), recurse without end or write more than MAX_OUTPUT_CHARS; each is a
    ChatTemplateError, and the engine falls back to the built-in format with a note. `<s>`/`</s>` are
    passed as private-use sentinels, so the rendering splits into control tokens and text that is always
    tokenized as plain text.
    """

    def __init__(self, source: str) -> None:
        from jinja2 import TemplateError

        if len(source) > MAX_TEMPLATE_CHARS:
            raise ChatTemplateError(f"chat template is {len(source):,} characters (more than "
                                    f"{MAX_TEMPLATE_CHARS:,}); refused")
        if nesting_depth(source) > MAX_NESTING:
            raise ChatTemplateError(f"chat template nests blocks and brackets more than {MAX_NESTING} deep; refused")
        self.source = source
        self.env = _BoundedEnvironment.make()
        try:
            self._template = self.env.from_string(source)
        except TemplateError as exc:
            raise ChatTemplateError(f"chat template does not compile: {exc}") from None
        except (RecursionError, SyntaxError, MemoryError):  # Python's own compiler: "too many statically nested
            raise ChatTemplateError("chat template is nested too deeply to compile") from None  # blocks"
        namespace = self._template.root_render_func.__globals__  # `~` compiles to these joins
        for name in ("str_join", "markup_join"):
            if name in namespace:
                namespace[name] = _bounded_join(namespace[name])

    def render(self, messages: list[dict], add_generation_prompt: bool = True,
               replies: dict[int, Reply] | None = None) -> list[str | Control | Reply]:
        """The conversation as pieces: control tokens, text, and `replies` (message index -> Reply)
        in the places of those messages' contents."""

        def raise_exception(message: str):
            raise ChatTemplateError(str(message)[:200])

        replies = replies or {}
        clean = [{"role": m["role"], "content": (f"{SLOT_OPEN}{i}{SLOT_CLOSE}" if i in replies
                                                 else _strip_marks(m["content"]))}
                 for i, m in enumerate(messages)]
        self.env.steps = 0
        chunks, size = [], 0
        try:
            with _Watchdog(RENDER_SECONDS):
                for chunk in self._template.generate(messages=clean, bos_token=BOS_MARK, eos_token=EOS_MARK,
                                                     add_generation_prompt=add_generation_prompt,
                                                     raise_exception=raise_exception):
                    size += len(chunk)
                    if size > MAX_OUTPUT_CHARS:
                        raise ChatTemplateError(f"chat template wrote more than {MAX_OUTPUT_CHARS:,} characters")
                    chunks.append(chunk)
        except ChatTemplateError:
            raise
        except TemplateTimeout:
            raise ChatTemplateError(f"chat template took longer than {RENDER_SECONDS:.0f} s") from None
        except RecursionError:
            raise ChatTemplateError("chat template recursed too deeply") from None
        except MemoryError:
            raise ChatTemplateError("chat template ran out of memory") from None
        except Exception as exc:  # SecurityError, UndefinedError, TypeError from a hostile or broken template
            raise ChatTemplateError(f"chat template failed: {type(exc).__name__}: {str(exc)[:200]}") from None
        pieces: list[str | Control | Reply] = []
        for part in _SPLIT.split("".join(chunks)):
            if part == BOS_MARK:
                pieces.append(Control.BOS)
            elif part == EOS_MARK:
                pieces.append(Control.EOS)
            elif part.startswith(SLOT_OPEN):
                index = int(part[1:-1])
                if index not in replies:
                    raise ChatTemplateError("chat template wrote a reply marker it was not given")
                pieces.append(replies[index])
            elif part:
                pieces.append(part)
        return pieces


def _strip_marks(text: str) -> str:
    for mark in _MARKS:
        text = text.replace(mark, "")
    return text


def probe(template: ChatTemplate) -> None:
    """Render a small conversation; raises ChatTemplateError when the template is unusable."""
    pieces = template.render([{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
                              {"role": "assistant", "content": "a"}, {"role": "user", "content": "v"}])
    if not any(isinstance(p, str) and "v" in p for p in pieces):
        raise ChatTemplateError("chat template drops the user's message")
