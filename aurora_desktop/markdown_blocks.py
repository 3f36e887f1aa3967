"""Where a streaming Markdown answer can be cut: finished blocks before, the unfinished tail after.

A block is finished at a blank line outside a fenced code block, or at the line that closes a fence.
The renderer commits finished blocks once and re-renders only the tail, so the cost of an update
does not grow with the length of the answer. `with_copy_links` adds a copy link under every code
block (the link's target names the block; `code_blocks` gives their text).
"""

from __future__ import annotations

import re

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
COPY_SCHEME = "copy"
LONG_TAIL = 1500  # characters: a paragraph this long is committed at its last line break


def committed_end(text: str, start: int = 0, long_tail: int = LONG_TAIL) -> int:
    """Length of the prefix of `text` made of finished Markdown blocks.

    `start` is an earlier result for a prefix of `text` (a block boundary, so outside any code fence):
    scanning resumes there, and the cost of a streaming update does not grow with the answer. A very
    long block (an answer without blank lines) is cut at its last line break outside a code fence, so
    that the part redrawn per update stays short; the final render joins it again.
    """
    end, pos, fence, line_end = start, start, None, start
    for line in text[start:].splitlines(keepends=True):
        pos += len(line)
        if not line.endswith("\n"):
            break  # an unfinished line belongs to the tail
        m = FENCE.match(line)
        if fence is None:
            if m:
                fence = m.group(1)[0] * len(m.group(1))
            elif not line.strip():
                end = pos
        elif m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not line.strip()[len(m.group(1)):]:
            fence = None
            end = pos
        if fence is None:
            line_end = pos
    if len(text) - end > long_tail and line_end > end:
        return line_end
    return end


def code_blocks(text: str) -> list[str]:
    """The text of every fenced code block, in order."""
    blocks, current, fence = [], [], None
    for line in text.splitlines(keepends=True):
        m = FENCE.match(line)
        if fence is None and m:
            fence, current = m.group(1), []
        elif fence is not None and m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
            blocks.append("".join(current).rstrip("\n"))
            fence = None
        elif fence is not None:
            current.append(line)
    return blocks


def with_copy_links(text: str, label: str, first_index: int = 0) -> str:
    """`text` with a `[label](copy:N)` line after each closed code block (N counts from `first_index`)."""
    out, fence, n = [], None, first_index
    for line in text.splitlines(keepends=True):
        out.append(line)
        m = FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)
        elif fence is not None and m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
            fence = None
            out.append(f"\n[{label}]({COPY_SCHEME}:{n})\n\n")
            n += 1
    return "".join(out)
