"""The retrieved chunks in the user's turn, numbered, within the context budget; and how the sources are shown.

    text, used = with_sources("混合专家模型有几个专家？", kb.search(question, k=5), budget_chars=2000)

The text goes to the model as the user's message (in the model's own chat format, like any message), and stays
in the conversation as it was sent, so the next turn reuses the KV cache. `used` are the chunks that fit.
"""

from __future__ import annotations

from .index import Hit

INSTRUCTION = "请根据下面的资料回答问题，用 [编号] 注明依据的资料；资料中没有答案时请直接说明。"
MIN_BUDGET_CHARS = 200


def with_sources(question: str, hits: list[Hit], budget_chars: int) -> tuple[str, list[Hit]]:
    """(the user's message with numbered sources, the sources used); the question alone when none fit."""
    used, blocks, size = [], [], 0
    for hit in hits:
        block = f"[{len(used) + 1}] {hit.cite()}\n{hit.text}"
        if size + len(block) > max(budget_chars, MIN_BUDGET_CHARS) and used:
            break
        if size + len(block) > max(budget_chars, MIN_BUDGET_CHARS):
            block = block[:max(budget_chars, MIN_BUDGET_CHARS)]  # one chunk at least, cut to the budget
        used.append(hit)
        blocks.append(block)
        size += len(block)
    if not used:
        return question, []
    return f"{INSTRUCTION}\n\n资料：\n" + "\n\n".join(blocks) + f"\n\n问题：{question}", used


def budget_for(n_ctx: int, max_tokens: int) -> int:
    """Characters of sources a turn may carry: half of what the context leaves after the answer's room (a Chinese
    character is about one Mixtral token; the other half is for the conversation)."""
    return max(0, (n_ctx - max_tokens) // 2)


def source_lines(hits: list[Hit]) -> list[str]:
    return [f"[{n}] {hit.cite()}  {hit.path}" for n, hit in enumerate(hits, 1)]
