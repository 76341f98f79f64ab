"""N-grams as compact integer ids, computed with numpy over a concatenated token-id array.

An n-gram never crosses the boundary between two texts.  Ids are built one order at a time:
the id of the (k-1)-gram at position i combined with the token at i + k - 1, then compacted with
``np.unique(return_inverse=True)``, so values stay below (#distinct) × (vocabulary) and never
overflow int64.
"""

from __future__ import annotations

import numpy as np


def ngram_ids(ids: np.ndarray, offsets: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Compact n-gram ids and the owning text of each n-gram (both int64, in text order)."""
    if n < 1:
        raise ValueError(f"n-gram order must be >= 1, got {n}")
    return ngram_ids_upto(ids, offsets, n)[n - 1]


def ngram_ids_upto(ids: np.ndarray, offsets: np.ndarray, n_max: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``ngram_ids`` for every order 1..n_max at once (the (k-1)-gram ids are shared), same values."""
    if n_max < 1:
        raise ValueError(f"n-gram order must be >= 1, got {n_max}")
    doc = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    total = ids.size
    vocab = int(ids.max()) + 1 if total else 1
    cur = ids.copy()
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for n in range(1, n_max + 1):
        if n > 1:
            m = total - (n - 1)
            combined = cur[:m] * vocab + ids[n - 1 : n - 1 + m]
            _, cur = np.unique(combined, return_inverse=True)
            cur = cur.astype(np.int64).ravel()
        if total < n:
            out.extend([(np.empty(0, np.int64), np.empty(0, np.int64))] * (n_max - n + 1))
            break
        m = total - n + 1
        start_doc = doc[:m]
        valid = start_doc == doc[n - 1 : n - 1 + m]
        _, gid = np.unique(cur[:m][valid], return_inverse=True)
        out.append((gid.astype(np.int64).ravel(), start_doc[valid]))
    return out
