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
    """(the user's message with numbered sources, the sources used); the question alone when none fit. The best
    passage always goes in; the others while they fit `budget_chars` (at least MIN_BUDGET_CHARS)."""
    budget, used, size = max(budget_chars, MIN_BUDGET_CHARS), [], 0
    for hit in hits:
        size += len(_block(len(used) + 1, hit.cite(), hit.text))
        if used and size > budget:
            break
        used.append(hit)
    return message_with_sources(question, [as_source(h) for h in used]), used


def as_source(hit: Hit) -> dict:
    """A passage as the chat database keeps it with the question."""
    return {"path": hit.path, "page": hit.page, "text": hit.text}


def message_with_sources(question: str, sources: list[dict]) -> str:
    """What the model gets for `question` asked with `sources` (the same text every time the chat is read again)."""
    if not sources:
        return question
    blocks = [_block(n, Hit(s["path"], s.get("page"), s["text"], 0.0).cite(), s["text"])
              for n, s in enumerate(sources, 1)]
    return f"{INSTRUCTION}\n\n资料：\n" + "\n\n".join(blocks) + f"\n\n问题：{question}"


def _block(n: int, cite: str, text: str) -> str:
    return f"[{n}] {cite}\n{text}"


def budget_for(n_ctx: int, max_tokens: int) -> int:
    """Characters of sources a turn may carry: half of what the context leaves after the answer's room (a Chinese
    character is about one Mixtral token; the other half is for the conversation)."""
    return max(0, (n_ctx - max_tokens) // 2)


def source_lines(hits: list[Hit]) -> list[str]:
    return [f"[{n}] {hit.cite()}  {hit.path}" for n, hit in enumerate(hits, 1)]


def retrieve(kb_name: str, question: str, budget_chars: int, k: int = 5) -> tuple[str, list[dict]]:
    """(the message the model gets, the passages in it) for `question` asked with the knowledge base `kb_name`:
    what the window's answer thread and `aurora-chat --kb` run before an answer."""
    from .index import KnowledgeBase

    kb = KnowledgeBase.open(kb_name, create=False)
    try:
        text, used = with_sources(question, kb.search(question, k), budget_chars)
    finally:
        kb.close()
    return text, [as_source(h) for h in used]
