"""Per-prompt values of the lexical metrics from their cached per-text statistics: the vectorised
``within`` scope (one pass over all prompts), and ``within`` of many subsets of one prompt's
outputs at once (the per-prompt permutation tests).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.special import gammaln

from collector.metrics.base import Corpus


def _prompt_rows(ct: sp.csr_matrix, corpus: Corpus) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Per-prompt n-gram counts (P × G, CSR), each stored entry's prompt, and prompt totals."""
    owner = sp.csr_matrix(
        (np.ones(corpus.n_samples), (np.arange(corpus.n_samples), corpus.sample_prompt_index())),
        shape=(corpus.n_samples, corpus.n_prompts),
    )
    pg = (ct @ owner).T.tocsr()
    row = np.repeat(np.arange(corpus.n_prompts), np.diff(pg.indptr))
    return pg, row, np.bincount(row, weights=pg.data, minlength=corpus.n_prompts)


def distinct_per_prompt(ct: sp.csr_matrix, corpus: Corpus, budget: int) -> np.ndarray:
    pg, row, total = _prompt_rows(ct, corpus)
    c = pg.data
    nnz = np.diff(pg.indptr).astype(np.float64)
    n = total[row]
    rest = n - c
    ok = rest >= budget
    term = np.ones_like(c)
    term[ok] = -np.expm1(
        gammaln(rest[ok] + 1)
        - gammaln(rest[ok] - budget + 1)
        - gammaln(n[ok] + 1)
        + gammaln(n[ok] - budget + 1)
    )
    rarefied = np.minimum(np.bincount(row, weights=term, minlength=corpus.n_prompts), np.minimum(budget, nnz))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(total <= budget, nnz / total, rarefied / budget)
    return np.where(total > 0, out, np.nan)


def _rarefied_terms(c: np.ndarray, n: np.ndarray, budget: int, lg: np.ndarray) -> np.ndarray:
    """``1 - C(n - c, B) / C(n, B)`` per entry (1 where fewer than B others are left), from the
    table ``lg`` of log k!."""
    rest = n - c
    ok = rest >= budget
    term = np.ones(np.broadcast(c, n).shape)
    r, m = np.broadcast_to(rest, term.shape)[ok], np.broadcast_to(n, term.shape)[ok]
    term[ok] = -np.expm1(lg[r] - lg[r - budget] - lg[m] + lg[m - budget])
    return term


def distinct_of_sets(ct: sp.csr_matrix, sets: np.ndarray, budget: int) -> np.ndarray:
    """``distinct_per_prompt`` of subsets of one prompt's texts: ``ct`` its (grams × texts) counts,
    ``sets`` (S × texts) 0/1 rows; the same value per row as the prompt-level path (to the last
    bits of the sum's order).

    An n-gram found in one text only (two thirds of them in real outputs of one prompt) adds the
    same term to every set holding that text, given its count and the set's size: those n-grams are
    grouped by (text, count) and counted per set by one small product; only n-grams shared by
    texts are counted per set in the sparse product."""
    ct = ct.tocsr()
    sel = np.asarray(sets, dtype=np.float64)
    n_texts = sel.shape[1]
    in_texts = np.diff(ct.indptr)
    lone = in_texts == 1
    first = ct.indptr[:-1][lone]
    lone_text, lone_count = ct.indices[first], np.rint(ct.data[first]).astype(np.int64)
    counts, which = np.unique(lone_count, return_inverse=True)
    groups = np.zeros((n_texts, counts.size))  # lone n-grams per (text, count)
    np.add.at(groups, (lone_text, which), 1.0)
    per_set = sel @ groups  # (S × counts): lone n-grams of each count in each set (exact integers)
    tokens = np.asarray(ct.sum(axis=0)).ravel()
    total = np.rint(sel @ tokens).astype(np.int64)  # tokens per set

    shared = ct[~lone]
    pg = (sp.csr_matrix(sel) @ shared.T.tocsr()).tocsr()
    pg.eliminate_zeros()
    c = np.rint(pg.data).astype(np.int64)
    row = np.repeat(np.arange(pg.shape[0]), np.diff(pg.indptr))
    nnz = np.diff(pg.indptr).astype(np.float64) + per_set.sum(axis=1)
    lg = gammaln(np.arange(int(total.max(initial=0)) + 1) + 1.0)  # log k!, looked up, not recomputed
    shared_terms = np.bincount(row, weights=_rarefied_terms(c, total[row], budget, lg), minlength=pg.shape[0])
    lone_terms = (per_set * _rarefied_terms(counts[None, :], total[:, None], budget, lg)).sum(axis=1)
    rarefied = np.minimum(shared_terms + lone_terms, np.minimum(budget, nnz))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(total <= budget, nnz / total, rarefied / budget)
    return np.where(total > 0, out, np.nan)


def entropy_per_prompt(ct: sp.csr_matrix, corpus: Corpus) -> np.ndarray:
    pg, row, total = _prompt_rows(ct, corpus)
    p = pg.data / total[row]
    h = -np.bincount(row, weights=p * np.log(p), minlength=corpus.n_prompts)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total >= 2, h / np.log(total) + 0.0, np.nan)


def _prompt_sum(corpus: Corpus, values: np.ndarray) -> np.ndarray:
    return np.bincount(corpus.sample_prompt_index(), weights=values, minlength=corpus.n_prompts)


def ratio_per_prompt(corpus: Corpus, num: np.ndarray, den: np.ndarray) -> np.ndarray:
    a, b = _prompt_sum(corpus, num), _prompt_sum(corpus, den)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / b, np.nan)


def length_per_prompt(lengths: np.ndarray, corpus: Corpus, std: bool) -> np.ndarray:
    k = np.diff(corpus.offsets).astype(np.float64)
    mean = _prompt_sum(corpus, lengths) / k
    if not std:
        return mean
    dev = lengths - mean[corpus.sample_prompt_index()]
    return np.sqrt(_prompt_sum(corpus, dev**2) / k)


def dup_per_prompt(keys: np.ndarray, corpus: Corpus) -> np.ndarray:
    pidx = corpus.sample_prompt_index()
    _, inv, counts = np.unique(pidx * (int(keys.max()) + 1) + keys, return_inverse=True, return_counts=True)
    dup = (counts[inv.ravel()] >= 2).astype(np.float64)
    k = np.diff(corpus.offsets)
    return np.where(k >= 2, _prompt_sum(corpus, dup) / k, np.nan)
