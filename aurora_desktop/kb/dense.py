"""Dense retrieval with a GGUF embedding model the user brings (e.g. bge-m3), through llama.cpp's embedding mode,
and its fusion with keyword search by reciprocal rank.

    embedder = Embedder("bge-m3-q8_0.gguf")
    vectors = embedder.embed(["大熊猫吃竹子。", …])     # (n, dim) float32, unit length
    fuse([keyword_ids, dense_ids])                       # chunk ids by reciprocal-rank fusion

The model's own pooling (bge-m3: CLS) is used; a model without one (a chat model's GGUF) is mean-pooled.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aurora_core.files import fingerprint
from aurora_core.llama_runtime import load_llama
from aurora_core.model_check import check_gguf

RRF_K = 60  # the constant of reciprocal-rank fusion (Cormack et al. 2009): score = sum of 1 / (RRF_K + rank)
CANDIDATES = 50  # each retriever's list that fusion ranks
EMBED_CTX = 1024  # tokens per text (a chunk is at most 360 characters)


class Embedder:
    def __init__(self, model_path: str | Path, n_threads: int | None = None) -> None:
        import llama_cpp

        info = check_gguf(model_path, n_ctx=EMBED_CTX)
        pooled = any(k.endswith(".pooling_type") for k in info.metadata)
        self.path, self.fingerprint = info.path, fingerprint(info.path)
        self.llm = load_llama(info.path, embedding=True, n_ctx=EMBED_CTX, n_batch=EMBED_CTX, n_ubatch=EMBED_CTX,
                              n_threads=n_threads,
                              **({} if pooled else {"pooling_type": llama_cpp.LLAMA_POOLING_TYPE_MEAN}))

    def embed(self, texts: list[str]) -> np.ndarray:
        """One unit-length float32 row per text."""
        rows = np.asarray([self.llm.embed(t, truncate=True) for t in texts], dtype=np.float32)
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        return rows / np.where(norms == 0, 1, norms)

    def close(self) -> None:
        self.llm.close()


def nearest(query: np.ndarray, matrix: np.ndarray, k: int) -> np.ndarray:
    """Row indices of `matrix` by cosine similarity to `query` (both unit length), best first."""
    if len(matrix) == 0:
        return np.zeros(0, dtype=np.int64)
    scores = matrix @ query
    k = min(k, len(scores))
    top = np.argpartition(-scores, k - 1)[:k]
    return top[np.argsort(-scores[top])]


def fuse(rankings: list[list[int]], k: int = RRF_K) -> list[int]:
    """Ids ranked by reciprocal-rank fusion of several rankings (best first)."""
    score: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, 1):
            score[item] = score.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(score, key=lambda i: -score[i])
