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
WORD = re.compile(r"[\w\u3400-\u4dbf\u4e00-\u9fff]", re.UNICODE)
MAX_QUERY_TERMS = 32


def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba


def words(text: str) -> list[str]:
    """jieba's search-mode words of `text` (long words also as their shorter words), lower-cased, no punctuation."""
    return [w.lower() for w in _jieba().cut_for_search(text) if WORD.search(w)]


def query_words(text: str) -> list[str]:
    """A question's words (jieba's accurate mode; search mode would add noise), in order, each once."""
    seen: dict[str, None] = {}
    for w in _jieba().cut(text):
        w = w.strip().lower()
        if w and WORD.search(w):
            seen.setdefault(w)
    return list(seen)[:MAX_QUERY_TERMS]


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
    query: Callable[[str], str]
    """The question -> an FTS5 MATCH expression ("" when it has no words)."""
    weights: tuple[float, ...] = ()


def _words_chars_query(question: str) -> str:
    terms = []
    for w in query_words(question):
        chars = CJK.findall(w)
        if chars:
            terms.append(f"(words:{phrase(w)} OR chars:{phrase(' '.join(chars))})")
        else:
            terms.append(f"words:{phrase(w)}")
    return " OR ".join(terms)


def _raw_query(question: str) -> str:  # the question's own runs of letters and characters, as FTS5 sees them
    return " OR ".join(phrase(t) for t in re.findall(r"[\w]+", question)[:MAX_QUERY_TERMS])


def _trigram_query(question: str) -> str:
    return " OR ".join(phrase(w) for w in query_words(question) if len(w) >= 3) or _raw_query(question)


SCHEMES = {
    "unicode61": Scheme("unicode61", "unicode61", ("text",), lambda t: (t,), _raw_query),
    "trigram": Scheme("trigram", "trigram", ("text",), lambda t: (t,), _trigram_query),
    "chars": Scheme("chars", "unicode61", ("chars",), lambda t: (cjk_chars(t) + " " + " ".join(words(t)),),
                    lambda q: " OR ".join(phrase(" ".join(CJK.findall(w)) or w) for w in query_words(q))),
    "words": Scheme("words", "unicode61", ("words",), lambda t: (" ".join(words(t)),),
                    lambda q: " OR ".join(phrase(w) for w in query_words(q))),
    "words+chars": Scheme("words+chars", "unicode61", ("words", "chars"),
                          lambda t: (" ".join(words(t)), cjk_chars(t)), _words_chars_query, (2.0, 1.0)),
}
DEFAULT_SCHEME = "words+chars"
