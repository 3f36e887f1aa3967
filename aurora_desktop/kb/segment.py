"""Keyword retrieval that works on Chinese: what goes into SQLite FTS5 and how a question becomes a MATCH query.

Chinese has no spaces, and FTS5's tokenizers do not segment it: `unicode61` makes a whole run of Chinese one token
(no Chinese word is found), `trigram` finds nothing shorter than three characters. Each way of indexing measured in
`bench/kb_bench.py` is a row of `SCHEMES`: the FTS5 tokenizer, the text of each column, the query. The knowledge
base uses `DEFAULT_SCHEME`, chosen by that measurement (README, "Chat with your documents"):

- `words+chars`: jieba's search-mode words (BM25 on words of any length) in one column, and every CJK character
  as a token in another, where a question's word is also looked up as a phrase of its characters (so a word jieba
  cut differently in the document and in the question is still found, and one-character words too).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Callable

CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
WORD = re.compile(r"[^\W_]", re.UNICODE)  # a letter, digit or ideograph (not punctuation, not "_")
MAX_QUERY_TERMS = 32
# Words that carry no topic: function words and the question words themselves. A question loses them (unless it is
# nothing else); they occur in most chunks, and matching them made a search read most of the index.
STOP_WORDS = frozenset("""
的 了 是 在 有 和 与 及 或 也 都 就 还 又 而 但 并 把 被 让 给 对 从 向 到 为 以 于 由 将 之 其 这 那 这个 那个 这些 那些
一个 一些 吗 呢 吧 啊 呀 么 嘛 什么 怎么 怎样 怎么样 如何 为什么 为何 哪 哪里 哪儿 哪个 哪些 谁 几 多少 多久 多大 多长
是否 能否 可以 能 会 要 需要 应该 请问 请 我 你 他 她 它 我们 你们 他们 吗？ 么 the a an of to in on is are was were be
and or what which who how why when where does do did
""".split())


def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba


def words(text: str) -> list[str]:
    """jieba's search-mode words of `text` (long words also as their shorter words), lower-cased, no punctuation."""
    return [w.lower() for w in _jieba().cut_for_search(text) if WORD.search(w)]


def query_words(text: str) -> list[str]:
    """A question's topic words (jieba's accurate mode; search mode would add noise), in order, each once; stop
    words go unless the question has nothing else. Single characters next to each other are one word: jieba cuts a
    word its dictionary lacks into characters (年假 -> 年, 假), and the document holds them side by side."""
    merged: list[str] = []
    run = False  # the last word is a run of single characters
    for w in (w.strip().lower() for w in _jieba().cut(text)):
        single = len(w) == 1 and bool(CJK.match(w)) and w not in STOP_WORDS
        if single and run:
            merged[-1] += w
        else:
            merged.append(w)
        run = single
    seen: dict[str, None] = {}
    for w in merged:
        if w and WORD.search(w):
            seen.setdefault(w)
    topical = [w for w in seen if w not in STOP_WORDS]
    return (topical or list(seen))[:MAX_QUERY_TERMS]


def sub_words(word: str) -> list[str]:
    """`word` and the shorter words of two or more characters inside it (火车票 -> 火车, 车票, 火车票)."""
    return list(dict.fromkeys([w.lower() for w in _jieba().cut_for_search(word) if len(w) > 1] + [word]))


def cjk_chars(text: str) -> str:
    return " ".join(CJK.findall(text))


def phrase(text: str) -> str:
    """`text` as an FTS5 string (double quotes doubled)."""
    return '"' + text.replace('"', '""') + '"'


@dataclass(frozen=True)
class Scheme:
    name: str
    tokenizer: str
    columns: tuple[str, ...]
    index: Callable[[str], tuple[str, ...]]
    """The chunk's text -> one value per column."""
    query: Callable[..., str]
    """(question, "AND", "OR" or "BIGRAMS"[, common words to leave out]) -> an FTS5 MATCH expression ("" when it has
    no such terms)."""
    weights: tuple[float, ...] = ()


def bigrams(question: str) -> list[str]:
    """Every pair of neighbouring Chinese characters in the question that is not all stop words (年假 in
    没休完的年假, which jieba cut as 年 / 假能)."""
    runs = re.findall(r"[\u3400-\u4dbf\u4e00-\u9fff]+", question)
    pairs = [r[i:i + 2] for r in runs for i in range(len(r) - 1)]
    return [p for p in dict.fromkeys(pairs) if not (p in STOP_WORDS or all(c in STOP_WORDS for c in p))]


def or_words(question: str) -> list[str]:
    """The words of the "any of" phase: a lone character (吃, 用) is in most chunks and says little, so with longer
    words beside it only those ("all of" used it already), each with its own shorter words (车票 in 火车票)."""
    ws = query_words(question)
    if any(len(w) > 1 for w in ws):
        ws = [s for w in ws if len(w) > 1 for s in sub_words(w)]
    return list(dict.fromkeys(ws))


def _words_chars_query(question: str, op: str = "OR", common: frozenset = frozenset()) -> str:
    """`common`: words in so many chunks that the "any of" phase leaves them out (BM25 gives them little weight,
    and their long lists of chunks were the slowest searches), unless nothing else is left."""
    if op == "BIGRAMS":  # the last resort: any two neighbouring characters of the question
        return " OR ".join(f"chars:{phrase(' '.join(p))}" for p in bigrams(question)[:MAX_QUERY_TERMS])
    if op == "OR":
        candidates = or_words(question)
        ws = [w for w in candidates if w not in common] or candidates
    else:
        ws = query_words(question)
    terms = []
    for w in dict.fromkeys(ws):
        chars = CJK.findall(w)
        if chars:
            terms.append(f"(words:{phrase(w)} OR chars:{phrase(' '.join(chars))})")
        else:
            terms.append(f"words:{phrase(w)}")
    return f" {op} ".join(terms)


def _raw_query(question: str, op: str = "OR", common: frozenset = frozenset()) -> str:  # the question's own runs of letters and characters
    if op == "BIGRAMS":
        return ""
    return f" {op} ".join(phrase(t) for t in re.findall(r"[^\W_]+", question)[:MAX_QUERY_TERMS])


def _trigram_query(question: str, op: str = "OR", common: frozenset = frozenset()) -> str:
    if op == "BIGRAMS":
        return ""
    return f" {op} ".join(phrase(w) for w in query_words(question) if len(w) >= 3) or _raw_query(question, op)


def _chars_query(question: str, op: str = "OR", common: frozenset = frozenset()) -> str:
    if op == "BIGRAMS":
        return ""
    return f" {op} ".join(phrase(" ".join(CJK.findall(w)) or w) for w in query_words(question))


def _words_query(question: str, op: str = "OR", common: frozenset = frozenset()) -> str:
    if op == "BIGRAMS":
        return ""
    return f" {op} ".join(phrase(w) for w in query_words(question))


SCHEMES = {
    "unicode61": Scheme("unicode61", "unicode61", ("text",), lambda t: (t,), _raw_query),
    "trigram": Scheme("trigram", "trigram", ("text",), lambda t: (t,), _trigram_query),
    "chars": Scheme("chars", "unicode61", ("chars",), lambda t: (cjk_chars(t) + " " + " ".join(words(t)),),
                    _chars_query),
    "words": Scheme("words", "unicode61", ("words",), lambda t: (" ".join(words(t)),), _words_query),
    "words+chars": Scheme("words+chars", "unicode61", ("words", "chars"),
                          lambda t: (" ".join(words(t)), cjk_chars(t)), _words_chars_query, (2.0, 1.0)),
}
DEFAULT_SCHEME = "words+chars"
