"""Tail coverage of a candidate batch against its baseline (pure numpy/scipy, no I/O).

Collapse loses the tails first (Shumailov et al. 2024): what the baseline produced rarely, the
candidate stops producing at all, long before means and spreads move.  These statistics are
two-sample, so they are not ``Metric`` objects (one batch → one number); each is a pair

* ``forward``: how much of the *baseline's* tail the candidate still reaches, and
* ``reverse``: the same with the two sides swapped (how much of the candidate's tail the
  baseline reaches).

Two batches of one unchanged model are exchangeable, so ``forward`` and ``reverse`` have the same
expectation: ``reverse`` is the null reference, and a comparison reads ``forward / reverse - 1``
(negative = the candidate lost tails the baseline has).  A candidate that drifts to other content
without narrowing loses coverage both ways and the ratio stays near 0.

**Rare n-gram retention** (``ngram_retention``).  Length control: every output of both sides is
cut to a common prefix of ``L`` tokens (``L`` = the smaller of the two sides' median lengths), so
both count n-grams from the same positions of an answer; then both sides are rarefied to one
budget ``B = min(budget, N_base, N_cand)`` n-gram occurrences.  The baseline's *rare* n-grams are
its expected singletons at that budget (the frequency cut: seen exactly once in ``B`` draws, the
Good–Turing set), and retention is the expected share of them that a ``B``-draw of the other side
contains.  Exact hypergeometric expectations, no sampling noise.

**k-NN precision/recall, density/coverage** (``knn_prdc``): Kynkäänniemi et al. (2019) and
Naeem et al. (2020), Euclidean distance between unit embeddings, ``k`` nearest neighbours; the
same values as the ``prdc`` package.  Recall (baseline samples inside the candidate's k-NN
manifold) is the family's forward statistic and precision (candidate samples inside the
baseline's) its reverse.  Density and coverage are computed but not part of the family: with the
roles swapped, a collapsed candidate's near-duplicates shrink its k-NN balls, so reverse coverage
falls with collapse and the forward/reverse ratio would read collapse as a gain.

See docs/metrics.md ("Tail coverage").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from scipy.special import gammaln

from collector.metrics.base import Corpus
from collector.metrics.blas import halves_dot
from collector.metrics.ngrams import ngram_ids
from collector.metrics.tokenize import token_ids

RETENTION_BUDGET = 2048  # n-gram occurrences per rarefied pool (as distinct-n's ``across``)
RETENTION_ORDERS = (1, 2)
KNN_K = 3  # at ~100 outputs per version k = 5 (prdc's default) puts recall near 1 on both sides


# --- rarefied rare n-gram retention --------------------------------------------------------------


def _log_choose_ratio(total: float, counts: np.ndarray, draws: float) -> np.ndarray:
    """``log C(total - counts, draws) / C(total, draws)`` (caller ensures total - counts >= draws)."""
    rest = total - counts
    return gammaln(rest + 1) - gammaln(rest - draws + 1) - gammaln(total + 1) + gammaln(total - draws + 1)


def singleton_probability(counts: np.ndarray, budget: int) -> np.ndarray:
    """P(n-gram g is drawn exactly once) in ``budget`` draws without replacement from the pool.

    ``c_g · C(N − c_g, B − 1) / C(N, B)`` (hypergeometric), 0 for absent n-grams.
    """
    c = np.asarray(counts, dtype=np.float64)
    total = float(c.sum())
    out = np.zeros_like(c)
    if budget < 1 or total < budget:
        return out
    ok = (c > 0) & (total - c >= budget - 1)
    rest = total - c[ok]
    log_p = (
        np.log(c[ok])
        + gammaln(rest + 1)
        - gammaln(rest - budget + 2)
        - gammaln(budget)
        + gammaln(budget + 1)
        + gammaln(total - budget + 1)
        - gammaln(total + 1)
    )
    out[ok] = np.exp(log_p)
    return out


def presence_probability(counts: np.ndarray, budget: int) -> np.ndarray:
    """P(n-gram g is drawn at least once) in ``budget`` draws without replacement from the pool."""
    c = np.asarray(counts, dtype=np.float64)
    total = float(c.sum())
    out = np.zeros_like(c)
    if budget < 1 or total < budget:
        return out
    present = c > 0
    certain = present & (total - c < budget)
    maybe = present & ~certain
    out[certain] = 1.0
    out[maybe] = -np.expm1(_log_choose_ratio(total, c[maybe], budget))
    return out


def retention_from_counts(source: np.ndarray, target: np.ndarray, budget: int) -> float:
    """Expected share of the source's rare n-grams (singletons of a ``B``-draw) that a ``B``-draw
    of the target contains, ``B = min(budget, N_source, N_target)``; NaN when either side is empty
    or the source has no rare n-gram.  ``source``/``target``: counts over one n-gram vocabulary."""
    s = np.asarray(source, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    if s.shape != t.shape:
        raise ValueError(f"source and target counts must share one vocabulary, got {s.shape} and {t.shape}")
    b = int(min(budget, s.sum(), t.sum()))
    if b < 1:
        return float("nan")
    rare = singleton_probability(s, b)
    mass = float(rare.sum())
    if mass <= 0:
        return float("nan")
    return halves_dot(rare, presence_probability(t, b)) / mass


def _prefix(ids: np.ndarray, offsets: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Every text's first ``limit`` tokens."""
    lengths = np.minimum(np.diff(offsets), limit)
    keep = np.concatenate([np.arange(s, s + n) for s, n in zip(offsets[:-1], lengths, strict=True)] or [[]])
    return ids[keep.astype(np.int64)], np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def common_prefix_length(base_lengths: np.ndarray, cand_lengths: np.ndarray) -> int:
    """The length control: the smaller of the two sides' median output lengths (tokens), >= 1."""
    if base_lengths.size == 0 or cand_lengths.size == 0:
        return 1
    return max(1, int(min(np.median(base_lengths), np.median(cand_lengths))))


def prompt_ngram_counts(
    base_texts: Sequence[str],
    base_prompt: np.ndarray,
    cand_texts: Sequence[str],
    cand_prompt: np.ndarray,
    n: int,
    n_prompts: int,
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(prompts × n-grams) count matrices of both sides over one vocabulary, outputs cut to the
    common prefix (``common_prefix_length``).  ``*_prompt``: each text's prompt index."""
    texts = [*base_texts, *cand_texts]
    ids, offs = token_ids(texts)
    lengths = np.diff(offs)
    nb = len(base_texts)
    limit = common_prefix_length(lengths[:nb], lengths[nb:])
    ids, offs = _prefix(ids, offs, limit)
    gid, doc = ngram_ids(ids, offs, n)
    g = int(gid.max()) + 1 if gid.size else 0
    owner = np.concatenate([np.asarray(base_prompt), np.asarray(cand_prompt)]).astype(np.int64)
    is_base = doc < nb

    def matrix(mask: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix((np.ones(int(mask.sum())), (owner[doc[mask]], gid[mask])), shape=(n_prompts, g))

    return matrix(is_base), matrix(~is_base)


def rare_ngram_retention(
    baseline: Sequence[str], candidate: Sequence[str], n: int, budget: int = RETENTION_BUDGET
) -> tuple[float, float]:
    """(forward, reverse) rare n-gram retention of two pooled sets of outputs (see module doc)."""
    zb, zc = np.zeros(len(baseline), np.int64), np.zeros(len(candidate), np.int64)
    b, c = prompt_ngram_counts(baseline, zb, candidate, zc, n, 1)
    bc, cc = np.asarray(b.sum(axis=0)).ravel(), np.asarray(c.sum(axis=0)).ravel()
    return retention_from_counts(bc, cc, budget), retention_from_counts(cc, bc, budget)


# --- k-NN precision / recall / density / coverage ------------------------------------------------


def _distances(sim: np.ndarray) -> np.ndarray:
    """Euclidean distance between unit vectors from their cosine similarity."""
    return np.sqrt(np.maximum(0.0, 2.0 - 2.0 * sim))


def _kth_radius(d_self: np.ndarray, k: int) -> np.ndarray:
    """Distance to the k-th nearest other row (the row itself, at 0, is the 0-th), per row."""
    kk = min(k, d_self.shape[1] - 1)
    return np.partition(d_self, kk, axis=1)[:, kk]


def prdc_from_distances(d_rr: np.ndarray, d_ff: np.ndarray, d_rf: np.ndarray, k: int) -> dict[str, float]:
    """Precision, recall, density and coverage from the three distance matrices (real × real,
    fake × fake, real × fake); the definitions of the ``prdc`` package."""
    if d_rr.shape[0] < 2 or d_ff.shape[0] < 2:
        nan = float("nan")
        return {"precision": nan, "recall": nan, "density": nan, "coverage": nan}
    r_real = _kth_radius(d_rr, k)
    r_fake = _kth_radius(d_ff, k)
    inside_real = d_rf < r_real[:, None]  # fake j inside real i's ball
    return {
        "precision": float(inside_real.any(axis=0).mean()),
        "recall": float((d_rf < r_fake[None, :]).any(axis=1).mean()),
        "density": float(inside_real.sum(axis=0).mean() / k),
        "coverage": float((d_rf.min(axis=1) < r_real).mean()),
    }


def knn_prdc(real: np.ndarray, fake: np.ndarray, k: int = KNN_K) -> dict[str, float]:
    """k-NN precision/recall (Kynkäänniemi et al. 2019) and density/coverage (Naeem et al. 2020)
    of ``fake`` against ``real``; rows L2-normalised embeddings."""
    real = np.asarray(real, dtype=np.float64)
    fake = np.asarray(fake, dtype=np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"embeddings must be (N, d) arrays of one width, got {real.shape} and {fake.shape}")
    return prdc_from_distances(
        _distances(real @ real.T), _distances(fake @ fake.T), _distances(real @ fake.T), k
    )


# --- the family over two corpora, per selection of prompts ---------------------------------------


def tail_names(with_embeddings: bool) -> list[str]:
    """The family in report order: rare n-gram retention per order, then k-NN recall."""
    names = [f"tail_ngram_retention_{n}" for n in RETENTION_ORDERS]
    return names + (["tail_knn_recall"] if with_embeddings else [])


class TailPair:
    """Precomputed statistics of a baseline and a candidate corpus over the same prompts.

    ``pairs(w)`` returns (forward, reverse) of every statistic on the prompts with ``w > 0``:
    per-prompt n-gram counts summed (a sparse mat-vec) and sub-matrices of one distance matrix, so
    a half-sample replicate costs no re-tokenisation and no re-embedding.
    """

    def __init__(self, base: Corpus, cand: Corpus, budget: int = RETENTION_BUDGET, k: int = KNN_K) -> None:
        if base.prompt_ids != cand.prompt_ids:
            raise ValueError("tail statistics need both corpora restricted to the same prompts")
        self.budget, self.k = budget, k
        self.base_rows, self.cand_rows = base.sample_prompt_index(), cand.sample_prompt_index()
        self.counts = {
            n: prompt_ngram_counts(base.texts, self.base_rows, cand.texts, self.cand_rows, n, base.n_prompts)
            for n in RETENTION_ORDERS
        }
        self.dist: np.ndarray | None = None
        if base.embeddings is not None and cand.embeddings is not None:
            x = np.concatenate([base.embeddings, cand.embeddings]).astype(np.float64)
            self.dist = _distances(x @ x.T)

    @property
    def names(self) -> list[str]:
        return tail_names(self.dist is not None)

    def _prdc(self, real: np.ndarray, fake: np.ndarray) -> dict[str, float]:
        assert self.dist is not None
        d = self.dist
        return prdc_from_distances(
            d[np.ix_(real, real)], d[np.ix_(fake, fake)], d[np.ix_(real, fake)], self.k
        )

    def pairs(self, w: np.ndarray) -> dict[str, tuple[float, float]]:
        """(forward, reverse) of every statistic of the family on the prompts with ``w > 0``."""
        sel = (np.asarray(w) > 0).astype(np.float64)
        out: dict[str, tuple[float, float]] = {}
        for n, (b, c) in self.counts.items():
            bc, cc = b.T @ sel, c.T @ sel
            out[f"tail_ngram_retention_{n}"] = (
                retention_from_counts(bc, cc, self.budget),
                retention_from_counts(cc, bc, self.budget),
            )
        if self.dist is not None:
            base = np.flatnonzero(sel[self.base_rows] > 0)
            cand = self.base_rows.size + np.flatnonzero(sel[self.cand_rows] > 0)
            d = self.dist
            prdc = prdc_from_distances(
                d[np.ix_(base, base)], d[np.ix_(cand, cand)], d[np.ix_(base, cand)], self.k
            )
            out["tail_knn_recall"] = (prdc["recall"], prdc["precision"])
        return out
