"""Render a GGUF's `tokenizer.chat_template` safely, into pieces that tokenize like training did.

A GGUF is untrusted input: its template runs in Jinja's ImmutableSandboxedEnvironment, so it cannot
reach Python objects (`''.__class__.__mro__` raises SecurityError). `<s>` and `</s>` are passed to
the template as private-use sentinels, so the rendering splits into control tokens (which only the
template can emit) and text fragments (which are tokenized as plain text: a user typing `</s>` gets
the characters, never the control token). Each fragment follows a control token, exactly as
SentencePiece and llama.cpp see them when training formatted the same conversation.
"""

from __future__ import annotations

import re

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

# The Mixtral-Instruct format with the system prompt folded into the first user turn, used when a
# GGUF carries no template. It is the same text as aurora_training.chat_format.CHAT_TEMPLATE
# (a test keeps them equal); the desktop does not import the training package.
BUILTIN_TEMPLATE = (
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

BOS_MARK = "\ue000"
EOS_MARK = "\ue001"
SLOT_OPEN, SLOT_CLOSE = "\ue002", "\ue003"
SPLIT = re.compile(f"({BOS_MARK}|{EOS_MARK}|{SLOT_OPEN}\\d+{SLOT_CLOSE})")


class ChatTemplateError(ValueError):
    pass


class ChatTemplate:
    """A compiled, sandboxed chat template."""

    def __init__(self, source: str) -> None:
        self.source = source
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        try:
            self._template = env.from_string(source)
        except TemplateError as exc:
            raise ChatTemplateError(f"chat template does not compile: {exc}") from None

    def render(self, messages: list[dict], add_generation_prompt: bool = True,
               opaque: dict[int, object] | None = None) -> list[str | int | object]:
        """The conversation as pieces: BOS/EOS markers, text, and the `opaque` values.

        `opaque` maps a message index to a value that stands in for that message's content in the
        output (the engine passes the token ids it sampled for an answer, to splice them in unchanged).
        """

        def raise_exception(message: str):
            raise ChatTemplateError(message)

        opaque = opaque or {}
        clean = [{"role": m["role"], "content": (f"{SLOT_OPEN}{i}{SLOT_CLOSE}" if i in opaque
                                                 else _strip_marks(m["content"]))}
                 for i, m in enumerate(messages)]
        try:
            text = self._template.render(messages=clean, bos_token=BOS_MARK, eos_token=EOS_MARK,
                                         add_generation_prompt=add_generation_prompt,
                                         raise_exception=raise_exception)
        except ChatTemplateError:
            raise
        except Exception as exc:  # SecurityError, UndefinedError, TypeError from a hostile or broken template
            raise ChatTemplateError(f"chat template failed: {type(exc).__name__}: {exc}") from None
        pieces: list[str | int | object] = []
        for part in SPLIT.split(text):
            if not part:
                continue
            if part == BOS_MARK:
                pieces.append(BOS)
            elif part == EOS_MARK:
                pieces.append(EOS)
            elif part.startswith(SLOT_OPEN):
                pieces.append(opaque[int(part[1:-1])])
            else:
                pieces.append(part)
        return pieces


BOS, EOS = 0, 1  # piece markers (not token ids)


def _strip_marks(text: str) -> str:
    for mark in (BOS_MARK, EOS_MARK, SLOT_OPEN, SLOT_CLOSE):
        text = text.replace(mark, "")
    return text


def probe(template: ChatTemplate) -> None:
    """Render a small conversation; raises ChatTemplateError when the template is unusable."""
    pieces = template.render([{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
                              {"role": "assistant", "content": "a"}, {"role": "user", "content": "v"}])
    if not any(isinstance(p, str) and "v" in p for p in pieces):
        raise ChatTemplateError("chat template drops the user's message")
