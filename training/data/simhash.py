"""Near-duplicate detection: 64-bit SimHash of character 3-grams, banded index."""

from __future__ import annotations

import hashlib


def simhash(text: str) -> int:
    """64-bit SimHash of the character 3-grams of `text`."""
    weights = [0] * 64
    for i in range(max(1, len(text) - 2)):
        h = int.from_bytes(hashlib.blake2b(text[i:i + 3].encode(), digest_size=8).digest(), "little")
        for bit in range(64):
            weights[bit] += 1 if h >> bit & 1 else -1
    return sum(1 << bit for bit in range(64) if weights[bit] > 0)


class NearDuplicates:
    """SimHash index: four 16-bit bands; candidates share a band, near means Hamming distance <= 3."""

    def __init__(self) -> None:
        self.bands: list[dict[int, list[int]]] = [{} for _ in range(4)]

    def seen(self, h: int) -> bool:
        keys = [(h >> (16 * b)) & 0xFFFF for b in range(4)]
        for band, key in zip(self.bands, keys):
            if any(bin(h ^ other).count("1") <= 3 for other in band.get(key, ())):
                return True
        for band, key in zip(self.bands, keys):
            band.setdefault(key, []).append(h)
        return False
