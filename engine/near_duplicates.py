"""Near-duplicate images by perceptual hash: the same picture rescaled, recompressed or lightly edited."""

from __future__ import annotations

import numpy as np

# Bits (of 64) two pHashes may differ by and still be one picture. imagehash's own
# examples treat <= 10 as "similar"; 6 keeps distinct photos of one scene apart.
MAX_DISTANCE = 6


def hash_int(phash: str) -> int:
    return int(phash, 16)


def distance(a: str, b: str) -> int:
    return (hash_int(a) ^ hash_int(b)).bit_count()


class PhashIndex:
    """The stored images' hashes in memory; a linear scan of XOR popcounts (fast to ~10^6)."""

    def __init__(self, rows: list[tuple[int, str]] | None = None):
        self._ids: list[int] = []
        self._hashes: list[int] = []
        self._array: np.ndarray | None = None
        for image_id, phash in rows or []:
            self.add(image_id, phash)

    def add(self, image_id: int, phash: str | None) -> None:
        if phash:
            self._ids.append(image_id)
            self._hashes.append(hash_int(phash))
            self._array = None

    def nearest(self, phash: str | None, max_distance: int = MAX_DISTANCE) -> int | None:
        """The id of the closest stored image within ``max_distance`` bits, if any."""
        if not phash or not self._ids:
            return None
        if self._array is None:
            self._array = np.array(self._hashes, dtype=np.uint64)
        bits = np.unpackbits((self._array ^ np.uint64(hash_int(phash))).view(np.uint8).reshape(-1, 8), axis=1)
        distances = bits.sum(axis=1)
        best = int(distances.argmin())
        return self._ids[best] if distances[best] <= max_distance else None


def collapse(phashes: list[str | None], max_distance: int = MAX_DISTANCE) -> list[int]:
    """Indices to keep from a best-first list: each keeps the first of its near-duplicates."""
    kept: list[int] = []
    for n, phash in enumerate(phashes):
        if phash is None or all(
            phashes[k] is None or distance(phash, phashes[k]) > max_distance for k in kept
        ):
            kept.append(n)
    return kept
