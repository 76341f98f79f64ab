"""Across-scope lexical values for many prompt weightings at once (the interval replicates).

``suite.across_value`` recomputes every pooled (across-scope) value on ~200 half-samples of the
prompts.  Re-running the plain pooled computation per replicate costs one pass over every output
each time (one ``np.unique`` over all pooled n-grams, one gzip of the joined text); here each
metric first aggregates its per-text statistics to *per-prompt* ones, once, and a replicate, a
vector ``w`` of prompt multiplicities, is then a small computation over prompts and distinct
n-grams:

* distinct-n / n-gram entropy: pooled counts are ``C_prompt @ w`` (n-grams × prompts); the
  rarefied richness and the entropy are sums over the *count-of-counts* histogram.
* self-repetition: ``S_d = Σ_{g ∈ d} df_w(g) − |d|`` with ``df_w = DF_prompt @ w``, so
  ``S = (pres @ DF_prompt) @ w − |d|`` — one (texts × prompts) matrix, a mat-vec per replicate.
* Self-BLEU: a text's leave-one-out clip count for an n-gram is the max over the other pooled
  texts: over its own prompt (fixed) and over the other selected prompts' per-prompt maxima.
  Only (text, n-gram) pairs whose text is the strict maximum of its prompt *and* whose n-gram
  occurs in another prompt can change between replicates; the rest are summed once.
* n-gram diversity score: the pooled word sequence is the selected prompts' blocks one after
  another; its distinct n-grams are those inside the blocks (an incidence over prompts: unique
  counts are nonzero counts) plus the few that straddle a junction between two blocks, looked
  up exactly in the sorted n-gram tables.
* compression ratio: see ``compression_many`` (the policy for the one metric that needs the joined
  text).
* repetition / duplicate / length: per-prompt sums.

Every function returns the same values as the plain pooled computation on each row (tests check
this on real text), up to floating-point summation order; nothing here does I/O.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.special import gammaln

from collector.metrics.base import Corpus

# Joined text gzipped for the compression ratio's interval replicates, per batch (see
# ``compression_many``): 256 MiB ≈ 9 s of gzip -9 on one core of this project's machine.
COMPRESSION_BUDGET_BYTES = 256 * 2**20
COMPRESSION_MIN_REPLICATES = 25


def _owner(corpus: Corpus) -> sp.csr_matrix:
    """(texts × prompts) 0/1 matrix: which prompt owns each text."""
    n = corpus.n_samples
    return sp.csr_matrix(
        (np.ones(n), (np.arange(n), corpus.sample_prompt_index())), shape=(n, corpus.n_prompts)
    )


def _cached(corpus: Corpus, key: str, build: Callable[[], Any]) -> Any:
    if key not in corpus.cache:
        corpus.cache[key] = build()
    return corpus.cache[key]


def _rows(weights: np.ndarray) -> np.ndarray:
    return np.asarray(weights, dtype=np.float64)


# --- counts: distinct-n and entropy -------------------------------------------------------------


def _prompt_counts(ct: sp.csr_matrix, corpus: Corpus, key: str) -> sp.csr_matrix:
    """(n-grams × prompts) counts from the (n-grams × texts) counts, cached per statistic."""
    return _cached(corpus, f"replicates:{key}:{id(ct)}", lambda: (ct @ _owner(corpus)).tocsr())


def _count_histograms(ct: sp.csr_matrix, weights: np.ndarray, corpus: Corpus):
    """Per row of ``weights``: the distinct pooled counts, how many n-grams have each, and the total."""
    cp = _prompt_counts(ct, corpus, "counts")
    for w in _rows(weights):
        pooled = cp @ w
        c = pooled[pooled > 0]
        whole = c.astype(np.int64)
        if np.array_equal(whole, c):  # integer weights: a histogram by bincount, not a sort (the
            hist = np.bincount(whole)  # values and counts of ``np.unique``, in the same order)
            values = np.flatnonzero(hist)
            yield values.astype(np.float64), hist[values].astype(np.float64), float(c.sum()), c.size
        else:
            values, mult = np.unique(c, return_counts=True)
            yield values, mult.astype(np.float64), float(c.sum()), c.size


def rarefied_expectation(values: np.ndarray, mult: np.ndarray, total: float, budget: int) -> float:
    """Expected distinct n-grams in ``budget`` of ``total`` occurrences drawn without replacement,
    from the count-of-counts (``mult[i]`` n-grams occur ``values[i]`` times):
    ``Σ_g 1 − C(N − c_g, B) / C(N, B)`` in log-gamma; unclipped."""
    rest = total - values
    ok = rest >= budget
    log_ratio = (
        gammaln(rest[ok] + 1)
        - gammaln(rest[ok] - budget + 1)
        - gammaln(total + 1)
        + gammaln(total - budget + 1)
    )
    return float(mult[~ok].sum() + (mult[ok] * -np.expm1(log_ratio)).sum())


def distinct_many(ct: sp.csr_matrix, weights: np.ndarray, corpus: Corpus, budget: int) -> np.ndarray:
    """Rarefied distinct-n of the pooled counts, per row (``lexical._distinct_from_counts``)."""
    out = []
    for values, mult, total, size in _count_histograms(ct, weights, corpus):
        if total == 0:
            out.append(float("nan"))
            continue
        if total <= budget:
            out.append(size / total)
            continue
        expected = rarefied_expectation(values, mult, total, budget)
        out.append(min(expected, float(budget), float(size)) / budget)
    return np.asarray(out)


def entropy_many(ct: sp.csr_matrix, weights: np.ndarray, corpus: Corpus) -> np.ndarray:
    """``lexical._entropy_from_counts`` of the pooled n-gram counts, per row: Shannon entropy over
    its maximum ``log(total)`` (in [0, 1]); NaN with fewer than two n-grams."""
    out = []
    for values, mult, total, _ in _count_histograms(ct, weights, corpus):
        if total < 2:
            out.append(float("nan"))
            continue
        p = values / total
        out.append(float(-(mult * p * np.log(p)).sum() / np.log(total)))
    return np.asarray(out)


# --- self-repetition ----------------------------------------------------------------------------

_DENSE_CELLS = 40_000_000  # texts × prompts above which self-repetition goes replicate by replicate


def self_repetition_many(pres: sp.csr_matrix, weights: np.ndarray, corpus: Corpus) -> np.ndarray:
    """``lexical._self_repetition_from`` per row: S = (pres @ DF_prompt) @ w − |d|."""
    w = _rows(weights)
    pidx = corpus.sample_prompt_index()
    own = np.asarray(pres.sum(axis=1)).ravel()
    df_prompt = (pres.T @ _owner(corpus)).tocsr()  # (n-grams × prompts) document frequencies
    dense = max(corpus.n_samples, pres.shape[1]) * corpus.n_prompts <= _DENSE_CELLS
    a = pres @ df_prompt.toarray() if dense else None  # (texts × prompts)
    out = []
    for row in w:
        m = row[pidx]
        if m.sum() == 0:
            out.append(float("nan"))
            continue
        live = m > 0
        # every text's product, then the live ones: no copy of a's live rows per replicate
        per_doc = (a @ row if a is not None else pres @ (df_prompt @ row))[live] - own[live]
        out.append(float((m[live] * np.log(per_doc + 1)).sum() / m.sum()))
    return np.asarray(out)


def self_repetition_within(pres: sp.csr_matrix, corpus: Corpus) -> np.ndarray:
    """``self_repetition`` of each prompt's outputs: document frequencies counted per prompt."""
    coo = pres.tocoo()
    pidx = corpus.sample_prompt_index()
    _, inv, df = np.unique(
        pidx[coo.row] * max(pres.shape[1], 1) + coo.col, return_inverse=True, return_counts=True
    )
    own = np.asarray(pres.sum(axis=1)).ravel()
    per_doc = (
        np.bincount(coo.row, weights=df[inv.ravel()].astype(np.float64), minlength=corpus.n_samples) - own
    )
    out = np.full(corpus.n_prompts, np.nan)
    for p in range(corpus.n_prompts):
        x = per_doc[corpus.prompt_slice(p)]
        if x.size:
            m = np.ones(x.size)
            out[p] = float((m * np.log(x + 1)).sum() / m.sum())
    return out


# --- Self-BLEU ----------------------------------------------------------------------------------


def closest_ref_len(lengths: np.ndarray, m: np.ndarray) -> np.ndarray:
    """NLTK's closest reference length (ties to the shorter) among the other texts of the pool."""
    live = m > 0
    pool = np.sort(np.repeat(lengths[live], m[live].astype(np.int64)))
    h = lengths
    lo = np.searchsorted(pool, h, "left")
    hi = np.searchsorted(pool, h, "right")
    own = np.where(live, 1, 0)
    same = hi - lo - own  # copies of this length among the *other* texts
    pred = np.where(lo > 0, pool[np.maximum(lo - 1, 0)], -(10**12))
    succ = np.where(hi < pool.size, pool[np.minimum(hi, pool.size - 1)], 10**12)
    best = np.where(h - pred <= succ - h, pred, succ)
    return np.where(same > 0, h, best)


class _BleuOrder:
    """One n-gram order of Self-BLEU split into the pairs fixed across replicates and the rest.

    ``fixed[d]``: Σ min(c, within-prompt leave-one-out max) over text d's pairs that no other
    prompt can change; ``full[d]``: Σ c (a text whose prompt appears twice has an identical copy).
    Variable pairs (text d is the strict maximum of its prompt for n-gram g, and g occurs in
    another prompt) and the per-prompt maxima of their n-grams are kept for the replicates.
    """

    def __init__(self, doc: np.ndarray, gram: np.ndarray, cnt: np.ndarray, pidx: np.ndarray, n_docs: int):
        p = pidx[doc]
        order = np.lexsort((-cnt, p, gram))
        d, g, c, p = doc[order], gram[order], cnt[order], p[order]
        start = np.r_[True, (g[1:] != g[:-1]) | (p[1:] != p[:-1])] if g.size else np.zeros(0, bool)
        first = np.flatnonzero(start)
        grp = np.cumsum(start) - 1
        size = np.diff(np.r_[first, g.size])
        top1 = c[first]
        top2 = np.where(size >= 2, c[np.minimum(first + 1, max(g.size - 1, 0))], 0.0)
        lw = np.where(c == top1[grp], top2[grp], top1[grp])  # leave-one-out max within the prompt
        eg, ep = g[first], p[first]  # one entry per (n-gram, prompt): its maximum count there
        n_prompts = np.bincount(eg, minlength=int(g.max()) + 1 if g.size else 0)
        var = (c > lw) & (n_prompts[g] >= 2)
        self.full = np.bincount(d, weights=c, minlength=n_docs)
        self.fixed = np.bincount(d[~var], weights=np.minimum(c, lw)[~var], minlength=n_docs)
        multi = n_prompts[eg] >= 2
        codes = np.cumsum(n_prompts >= 2) - 1  # compact index of the multi-prompt n-grams
        self.n_multi = int((n_prompts >= 2).sum())
        e_order = np.lexsort((-top1[multi], codes[eg[multi]]))
        self.eg, self.ep, self.ev = codes[eg[multi]][e_order], ep[multi][e_order], top1[multi][e_order]
        self.vd, self.vg, self.vp = d[var], codes[g[var]], p[var]
        self.vc, self.vlw = c[var], lw[var]
        self.within = self.fixed + np.bincount(
            self.vd, weights=np.minimum(self.vc, self.vlw), minlength=n_docs
        )

    def clipped(self, w: np.ndarray, doc_w: np.ndarray) -> np.ndarray:
        """Per text: Σ over its n-grams of min(count, max count in the other pooled texts)."""
        keep = w[self.ep] > 0
        g, p, v = self.eg[keep], self.ep[keep], self.ev[keep]
        best1 = np.zeros(self.n_multi)
        best2 = np.zeros(self.n_multi)
        arg1 = np.full(self.n_multi, -1)
        if g.size:
            start = np.r_[True, g[1:] != g[:-1]]
            first = np.flatnonzero(start)
            best1[g[first]], arg1[g[first]] = v[first], p[first]
            second = first + 1
            has2 = np.r_[first[1:], g.size] - first >= 2
            best2[g[first[has2]]] = v[second[has2]]
        other = np.where(arg1[self.vg] == self.vp, best2[self.vg], best1[self.vg])
        single = w[self.vp] == 1  # copies (w >= 2) and absent prompts take ``full`` / nothing
        contrib = np.where(single, np.minimum(self.vc, np.maximum(self.vlw, other)), 0.0)
        var = np.bincount(self.vd, weights=contrib, minlength=doc_w.size)
        return np.where(doc_w >= 2, self.full, self.fixed + var)


def _bleu_orders(tables: Any, corpus: Corpus) -> list[_BleuOrder]:
    pidx = corpus.sample_prompt_index()
    return _cached(
        corpus,
        f"replicates:bleu:{id(tables)}",
        lambda: [_BleuOrder(d, g, c, pidx, tables.lengths.size) for d, g, c in tables.pairs],
    )


def _bleu(lengths: np.ndarray, nums: Sequence[np.ndarray], ref: np.ndarray, epsilon: float) -> np.ndarray:
    """Per-text BLEU from clipped matches per order and the closest reference lengths."""
    log_p = np.zeros(lengths.size)
    no_unigram = np.zeros(lengths.size, bool)
    for k, num in enumerate(nums, start=1):
        den = np.maximum(1, lengths - k + 1).astype(np.float64)
        if k == 1:
            no_unigram = num == 0
        p = np.where(num == 0, epsilon / den, num / den)
        log_p += np.log(p) / len(nums)
    h = lengths.astype(np.float64)
    ref = ref.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # texts of 1-output prompts
        bp = np.where(h > ref, 1.0, np.where(h == 0, 0.0, np.exp(1 - ref / np.maximum(h, 1))))
    return np.where(no_unigram, 0.0, bp * np.exp(log_p))


def self_bleu_many(
    tables: Any,
    weights: np.ndarray,
    corpus: Corpus,
    epsilon: float,
    exact: Callable[[Any, np.ndarray], float],
) -> np.ndarray:
    """``self_bleu.weighted_bleu`` per row, from the per-prompt decomposition of ``_BleuOrder``.

    Where most (text, n-gram) pairs vary anyway (many prompts of a few distinct outputs each), the
    decomposition saves nothing and ``exact`` (the per-row computation over all pairs) is used.
    """
    pidx = corpus.sample_prompt_index()
    orders = _bleu_orders(tables, corpus)
    varying = sum(o.eg.size + o.vd.size for o in orders)
    if varying > 0.8 * sum(d.size for d, _, _ in tables.pairs):
        return np.asarray([exact(tables, w[pidx].astype(np.float64)) for w in np.asarray(weights, np.int64)])
    out = []
    for w in np.asarray(weights, dtype=np.int64):
        m = w[pidx].astype(np.float64)
        if m.sum() < 2:
            out.append(float("nan"))
            continue
        live = m > 0
        nums = [order.clipped(w, m)[live] for order in orders]
        lengths = tables.lengths[live]
        bleu = _bleu(lengths, nums, closest_ref_len(lengths, m[live]), epsilon)
        out.append(float((m[live] * bleu).sum() / m[live].sum()))
    return np.asarray(out)


def _closest_ref_len_per_prompt(lengths: np.ndarray, corpus: Corpus) -> np.ndarray:
    """``closest_ref_len`` with each prompt's outputs as the pool of its own texts (one sort)."""
    pidx = corpus.sample_prompt_index()
    span = int(lengths.max()) + 2 if lengths.size else 2
    key = pidx * span + lengths
    pool = np.sort(key)
    lo = np.searchsorted(pool, key, "left")
    hi = np.searchsorted(pool, key, "right")
    start, end = corpus.offsets[pidx], corpus.offsets[pidx + 1]
    base = pidx * span
    pred = np.where(lo > start, pool[np.maximum(lo - 1, 0)] - base, -(10**12))
    succ = np.where(hi < end, pool[np.minimum(hi, pool.size - 1)] - base, 10**12)
    best = np.where(lengths - pred <= succ - lengths, pred, succ)
    return np.where(hi - lo - 1 > 0, lengths, best)


def self_bleu_within(tables: Any, corpus: Corpus, epsilon: float) -> np.ndarray:
    """``self_bleu`` of each prompt's outputs (leave-one-out within the prompt), all at once."""
    orders = _bleu_orders(tables, corpus)
    bleu = _bleu(
        tables.lengths,
        [o.within for o in orders],
        _closest_ref_len_per_prompt(tables.lengths, corpus),
        epsilon,
    )
    out = np.full(corpus.n_prompts, np.nan)
    for p in range(corpus.n_prompts):
        sl = corpus.prompt_slice(p)
        if sl.stop - sl.start >= 2:
            out[p] = float(bleu[sl].mean())
    return out


# --- n-gram diversity score (n-grams across the joined text) ------------------------------------

_JOIN = 3  # words each side of a junction: the n-grams (n <= 4) that straddle it


class _JoinedNgrams:
    """Prompt blocks of the joined word sequence: their n-grams, exact lookup tables, incidences."""

    def __init__(self, parts: Sequence[np.ndarray], corpus: Corpus, num_n: int):
        seq = np.concatenate(list(parts)) if len(parts) else np.empty(0, np.int64)
        text_len = np.asarray([a.size for a in parts], dtype=np.int64)
        self.block_len = np.add.reduceat(text_len, corpus.offsets[:-1]) if text_len.size else text_len
        starts = np.r_[0, np.cumsum(self.block_len)]
        self.vocab = int(seq.max()) + 1 if seq.size else 1
        self.n_words = int(seq.size)
        self.n_distinct = [int(np.count_nonzero(np.bincount(seq)))]  # per order, over the whole sequence
        self.heads = np.zeros((corpus.n_prompts, _JOIN), np.int64)
        self.tails = np.zeros((corpus.n_prompts, _JOIN), np.int64)
        for p in range(corpus.n_prompts):
            if self.block_len[p] >= _JOIN:
                self.heads[p] = seq[starts[p] : starts[p] + _JOIN]
                self.tails[p] = seq[starts[p + 1] - _JOIN : starts[p + 1]]
        block = np.repeat(np.arange(corpus.n_prompts), self.block_len)
        self.tables: list[np.ndarray] = []  # per order >= 2: sorted (prefix id * vocab + word) keys
        self.orders: list[tuple[np.ndarray, np.ndarray, sp.csr_matrix, np.ndarray]] = []
        cur = seq
        for n in range(1, num_n + 1):
            if n > 1:
                keys, cur = np.unique(cur[:-1] * self.vocab + seq[n - 1 :], return_inverse=True)
                cur = cur.astype(np.int64).ravel()
                self.tables.append(keys)
                self.n_distinct.append(int(keys.size))
            inside = block[: cur.size] == block[n - 1 :] if cur.size else np.zeros(0, bool)
            self.orders.append(self._incidence(cur[inside], block[: cur.size][inside], corpus.n_prompts))

    @staticmethod
    def _incidence(gid: np.ndarray, blk: np.ndarray, n_blocks: int):
        """Per n-gram id: its only block (or -1 if several, -2 if none), the multi-block incidence."""
        size = int(gid.max()) + 1 if gid.size else 0
        pairs = np.unique(gid * n_blocks + blk)
        g, b = np.divmod(pairs, n_blocks)
        n_blocks_of = np.bincount(g, minlength=size)
        owner = np.full(size, -2, np.int64)
        owner[g] = np.where(n_blocks_of[g] == 1, b, -1)
        single = np.bincount(b[n_blocks_of[g] == 1], minlength=n_blocks).astype(np.int64)
        multi = n_blocks_of >= 2
        code = np.cumsum(multi) - 1
        keep = multi[g]
        inc = sp.csr_matrix(
            (np.ones(int(keep.sum())), (code[g[keep]], b[keep])), shape=(int(multi.sum()), n_blocks)
        )
        return owner, single, inc, code

    def _ids(self, grams: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact ids of word n-grams (rows) in the tables; ``found`` False where some prefix is unseen."""
        ids = grams[:, 0].copy()
        found = np.ones(grams.shape[0], bool)
        for k, table in enumerate(self.tables[: grams.shape[1] - 1], start=1):
            key = ids * self.vocab + grams[:, k]
            pos = np.minimum(np.searchsorted(table, key), max(table.size - 1, 0))
            found &= table[pos] == key if table.size else False
            ids = np.where(found, pos, 0)
        return ids, found

    def score(self, w: np.ndarray, num_n: int) -> float | None:
        """The score of the pool of weights ``w``; None if a selected block is too short to join."""
        seq_blocks = np.repeat(np.arange(w.size), w)
        if np.any(self.block_len[seq_blocks] < _JOIN):
            return None
        total_words = int((self.block_len * w).sum())
        windows = np.concatenate([self.tails[seq_blocks[:-1]], self.heads[seq_blocks[1:]]], axis=1)
        score = 0.0
        for n in range(1, num_n + 1):
            total = total_words - n + 1
            if total <= 0:
                return float("nan")
            owner, single, inc, code = self.orders[n - 1]
            hit = (inc @ w) > 0
            distinct = int((single * (w > 0)).sum()) + int(hit.sum())
            if n > 1 and windows.shape[0]:
                straddle = np.concatenate([windows[:, s : s + n] for s in range(_JOIN - n + 1, _JOIN)])
                ids, found = self._ids(straddle)
                known = ids[found]
                o = np.full(known.size, -2, np.int64)
                ok = known < owner.size
                o[ok] = owner[known[ok]]
                inside = np.zeros(known.size, bool)
                inside[o >= 0] = w[o[o >= 0]] > 0
                inside[o == -1] = hit[code[known[o == -1]]]
                distinct += np.unique(known[~inside]).size
                if (~found).any():
                    distinct += np.unique(straddle[~found], axis=0).shape[0]
            score += distinct / total
        return round(score, 3)


def ngram_diversity_within(parts: Sequence[np.ndarray], corpus: Corpus, num_n: int = 4) -> np.ndarray:
    """``ngram_diversity_score`` of each prompt's outputs: its block's own distinct n-grams."""
    joined = _joined(parts, corpus, num_n)
    score = np.zeros(corpus.n_prompts)
    for n in range(1, num_n + 1):
        _, single, inc, _ = joined.orders[n - 1]
        total = joined.block_len - n + 1
        distinct = single + np.bincount(inc.indices, minlength=corpus.n_prompts)
        with np.errstate(divide="ignore", invalid="ignore"):
            score = np.where(total > 0, score + distinct / total, np.nan)
    return np.asarray([round(float(v), 3) if np.isfinite(v) else float("nan") for v in score])


def ngram_diversity_all(parts: Sequence[np.ndarray], corpus: Corpus, num_n: int = 4) -> float:
    """``ngram_diversity_score`` of every output pooled once (the across-scope point), from the
    tables ``within`` and the replicates build anyway: the distinct n-grams of the whole joined
    sequence are those tables' sizes (the same ``np.unique`` steps as ``ngrams.ngram_ids_upto``),
    so the value is the same, bit for bit, without a second pass over the joined text."""
    joined = _joined(parts, corpus, num_n)
    score = 0.0
    for n in range(1, num_n + 1):
        total = joined.n_words - n + 1
        if total <= 0:
            return float("nan")
        score += joined.n_distinct[n - 1] / total
    return round(score, 3)


def _joined(parts: Sequence[np.ndarray], corpus: Corpus, num_n: int) -> _JoinedNgrams:
    return _cached(corpus, f"replicates:ngd:{id(parts)}:{num_n}", lambda: _JoinedNgrams(parts, corpus, num_n))


def ngram_diversity_many(
    parts: Sequence[np.ndarray],
    weights: np.ndarray,
    corpus: Corpus,
    exact: Callable[[Sequence[np.ndarray], np.ndarray, Corpus], float],
    num_n: int = 4,
) -> np.ndarray:
    """``ngram_diversity_score`` of each pool; ``exact`` (the joined-text computation) for a pool
    with a prompt of fewer than three words, where an n-gram could span three blocks."""
    joined = _joined(parts, corpus, num_n)
    out = []
    for w in np.asarray(weights, dtype=np.int64):
        if w.sum() == 0:
            out.append(float("nan"))
            continue
        v = joined.score(w, num_n)
        out.append(
            exact(parts, np.repeat(w, np.diff(corpus.offsets)).astype(np.float64), corpus) if v is None else v
        )
    return np.asarray(out)


# --- compression ratio (the joined text itself) -------------------------------------------------


def compression_within(corpus: Corpus, ratio: Callable[[str], float]) -> np.ndarray:
    """``compression_ratio`` of each prompt's outputs (one gzip per prompt): ``ratio`` of their
    joined text (``lexical.joined_compression_ratio``)."""
    return np.asarray([ratio(" ".join(corpus.prompt_texts(p))) for p in range(corpus.n_prompts)])


def _compression_rows(w: np.ndarray, corpus: Corpus) -> int:
    """How many of the rows of ``w`` get an exact gzip (``compression_many``'s budget)."""
    raw = _cached(
        corpus,
        "replicates:prompt_bytes",
        lambda: np.asarray(
            [
                sum(len(t.encode("utf-8")) + 1 for t in corpus.prompt_texts(p))
                for p in range(corpus.n_prompts)
            ],
            np.float64,
        ),
    )
    within_budget = int(np.searchsorted(np.cumsum(w @ raw), COMPRESSION_BUDGET_BYTES, side="right"))
    return min(w.shape[0], max(COMPRESSION_MIN_REPLICATES, within_budget))


def _gzip_key(w: np.ndarray) -> str:
    return f"replicates:gzip:{w.shape}:{hash(w.tobytes())}"


def compression_start(
    weights: np.ndarray, corpus: Corpus, exact: Callable[[Any, np.ndarray, Corpus], float]
) -> None:
    """Start ``compression_many``'s gzips for these weights in background threads (zlib releases
    the GIL): they run while the other metrics are computed, and ``compression_many`` with the
    same weights collects them. The same computations, so the same values."""
    w = np.asarray(weights, dtype=np.int64)
    key = _gzip_key(w)
    if key in corpus.cache:
        return
    sizes = np.diff(corpus.offsets)
    rows = [np.repeat(row, sizes) for row in w[: _compression_rows(w, corpus)]]
    pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1)
    futures: list[Future] = []
    try:
        for row in rows:
            futures.append(pool.submit(exact, None, row, corpus))
    except RuntimeError:  # no thread can be started (a process or thread limit): the rest here
        for row in rows[len(futures) :]:
            done: Future = Future()
            done.set_result(exact(None, row, corpus))
            futures.append(done)
    corpus.cache[key] = futures
    pool.shutdown(wait=False)


def compression_many(
    weights: np.ndarray, corpus: Corpus, exact: Callable[[Any, np.ndarray, Corpus], float]
) -> np.ndarray:
    """Compression ratio of each pool: the policy for the one metric that needs the joined text.

    gzip's value depends on the joined text (its 32 KiB window sees across outputs, and no model
    of per-prompt compressed sizes measured here tracked it: see docs/performance.md), so every
    replicate is today's exact value, gzipped in a thread pool (zlib releases the GIL), started
    early by ``compression_start`` where the caller can.  The cost
    is bounded: replicates are computed in order while their joined texts total at most
    ``COMPRESSION_BUDGET_BYTES`` (at least ``COMPRESSION_MIN_REPLICATES`` of them); the rest are
    NaN, which the interval (and a paired comparison) skip.  Small batches keep all replicates and
    today's interval exactly; large ones get the same interval from fewer replicates, with a
    Monte-Carlo error of the standard error of about ``1 / sqrt(2 (r - 1))`` (14% at r = 25,
    5% at r = 200).
    """
    w = np.asarray(weights, dtype=np.int64)
    compression_start(w, corpus, exact)
    values = [f.result() for f in corpus.cache.pop(_gzip_key(w))]
    return np.concatenate([np.asarray(values, dtype=np.float64), np.full(w.shape[0] - len(values), np.nan)])
