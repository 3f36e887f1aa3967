"""Chunks that end at sentence ends, with overlap, each with its page.

    chunk_pages([(1, "第一句。第二句！…"), (2, "…")]) -> [Chunk(page=1, text="第一句。第二句！…"), …]

A sentence ends at 。！？； (and their Western forms followed by a space or the end) or at a blank line. Sentences are
packed into chunks of at most `max_chars` characters (about as many tokens for Chinese with Mixtral's tokenizer);
the last `overlap` characters' worth of sentences of a chunk start the next, so an answer that straddles the
boundary is whole in one of them. A sentence longer than a chunk is cut at `max_chars`. Chunks never span pages,
so each cites one page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_CHUNK_CHARS = 360
OVERLAP_CHARS = 60
SENTENCE_END = re.compile(r"(?<=[。！？；!?;…])[”’」』）)]*|(?<=[.])(?=\s)|\n\s*\n")


@dataclass(frozen=True)
class Chunk:
    page: int | None
    text: str


def sentences(text: str) -> list[str]:
    """`text` cut after each sentence end (the end marks and closing quotes kept), whitespace-trimmed, none empty."""
    out, start = [], 0
    for m in SENTENCE_END.finditer(text):
        piece = text[start:m.end()].strip()
        if piece:
            out.append(piece)
        start = m.end()
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return out


def chunk_text(text: str, max_chars: int = MAX_CHUNK_CHARS, overlap: int = OVERLAP_CHARS) -> list[str]:
    pieces: list[str] = []
    for s in sentences(text):
        pieces += [s[i:i + max_chars] for i in range(0, len(s), max_chars)] if len(s) > max_chars else [s]
    chunks, current = [], []
    for piece in pieces:
        if current and sum(map(len, current)) + len(piece) > max_chars:
            chunks.append(_join(current))
            kept = []  # the overlap: the last sentences of this chunk that fit in `overlap`
            for s in reversed(current):
                if sum(map(len, kept)) + len(s) > overlap:
                    break
                kept.insert(0, s)
            current = kept if sum(map(len, kept)) + len(piece) <= max_chars else []
        current.append(piece)
    if current:
        chunks.append(_join(current))
    return chunks


def _join(parts: list[str]) -> str:
    """Sentences joined back: no space between Chinese sentences, one between Western ones."""
    text = parts[0]
    for p in parts[1:]:
        text += ("" if text[-1] > "\u2e7f" or p[0] > "\u2e7f" else " ") + p
    return text


def chunk_pages(pages: list[tuple[int | None, str]], max_chars: int = MAX_CHUNK_CHARS,
                overlap: int = OVERLAP_CHARS) -> list[Chunk]:
    return [Chunk(page, text) for page, page_text in pages for text in chunk_text(page_text, max_chars, overlap)]
