"""Embedding-spread metrics over L2-normalised sentence embeddings (pure numpy, no I/O).

* ``embedding_mean_distance``: mean cosine distance over distinct pairs, O(n·d) from the sum of
  the vectors: ``sum_{i != j} <x_i, x_j> = ||sum x||^2 - sum ||x_i||^2``.
* ``vendi_score``: Friedman & Dieng (2022), order q = 1, kernel ``K = X Xᵀ / n`` (cosine
  similarity); ``exp`` of the Shannon entropy of K's eigenvalues, taken from the d×d matrix
  ``Xᵀ X / n`` (same non-zero spectrum), O(n·d²).
* ``embedding_nn_distance``: mean cosine distance from each output to its nearest *other* output;
  exact, by blocked matrix products (never an n×n matrix in memory), O(n²·d).

The ``across`` scope of each metric takes a bootstrap replicate as prompt multiplicities ``w``
(prompt p's rows counted ``w[p]`` times) and is computed from per-prompt statistics prepared once
in ``corpus.cache``: per-prompt sum vectors (mean distance), per-prompt d×d Gram matrices (Vendi)
and, per row, the distance to its nearest neighbour in its own prompt and in each of the nearest
``NN_TOP_PROMPTS`` other prompts (nearest neighbour; see ``EmbeddingNNDistance``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from collector.metrics.base import Corpus, Family
from collector.metrics.blas import one_blas_thread

NN_BLOCK_ROWS = 1024  # rows per block of the exact nearest-neighbour search
NN_TOP_PROMPTS = 16  # other prompts remembered per row for the bootstrap's nearest neighbour
GRAM_STACK_MAX_ENTRIES = 64_000_000  # P·d² above this: Gram per replicate from the rows instead


def _check(x: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D (N, d) array, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("embeddings contain NaN or infinite values")
    return x.astype(dtype, copy=False)


def _embeddings(corpus: Corpus) -> np.ndarray:
    if corpus.embeddings is None:
        raise ValueError("embedding metrics need corpus.embeddings; the batch was not embedded")
    if corpus.embeddings.shape[0] != corpus.n_samples:
        raise ValueError(
            f"corpus.embeddings has {corpus.embeddings.shape[0]} rows for {corpus.n_samples} outputs"
        )
    return _check(corpus.embeddings)


# --- pure functions over one set of rows -------------------------------------------------------


def mean_pairwise_distance(x: np.ndarray) -> float:
    """Mean cosine distance ``1 - <x_i, x_j>`` over ordered pairs i != j; NaN below two rows."""
    x = _check(x)
    n = x.shape[0]
    if n < 2:
        return float("nan")
    s = x.sum(axis=0)
    off_diag = float(s @ s) - float(np.einsum("ij,ij->", x, x))
    return 1.0 - off_diag / (n * (n - 1))


def vendi_from_gram(gram: np.ndarray, n: float) -> float:
    """Vendi score (q = 1) from ``Xᵀ X`` (d×d, rows counted with their weights) and the row count."""
    if n <= 0:
        return float("nan")
    with one_blas_thread():
        lam = np.linalg.eigvalsh(gram / n)
    lam = lam[lam > 0]
    return float(np.exp(-(lam * np.log(lam)).sum()))


def vendi_score(x: np.ndarray) -> float:
    """Vendi score (q = 1) with the cosine-similarity kernel; NaN for no rows."""
    x = _check(x)
    n = x.shape[0]
    if n == 0:
        return float("nan")
    if n < x.shape[1]:  # the n×n kernel is the smaller matrix
        return vendi_from_gram(x @ x.T, n)
    return vendi_from_gram(x.T @ x, n)


def nearest_neighbour_similarity(x: np.ndarray, block: int = NN_BLOCK_ROWS) -> np.ndarray:
    """For every row, the largest cosine similarity to another row (exact, blocked); -inf if alone.

    Products in float32 (similarities to ~1e-7): twice the speed of float64 for the O(n²·d) search.
    """
    x = _check(x, np.float32)
    n = x.shape[0]
    best = np.full(n, -np.inf)
    for start in range(0, n, block):
        stop = min(start + block, n)
        sims = x[start:stop] @ x.T
        sims[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        best[start:stop] = sims.max(axis=1) if n > 1 else -np.inf
    return best


def nn_distance(x: np.ndarray) -> float:
    """Mean cosine distance from each row to its nearest other row; NaN below two rows."""
    if np.asarray(x).shape[0] < 2:
        return float("nan")
    return float(np.mean(1.0 - nearest_neighbour_similarity(x).astype(np.float64)))


# --- Metric objects ---------------------------------------------------------------------------


def _per_prompt(corpus: Corpus, fn: Any) -> np.ndarray:
    x = _embeddings(corpus)
    return np.array([fn(x[corpus.prompt_slice(p)]) for p in range(corpus.n_prompts)], dtype=float)


def _weights(corpus: Corpus, weights: np.ndarray) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (corpus.n_prompts,) or np.any(w < 0):
        raise ValueError(f"weights must be {corpus.n_prompts} non-negative prompt multiplicities")
    return w


@dataclass(frozen=True)
class EmbeddingMeanDistance:
    """Mean pairwise cosine distance; higher = more diverse."""

    name: str = "embedding_mean_distance"
    family: Family = "embedding"
    higher_is_diverse: bool = True
    needs_embeddings: bool = True

    def within(self, corpus: Corpus) -> np.ndarray:
        return _per_prompt(corpus, mean_pairwise_distance)

    def _stats(self, corpus: Corpus) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        key = self.name
        if key not in corpus.cache:
            x = _embeddings(corpus)
            starts = corpus.offsets[:-1]
            sums = np.add.reduceat(x, starts, axis=0)  # (P, d) per-prompt sum vectors
            sq = np.add.reduceat(np.einsum("ij,ij->i", x, x), starts)  # (P,) sum of squared norms
            corpus.cache[key] = (sums, sq, np.diff(corpus.offsets).astype(np.float64))
        return corpus.cache[key]

    def across(self, corpus: Corpus, weights: np.ndarray) -> float:
        w = _weights(corpus, weights)
        sums, sq, counts = self._stats(corpus)
        n = float(w @ counts)
        if n < 2:
            return float("nan")
        s = w @ sums
        return 1.0 - (float(s @ s) - float(w @ sq)) / (n * (n - 1))


@dataclass(frozen=True)
class VendiScore:
    """Vendi score (q = 1, cosine kernel): the effective number of distinct outputs."""

    name: str = "vendi_score"
    family: Family = "embedding"
    higher_is_diverse: bool = True
    needs_embeddings: bool = True
    max_replicates: int = 50  # each across replicate is a d x d eigendecomposition (see suite.py)

    def within(self, corpus: Corpus) -> np.ndarray:
        return _per_prompt(corpus, vendi_score)

    def within_sets(self, texts: list[str], embeddings: np.ndarray | None, sets: np.ndarray) -> np.ndarray:
        """``vendi_score`` of every subset of the rows (``sets``: S × rows, 0/1), batched by size."""
        if embeddings is None:
            raise ValueError("vendi_score needs the outputs' embeddings")
        x = _check(embeddings).astype(np.float64)
        # Every pair's dot product once; a subset's kernel is gathered from it. The same einsum
        # reduction per pair as over the subset's own rows, so the same bits (test_embedding_metrics).
        gram = np.einsum("kd,jd->kj", x, x)
        sel = np.asarray(sets, dtype=bool)
        sizes = sel.sum(axis=1)
        out = np.full(sel.shape[0], np.nan)
        for k in np.unique(sizes):
            if k == 0:
                continue
            rows = np.flatnonzero(sizes == k)
            idx = np.nonzero(sel[rows])[1].reshape(rows.size, int(k))
            lam = np.linalg.eigvalsh(gram[idx[:, :, None], idx[:, None, :]] / k)
            lam = np.where(lam > 0, lam, 1.0)  # 1 log 1 = 0: non-positive eigenvalues drop out
            out[rows] = np.exp(-(lam * np.log(lam)).sum(axis=1))
        return out

    def across(self, corpus: Corpus, weights: np.ndarray) -> float:
        w = _weights(corpus, weights)
        x = _embeddings(corpus)
        counts = np.diff(corpus.offsets)
        n = float(w @ counts)
        if n == 0:
            return float("nan")
        d = x.shape[1]
        row_w = np.repeat(w, counts)
        keep = row_w > 0
        if int(keep.sum()) < d:
            # Fewer distinct rows than dimensions: the weighted n×n kernel (rows scaled by sqrt(w))
            # has the same nonzero spectrum as the d×d Gram and is far cheaper to decompose.
            xs = x[keep].astype(np.float64) * np.sqrt(row_w[keep])[:, None]
            return vendi_from_gram(xs @ xs.T, n)
        if corpus.n_prompts * d * d <= GRAM_STACK_MAX_ENTRIES:
            if self.name not in corpus.cache:
                grams = np.stack(
                    [x[corpus.prompt_slice(p)].T @ x[corpus.prompt_slice(p)] for p in range(corpus.n_prompts)]
                )
                # float32 halves the memory traffic of the per-replicate sum; the eigen step is float64
                corpus.cache[self.name] = grams.reshape(corpus.n_prompts, d * d).astype(np.float32)
            gram = (w.astype(np.float32) @ corpus.cache[self.name]).reshape(d, d).astype(np.float64)
        else:  # too many prompts to keep a Gram each: weight the rows instead, O(N·d²)
            xs = x[keep] * np.sqrt(row_w[keep])[:, None]
            gram = xs.T @ xs
        return vendi_from_gram(gram, n)


@dataclass(frozen=True)
class EmbeddingNNDistance:
    """Mean cosine distance to the nearest other output; near-duplicates pull it down.

    ``across`` for a replicate: a row of a prompt drawn twice or more has an identical copy
    (distance 0); a row of a prompt drawn once takes the nearest of (its own prompt's other rows,
    the rows of the other prompts drawn).  Per row we keep its nearest neighbour in its own prompt
    and in each of its ``NN_TOP_PROMPTS`` nearest other prompts.  If none of those prompts is in
    the replicate (probability about e^-16 ≈ 1e-7 per row) the row takes its distance to the
    furthest of them, a slight under-estimate; with at most ``NN_TOP_PROMPTS`` other prompts the
    result is exact.
    """

    name: str = "embedding_nn_distance"
    family: Family = "embedding"
    higher_is_diverse: bool = True
    needs_embeddings: bool = True

    def within(self, corpus: Corpus) -> np.ndarray:
        return _per_prompt(corpus, nn_distance)

    def _stats(self, corpus: Corpus) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.name not in corpus.cache:
            corpus.cache[self.name] = nn_prompt_table(_embeddings(corpus), corpus.offsets, NN_TOP_PROMPTS)
        return corpus.cache[self.name]

    def across(self, corpus: Corpus, weights: np.ndarray) -> float:
        w = _weights(corpus, weights)
        own, top_sim, top_prompt = self._stats(corpus)
        counts = np.diff(corpus.offsets)
        if float(w @ counts) < 2:
            return float("nan")
        row_p = corpus.sample_prompt_index()
        row_w = w[row_p]
        live = row_w > 0
        drawn = w[top_prompt] > 0  # (N, k): which remembered prompts are in the replicate
        first = np.where(drawn.any(axis=1), drawn.argmax(axis=1), top_sim.shape[1] - 1)
        other = top_sim[np.arange(len(first)), first]
        sim = np.maximum(own, other)
        sim = np.where(row_w >= 2, 1.0, sim)
        dist = 1.0 - sim
        return float((row_w[live] * dist[live]).sum() / row_w[live].sum())


def nn_prompt_table(
    x: np.ndarray, offsets: np.ndarray, k: int, block: int = NN_BLOCK_ROWS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: best similarity within its own prompt (others rows only), and the ``k`` best other
    prompts' best similarities (descending) with their prompt indices; -inf where absent."""
    x = _check(x, np.float32)
    n = x.shape[0]
    counts = np.diff(offsets)
    if np.any(counts <= 0):
        raise ValueError("every prompt needs at least one output")
    n_prompts = len(counts)
    row_p = np.repeat(np.arange(n_prompts), counts)
    k_eff = max(1, min(k, n_prompts - 1))
    own = np.full(n, -np.inf)
    top_sim = np.full((n, k_eff), -np.inf)
    top_prompt = np.zeros((n, k_eff), dtype=np.int64)
    starts = offsets[:-1]
    for start in range(0, n, block):
        stop = min(start + block, n)
        rows = np.arange(start, stop)
        sims = x[start:stop] @ x.T
        sims[rows - start, rows] = -np.inf
        per_prompt = np.maximum.reduceat(sims, starts, axis=1)  # (b, P)
        own[start:stop] = per_prompt[rows - start, row_p[start:stop]]
        if n_prompts == 1:
            continue
        per_prompt[rows - start, row_p[start:stop]] = -np.inf
        idx = np.argpartition(-per_prompt, k_eff - 1, axis=1)[:, :k_eff]
        vals = np.take_along_axis(per_prompt, idx, axis=1)
        order = np.argsort(-vals, axis=1)
        top_sim[start:stop] = np.take_along_axis(vals, order, axis=1)
        top_prompt[start:stop] = np.take_along_axis(idx, order, axis=1)
    return own, top_sim, top_prompt


EMBEDDING_METRICS = [EmbeddingMeanDistance(), VendiScore(), EmbeddingNNDistance()]
