"""Self-BLEU (Zhu et al. 2018) with NLTK's semantics, exact leave-one-out in O(n-grams log n-grams).

The per-text tables (``bleu_tables``) are built once per batch; the pooled value for text
multiplicities (``weighted_bleu``) is what the across scope and its replicates read
(``lexical_replicates.self_bleu_many``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from collector.metrics.grams import MAX_ORDER, Grams, checked_texts
from collector.metrics.lexical_replicates import closest_ref_len

BLEU_ORDER = MAX_ORDER
BLEU_EPSILON = 0.1  # NLTK SmoothingFunction().method1


@dataclass
class BleuTables:
    lengths: np.ndarray  # tokens per text
    pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]]  # per order: (doc, gram, count) sorted


def bleu_tables(texts: Sequence[str], grams: Grams | None = None) -> BleuTables:
    grams = grams or Grams.of(texts)
    pairs = []
    for n in range(1, BLEU_ORDER + 1):
        gid, doc = grams.ngrams(n)
        key, cnt = np.unique(gid * len(texts) + doc, return_counts=True)
        gram, d = np.divmod(key, len(texts))
        order = np.lexsort((-cnt, gram))  # by gram, then count descending
        # int32 ids and float32 counts (exact integers) halve the largest table of the suite
        pairs.append((d[order].astype(np.int32), gram[order].astype(np.int32), cnt[order].astype(np.float32)))
    return BleuTables(lengths=grams.lengths, pairs=pairs)


def self_bleu_from(t: BleuTables, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-text leave-one-out BLEU-4 and the mask of texts in the pool (multiplicities m)."""
    n_docs = t.lengths.size
    live = m > 0
    log_p = np.zeros(n_docs)
    no_unigram = np.zeros(n_docs, bool)
    for k, (doc, gram, cnt) in enumerate(t.pairs, start=1):
        keep = live[doc]
        d, g, c = doc[keep], gram[keep], cnt[keep]
        start = np.r_[True, g[1:] != g[:-1]] if g.size else np.zeros(0, bool)
        first = np.flatnonzero(start)
        grp = np.cumsum(start) - 1
        max1 = c[first][grp]
        has2 = np.r_[first[1:], g.size] - first >= 2
        max2 = np.where(has2, c[np.minimum(first + 1, max(g.size - 1, 0))], 0.0)[grp]
        loo = np.where(c == max1, max2, max1)
        loo = np.where(m[d] >= 2, np.maximum(loo, c), loo)  # an identical copy is a reference
        num = np.bincount(d, weights=np.minimum(c, loo), minlength=n_docs)
        den = np.maximum(1, t.lengths - k + 1).astype(np.float64)
        if k == 1:
            no_unigram = num == 0
        p = np.where(num == 0, BLEU_EPSILON / den, num / den)
        log_p += np.log(p) / BLEU_ORDER
    ref = closest_ref_len(t.lengths, m).astype(np.float64)
    h = t.lengths.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        bp = np.where(h > ref, 1.0, np.where(h == 0, 0.0, np.exp(1 - ref / np.maximum(h, 1))))
    bleu = np.where(no_unigram, 0.0, bp * np.exp(log_p))
    return bleu, live


def self_bleu(texts: Sequence[str]) -> float:
    """Self-BLEU (Zhu et al. 2018): mean over texts of BLEU-4 against all *other* texts.

    NLTK ``sentence_bleu`` semantics (uniform weights, counts clipped by the max count in any
    reference, brevity penalty with the closest reference length, 0 when no unigram matches) and
    ``SmoothingFunction().method1`` (ε = 0.1 for an order with no match).  Exact leave-one-out in
    O(n-grams log n-grams): per n-gram the largest and second-largest count over texts.
    NaN below two texts.  Higher = less diverse.
    """
    texts = checked_texts(texts, "self_bleu")
    if len(texts) < 2:
        return float("nan")
    bleu, _ = self_bleu_from(bleu_tables(texts), np.ones(len(texts)))
    return float(bleu.mean())


def weighted_bleu(t: BleuTables, m: np.ndarray) -> float:
    if m.sum() < 2:
        return float("nan")
    bleu, live = self_bleu_from(t, m)
    return float((m[live] * bleu[live]).sum() / m[live].sum())
