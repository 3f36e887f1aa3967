"""Scores computed from logits, shared by `aurora-export verify` and `aurora-eval` (numpy, imported when called)."""

from __future__ import annotations


def log_softmax(x):
    """log(softmax(x)) along the last axis, in float64."""
    import numpy as np

    x = np.asarray(x, dtype=np.float64)
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def choice_probs(logits, choice_ids: list[int]) -> list[float]:
    """Softmax over the logits of the answer tokens only (what the official scripts compute)."""
    import numpy as np

    picked = np.asarray([float(logits[i]) for i in choice_ids], dtype=np.float64)
    return np.exp(log_softmax(picked)).tolist()


def kl_divergence(reference_logits, logits):
    """Mean KL(reference ‖ other) over positions."""
    import numpy as np

    p, q = log_softmax(reference_logits), log_softmax(logits)
    return (np.exp(p) * (p - q)).sum(-1)
