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
    doc = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    total = ids.size
    if total < n:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    vocab = int(ids.max()) + 1 if total else 1
    cur = ids.copy()
    for k in range(1, n):
        m = total - k
        combined = cur[:m] * vocab + ids[k : k + m]
        _, cur = np.unique(combined, return_inverse=True)
        cur = cur.astype(np.int64).ravel()
    m = total - n + 1
    start_doc = doc[:m]
    valid = start_doc == doc[n - 1 : n - 1 + m]
    gid = cur[:m][valid]
    _, gid = np.unique(gid, return_inverse=True)
    return gid.astype(np.int64).ravel(), start_doc[valid]
