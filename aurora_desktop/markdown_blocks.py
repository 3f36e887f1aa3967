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


def committed_end(text: str) -> int:
    """Length of the prefix of `text` made of finished Markdown blocks."""
    end, pos, fence = 0, 0, None
    for line in text.splitlines(keepends=True):
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
