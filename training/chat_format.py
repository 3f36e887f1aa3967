"""The chat template, and the one formatter that turns a conversation into token ids and labels.

This module is the single source of the chat format. Training formats its examples with
`encode_conversation`; export writes `CHAT_TEMPLATE` into the GGUF as `tokenizer.chat_template`;
the chat client renders that template back out of the GGUF. A test renders `CHAT_TEMPLATE` with
Jinja and checks it gives exactly the fragments built here, so the two cannot drift apart.

Format (Mixtral-8x7B-Instruct, system prompt folded into the first user turn):

    <s>[INST] {system}\\n\\n{user 1} [/INST]{assistant 1}</s>[INST] {user 2} [/INST]{assistant 2}</s>

`<s>` and `</s>` are control tokens that only the template emits; all user and assistant text is
tokenized as plain text, so a user typing "</s>" gets the characters, never the control token.
Each text fragment follows a control token, and SentencePiece (like llama.cpp) prefixes such a
fragment with a space, which is why fragments are encoded one by one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

IGNORE_INDEX = -100
ROLES = ("system", "user", "assistant")

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
    "{{- '[INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' -}}"
    "{%- else -%}"
    "{{- '[INST] ' + message['content'] + ' [/INST]' -}}"
    "{%- endif -%}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{- message['content'] + eos_token -}}"
    "{%- else -%}"
    "{{- raise_exception('Only system, user and assistant roles are supported') -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
)

BOS = "<s>"
EOS = "</s>"
UNK = "<unk>"


@dataclass(frozen=True)
class Turn:
    role: str  # "user" or "assistant"
    content: str


class ChatFormatError(ValueError):
    """A conversation that the template cannot express."""


def _check_order(turns: Sequence[Turn]) -> None:
    for i, turn in enumerate(turns):
        expected = "user" if i % 2 == 0 else "assistant"
        if turn.role != expected:
            raise ChatFormatError(
                f"turn {i + 1} is {turn.role!r} but must be {expected!r}: "
                "roles must alternate user/assistant, starting with user"
            )


def user_prefix(content: str, system: str | None, first: bool) -> str:
    """The text of one user turn as the template writes it."""
    if first and system:
        return f"[INST] {system}\n\n{content} [/INST]"
    return f"[INST] {content} [/INST]"


def render_fragments(turns: Sequence[Turn], system: str | None = None) -> list[str]:
    """The rendered conversation as a list of pieces: BOS, EOS, or a text fragment.

    Joining the list gives exactly what `CHAT_TEMPLATE` renders for the same messages.
    """
    _check_order(turns)
    pieces: list[str] = [BOS]
    for i in range(0, len(turns), 2):
        text = user_prefix(turns[i].content, system, first=(i == 0))
        if i + 1 < len(turns):
            pieces.append(text + turns[i + 1].content)
            pieces.append(EOS)
        else:
            pieces.append(text)
    return pieces


def _common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def encode_conversation(
    encode: Callable[[str], list[int]],
    turns: Sequence[Turn],
    system: str | None,
    bos_id: int,
    eos_id: int,
    max_tokens: int | None = None,
) -> tuple[list[int], list[int]] | None:
    """Token ids and labels of a conversation that ends with an assistant turn.

    `encode(text)` must tokenize plain text the way the model's SentencePiece model does
    (dummy space prefix on, no BOS). Labels are IGNORE_INDEX everywhere except the assistant
    replies and their `</s>`, in every turn. With `max_tokens`, whole user/assistant pairs are
    dropped from the end until the rest fits; returns None when not even the first pair fits.
    """
    _check_order(turns)
    if not turns or len(turns) % 2:
        raise ChatFormatError("a training conversation must end with an assistant turn")
    ids: list[int] = [bos_id]
    labels: list[int] = [IGNORE_INDEX]
    for i in range(0, len(turns), 2):
        prompt = user_prefix(turns[i].content, system, first=(i == 0))
        full = encode(prompt + turns[i + 1].content)
        # The reply starts where the prompt's own tokenization stops matching; a token that a
        # BPE merge spans across the boundary counts as reply.
        split = _common_prefix_len(encode(prompt), full)
        pair_ids = full + [eos_id]
        pair_labels = [IGNORE_INDEX] * split + full[split:] + [eos_id]
        if max_tokens is not None and len(ids) + len(pair_ids) > max_tokens:
            break
        ids += pair_ids
        labels += pair_labels
    if len(ids) == 1:
        return None
    return ids, labels


def encode_prompt(
    encode: Callable[[str], list[int]],
    turns: Sequence[Turn],
    system: str | None,
    bos_id: int,
    eos_id: int,
) -> list[int]:
    """Token ids of a conversation that ends with a user turn, ready for generation."""
    ids: list[int] = []
    for piece in render_fragments(turns, system):
        if piece == BOS:
            ids.append(bos_id)
        elif piece == EOS:
            ids.append(eos_id)
        else:
            ids += encode(piece)
    return ids
