"""Lexical diversity metrics over token n-grams (pure numpy/scipy, no I/O).

Every metric exists as a plain function over ``list[str]`` and as a ``Metric`` object
(``within``/``across``; see ``base.py``).  ``across`` takes prompt multiplicities ``w`` and
treats them as per-text multiplicities ``m``: count-based metrics read per-text sufficient
statistics cached once in ``corpus.cache`` (a sparse mat-vec per replicate); order-dependent
ones (gzip, the cross-document n-grams of ``ngram_diversity_score``) rebuild the pooled text.
Tokens: ``collector.metrics.tokenize`` (casefolded ``\\w+|[^\\w\\s]``).  Entropies are in nats.
See docs/metrics.md for definitions, choices and reference checks.

Beside it: ``grams`` (the shared n-gram tables), ``self_bleu``, ``lexical_within`` (the vectorised
per-prompt values) and ``lexical_replicates`` (the across-scope replicates).
"""

from __future__ import annotations

import gzip
import io
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from collector.metrics import lexical_replicates as rep
from collector.metrics.base import Corpus, Family
from collector.metrics.grams import Grams, checked_texts
from collector.metrics.lexical_within import (
    distinct_of_sets,
    distinct_per_prompt,
    dup_per_prompt,
    entropy_per_prompt,
    length_per_prompt,
    ratio_per_prompt,
)
from collector.metrics.ngrams import ngram_ids, ngram_ids_upto
from collector.metrics.self_bleu import BLEU_EPSILON, bleu_tables, self_bleu, weighted_bleu

DISTINCT_BUDGET_WITHIN = 64  # n-gram occurrences per rarefied subsample, one prompt's outputs
DISTINCT_BUDGET_ACROSS = 2048  # ... pooled outputs
REPETITION_N = 4
_GZIP_NAME_BYTES = len(b"compressed") + 1  # the reference's GzipFile stores the file name + NUL


# --- helpers ------------------------------------------------------------------------------------


def _mult(m: np.ndarray | None, n: int) -> np.ndarray:
    if m is None:
        return np.ones(n)
    m = np.asarray(m, dtype=np.float64)
    if m.shape != (n,) or np.any(m < 0):
        raise ValueError(f"multiplicities must be {n} non-negative numbers, got shape {m.shape}")
    return m


def _doc_gram_matrix(texts: Sequence[str], n: int, grams: Grams | None = None) -> sp.csr_matrix:
    """Sparse (texts × distinct n-grams) count matrix (``grams``: ``Grams.of(texts)`` if known)."""
    gid, doc = (grams or Grams.of(texts)).ngrams(n)
    g = int(gid.max()) + 1 if gid.size else 0
    return sp.csr_matrix((np.ones(gid.size), (doc, gid)), shape=(len(texts), g))


def rarefied_richness(counts: np.ndarray, budget: int) -> float:
    """Expected distinct n-grams in ``budget`` occurrences drawn without replacement.

    ``E[U_B] = Σ_g 1 − C(N − c_g, B) / C(N, B)``, with ``N = Σ c_g`` (log-gamma, vectorised).
    """
    c = np.asarray(counts, dtype=np.float64)
    c = c[c > 0]
    expected = rep.rarefied_expectation(c, np.ones_like(c), c.sum(), budget)
    return min(expected, float(budget), float(c.size))  # clip floating-point overshoot


def _distinct_from_counts(counts: np.ndarray, budget: int | None) -> float:
    c = counts[counts > 0]
    total = float(c.sum())
    if total == 0:
        return float("nan")
    if budget is None or total <= budget:
        return c.size / total
    return rarefied_richness(c, budget) / budget


def _entropy_from_counts(counts: np.ndarray) -> float:
    """Shannon entropy of the counts divided by its maximum, ``log`` of the total count: in [0, 1],
    1 when every n-gram occurs once.  Raw entropy grows with the log of the number of n-grams, so
    shorter outputs alone would lower it; NaN with fewer than two n-grams."""
    c = counts[counts > 0].astype(np.float64)
    total = c.sum()
    if total < 2:
        return float("nan")
    p = c / total
    return float(-(p * np.log(p)).sum() / np.log(total))


# --- plain functions ----------------------------------------------------------------------------


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Unique n-grams / total n-grams over all texts (no rarefaction); NaN without n-grams."""
    texts = checked_texts(texts, "distinct_n")
    return _distinct_from_counts(np.asarray(_doc_gram_matrix(texts, n).sum(axis=0)).ravel(), None)


def rarefied_distinct_n(texts: Sequence[str], n: int, budget: int) -> float:
    """Expected unique/total in a subsample of ``budget`` n-grams; plain distinct-n when fewer."""
    texts = checked_texts(texts, "rarefied_distinct_n")
    return _distinct_from_counts(np.asarray(_doc_gram_matrix(texts, n).sum(axis=0)).ravel(), budget)


def ngram_entropy(texts: Sequence[str], n: int) -> float:
    """Normalised Shannon entropy of the n-gram frequency distribution, ``H / log(total n-grams)``
    in [0, 1]; NaN with fewer than two n-grams."""
    texts = checked_texts(texts, "ngram_entropy")
    return _entropy_from_counts(np.asarray(_doc_gram_matrix(texts, n).sum(axis=0)).ravel())


def compression_ratio(texts: Sequence[str]) -> float:
    """``diversity.compression_ratio`` (gzip), computed in memory with the same value.

    The reference measures ``' '.join(texts)`` written in text mode against a ``GzipFile``
    holding ``gzip.compress`` of the UTF-8 bytes: a double gzip whose header also stores the file
    name "compressed".  Rounded to 3 decimals as the reference.  Higher = less diverse.
    """
    texts = checked_texts(texts, "compression_ratio")
    return joined_compression_ratio(" ".join(texts))


def joined_compression_ratio(joined: str) -> float:
    """``compression_ratio`` of texts already joined: the reference's text-mode bytes over the
    size of the double-gzipped file it measures against, rounded to 3 decimals.

    Text-mode bytes are UTF-8 bytes, as the reference writes them on a UTF-8 locale (every usual
    one, and Python's UTF-8 mode). Under a legacy locale the reference counts the locale's bytes,
    and raises on a character the locale cannot encode: a value that depended on the machine's
    locale, or a crash on an emoji, was no measurement of the outputs.

    The inner stream's header time is 0. The reference writes the current second there, and the
    outer gzip compresses those four bytes with the rest, so its size (and the ratio, by up to 0.003
    on a few hundred outputs) moved from one second to the next: the same files gave another
    interval a second later. At time 0 the value is the reference's run at time 0, and the same on
    every run."""
    raw = joined.encode("utf-8")
    compressed = len(_gzip_at_time_zero(_gzip_at_time_zero(raw))) + _GZIP_NAME_BYTES
    return round(len(raw) / compressed, 3)


def _gzip_at_time_zero(data: bytes) -> bytes:
    """``gzip.compress(data)`` as Python writes it when the clock reads 0 (its own header, level 9:
    ``gzip.compress(data, mtime=0)`` takes zlib's header instead, one byte different)."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0) as fh:
        fh.write(data)
    return buf.getvalue()


def _space_token_ids(texts: Sequence[str], vocab: dict[str, int]) -> list[np.ndarray]:
    seen: dict[str, np.ndarray] = {}  # a repeated text shares the (read-only) ids of its first copy
    out = []
    for t in texts:
        ids = seen.get(t)
        if ids is None:
            ids = seen[t] = np.asarray([vocab.setdefault(w, len(vocab)) for w in t.split(" ")], np.int64)
            ids.flags.writeable = False
        out.append(ids)
    return out


def _ngram_diversity_from_ids(seq: np.ndarray, num_n: int) -> float:
    score = 0.0
    for gid, _ in ngram_ids_upto(seq, np.asarray([0, seq.size]), num_n):
        if gid.size == 0:
            return float("nan")
        score += (int(gid.max()) + 1) / gid.size
    return round(score, 3)


def ngram_diversity_score(texts: Sequence[str], num_n: int = 4) -> float:
    """``diversity.ngram_diversity_score``: Σ_{n≤num_n} unique/total n-grams of
    ``' '.join(texts).split(' ')`` (n-grams cross texts; empty strings are words), rounded to 3.
    NaN where the reference divides by zero."""
    texts = checked_texts(texts, "ngram_diversity_score")
    parts = _space_token_ids(texts, {})
    return _ngram_diversity_from_ids(np.concatenate(parts) if parts else np.empty(0, np.int64), num_n)


def _presence_matrix(texts: Sequence[str]) -> sp.csr_matrix:
    """(texts × distinct whitespace 4-grams) 0/1 matrix, the reference's per-document sets.

    Built over the distinct texts (in first-occurrence order: the same word and n-gram ids) and
    its rows repeated for the copies: the same matrix, bit for bit, as over every text."""
    index: dict[str, int] = {}
    which = np.asarray([index.setdefault(t, len(index)) for t in texts], np.int64)
    distinct = list(index)
    vocab: dict[str, int] = {}
    ids = _space_token_ids([" ".join(t.split()) for t in distinct], vocab)
    lens = np.asarray([a.size if t.split() else 0 for a, t in zip(ids, distinct, strict=True)])
    seq = np.concatenate(
        [a for a, t in zip(ids, distinct, strict=True) if t.split()] or [np.empty(0, np.int64)]
    )
    offs = np.concatenate([[0], np.cumsum(lens)])
    gid, doc = ngram_ids(seq, offs, 4)
    g = int(gid.max()) + 1 if gid.size else 0
    m = sp.csr_matrix((np.ones(gid.size), (doc, gid)), shape=(len(distinct), g))
    m.data[:] = 1.0  # duplicates were summed; presence only
    return m if len(distinct) == len(texts) else m[which]


def _self_repetition_from(pres: sp.csr_matrix, m: np.ndarray) -> float:
    if m.sum() == 0:
        return float("nan")
    df = pres.T @ m
    per_doc = pres @ df - np.asarray(pres.sum(axis=1)).ravel()
    live = m > 0  # a text left out of the pool may count -1: it does not take part
    return float((m[live] * np.log(per_doc[live] + 1)).sum() / m.sum())


def self_repetition(texts: Sequence[str]) -> float:
    """``diversity.self_repetition_score`` in linear time (document frequencies).

    Per text, S_i = Σ over its distinct whitespace 4-grams of (#texts containing it − 1); the
    score is mean_i log(S_i + 1).  (The reference ignores its ``n`` argument: always 4.)
    Higher = less diverse.
    """
    texts = checked_texts(texts, "self_repetition")
    if not texts:
        return float("nan")
    return _self_repetition_from(_presence_matrix(texts), np.ones(len(texts)))


# --- repetition, duplicates, length -------------------------------------------------------------


def _repeat_counts(texts: Sequence[str], n: int, grams: Grams | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per text: n-grams that repeat an earlier n-gram of the same text, and all n-grams.

    Both depend on the text alone, so they are counted once per distinct text and copied (exact
    integers: the same values as counting every text).
    """
    grams = grams or Grams.of(texts)
    gid, doc = grams.distinct_ngrams(n)
    n_distinct = grams.distinct_tokens[1].size - 1
    total = np.bincount(doc, minlength=n_distinct).astype(np.float64)
    uniq = np.unique(gid * max(n_distinct, 1) + doc) % max(n_distinct, 1)
    distinct = np.bincount(uniq, minlength=n_distinct).astype(np.float64)
    which = grams.text_distinct
    return (total - distinct)[which], total[which]


def repetition_rate(texts: Sequence[str], n: int = REPETITION_N) -> float:
    """Share of n-grams (token 4-grams by default) that repeat an earlier n-gram of the same text,
    pooled over texts (looping text); NaN without n-grams.  Higher = less diverse."""
    texts = checked_texts(texts, "repetition_rate")
    rep, tot = _repeat_counts(texts, n)
    return float(rep.sum() / tot.sum()) if tot.sum() else float("nan")


_EDGE_PUNCT = re.compile(r"^[^\w]+|[^\w]+$")


def normalise_for_duplicates(text: str) -> str:
    """Casefold, collapse whitespace runs to one space, strip non-word characters at both ends."""
    return _EDGE_PUNCT.sub("", " ".join(text.casefold().split()))


def _dup_keys(texts: Sequence[str]) -> np.ndarray:
    """Per text, the index of its normalised form (first-occurrence order), normalised once per
    distinct text."""
    normal: dict[str, str] = {}
    keys: dict[str, int] = {}
    out = np.empty(len(texts), np.int64)
    for i, t in enumerate(texts):
        n = normal.get(t)
        if n is None:
            n = normal[t] = normalise_for_duplicates(t)
        out[i] = keys.setdefault(n, len(keys))
    return out


def _dup_from(keys: np.ndarray, m: np.ndarray) -> float:
    if m.sum() < 2:
        return float("nan")
    counts = np.bincount(keys, weights=m, minlength=int(keys.max()) + 1 if keys.size else 0)
    return float((m * (counts[keys] >= 2)).sum() / m.sum())


def duplicate_rate(texts: Sequence[str]) -> float:
    """Share of texts equal to another text of the set after ``normalise_for_duplicates``; NaN
    below two texts.  Higher = less diverse."""
    texts = checked_texts(texts, "duplicate_rate")
    return _dup_from(_dup_keys(texts), np.ones(len(texts)))


def _lengths(texts: Sequence[str], grams: Grams | None = None) -> np.ndarray:
    return (grams or Grams.of(texts)).lengths.astype(np.float64)


def _len_stats(lengths: np.ndarray, m: np.ndarray) -> tuple[float, float]:
    if m.sum() == 0:
        return float("nan"), float("nan")
    mean = float((m * lengths).sum() / m.sum())
    return mean, math.sqrt(float((m * (lengths - mean) ** 2).sum() / m.sum()))


def length_mean(texts: Sequence[str]) -> float:
    """Mean output length in tokens."""
    return _len_stats(_lengths(checked_texts(texts, "length_mean")), np.ones(len(texts)))[0]


def length_std(texts: Sequence[str]) -> float:
    """Population standard deviation (ddof = 0) of output length in tokens."""
    return _len_stats(_lengths(checked_texts(texts, "length_std")), np.ones(len(texts)))[1]


# --- Metric objects -----------------------------------------------------------------------------


def _text_mult(corpus: Corpus, weights: np.ndarray) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (corpus.n_prompts,) or np.any(w < 0):
        raise ValueError(f"weights must be {corpus.n_prompts} non-negative prompt multiplicities")
    return np.repeat(w, np.diff(corpus.offsets))


def _cached(corpus: Corpus, key: str, build: Callable[[], Any]) -> Any:
    if key not in corpus.cache:
        corpus.cache[key] = build()
    return corpus.cache[key]


@dataclass
class _LexicalMetric:
    """A metric from a plain function (``within``) and cached statistics + a pooled rule (``across``)."""

    name: str
    fn: Callable[[list[str]], float]
    prepare: Callable[[list[str], Grams], Any]  # per-text statistics from texts and their n-grams
    pooled: Callable[[Any, np.ndarray, Corpus], float]
    higher_is_diverse: bool
    family: Family = "lexical"
    min_outputs: int = 1
    needs_embeddings: bool = False
    per_prompt: Callable[[Any, Corpus], np.ndarray] | None = None  # vectorised ``within``
    # ``within`` of many subsets of one prompt's outputs at once: (stats, sets (S × texts) 0/1)
    per_set: Callable[[Any, np.ndarray], np.ndarray] | None = None
    # ``pooled`` for many prompt weightings at once (rows of W), from per-prompt statistics
    pooled_many: Callable[[Any, np.ndarray, Corpus], np.ndarray] | None = None
    stats_key: str = ""  # metrics with the same key share their statistics (default: the name)
    # starts ``pooled_many``'s work for these weights in the background (the compression's gzips)
    start_many: Callable[[np.ndarray, Corpus], None] | None = None

    def _stats(self, corpus: Corpus) -> Any:
        grams = _cached(corpus, "lexical:grams", lambda: Grams.of(corpus.texts))  # shared
        key = f"lexical:{self.stats_key or self.name}"
        return _cached(corpus, key, lambda: self.prepare(corpus.texts, grams))

    def within(self, corpus: Corpus) -> np.ndarray:
        if self.per_prompt is not None and corpus.n_samples:
            return np.asarray(self.per_prompt(self._stats(corpus), corpus), dtype=np.float64)
        out = np.full(corpus.n_prompts, np.nan)
        for p in range(corpus.n_prompts):
            texts = corpus.prompt_texts(p)
            if len(texts) >= self.min_outputs:
                out[p] = self.fn(texts)
        return out

    def within_sets(
        self, texts: list[str], embeddings: np.ndarray | None, sets: np.ndarray
    ) -> np.ndarray | None:
        """The ``within`` value of every subset of ``texts`` (rows of ``sets``, S × len(texts), 0/1);
        None when this metric has no vectorised form (the caller then scores each subset)."""
        if self.per_set is None:
            return None
        stats = self.prepare(texts, Grams.of(texts))
        return np.asarray(self.per_set(stats, np.asarray(sets, dtype=np.float64)), dtype=np.float64)

    def across(self, corpus: Corpus, weights: np.ndarray) -> float:
        m = _text_mult(corpus, weights)
        return float(self.pooled(self._stats(corpus), m, corpus))

    def across_many(self, corpus: Corpus, weights: np.ndarray) -> np.ndarray:
        """``across`` for every row of ``weights`` (R × P prompt multiplicities), shape (R,).

        Equal to calling ``across`` per row (to floating-point summation order; see
        ``lexical_replicates``), in time near-linear in the batch instead of one pass per row.
        """
        w = np.asarray(weights, dtype=np.int64)
        if w.ndim != 2 or w.shape[1] != corpus.n_prompts or np.any(w < 0):
            raise ValueError(f"weights must be (replicates, {corpus.n_prompts}) non-negative multiplicities")
        if self.pooled_many is None:
            return np.array([self.across(corpus, row) for row in w], dtype=np.float64)
        return np.asarray(self.pooled_many(self._stats(corpus), w, corpus), dtype=np.float64)

    def start_replicates(self, corpus: Corpus, weights: np.ndarray) -> None:
        """Start ``across_many(corpus, weights)``'s background work now, if it has any."""
        if self.start_many is not None:
            self.start_many(np.asarray(weights, dtype=np.int64), corpus)


def _count_matrix_key(n: int) -> Callable[[list[str], Grams], sp.csr_matrix]:
    return lambda texts, grams: _doc_gram_matrix(texts, n, grams).T.tocsr()


def _distinct_metric(n: int, within_budget: int, across_budget: int) -> _LexicalMetric:
    return _LexicalMetric(
        name=f"distinct_{n}",
        fn=lambda t: rarefied_distinct_n(t, n, within_budget),
        prepare=_count_matrix_key(n),
        pooled=lambda ct, m, c: _distinct_from_counts(ct @ m, across_budget),
        higher_is_diverse=True,
        per_prompt=lambda ct, c: distinct_per_prompt(ct, c, within_budget),
        per_set=lambda ct, sets: distinct_of_sets(ct, sets, within_budget),
        pooled_many=lambda ct, w, c: rep.distinct_many(ct, w, c, across_budget),
        stats_key=f"counts_{n}",
    )


def _entropy_metric(n: int) -> _LexicalMetric:
    return _LexicalMetric(
        name=f"ngram_entropy_{n}",
        fn=lambda t: ngram_entropy(t, n),
        prepare=_count_matrix_key(n),
        pooled=lambda ct, m, c: _entropy_from_counts(ct @ m),
        higher_is_diverse=True,
        per_prompt=entropy_per_prompt,
        pooled_many=rep.entropy_many,
        stats_key=f"counts_{n}",
    )


def _prompt_weights(m: np.ndarray, c: Corpus) -> np.ndarray:
    """Prompt multiplicities back from text multiplicities (every prompt owns >= 1 text)."""
    return m[c.offsets[:-1]].astype(np.int64)


def _pooled_compression(_: Any, m: np.ndarray, c: Corpus) -> float:
    idx = c.expand(_prompt_weights(m, c))
    return compression_ratio([c.texts[i] for i in idx]) if idx.size else float("nan")


def _pooled_ngram_div(parts: list[np.ndarray], m: np.ndarray, c: Corpus) -> float:
    if m.size and np.all(m == 1):  # every output once: the point, from the tables ``within`` builds
        return rep.ngram_diversity_all(parts, c, 4)
    idx = c.expand(_prompt_weights(m, c))
    if idx.size == 0:
        return float("nan")
    return _ngram_diversity_from_ids(np.concatenate([parts[i] for i in idx]), 4)


def make_lexical_metrics(
    within_budget: int = DISTINCT_BUDGET_WITHIN, across_budget: int = DISTINCT_BUDGET_ACROSS
) -> list[_LexicalMetric]:
    """The lexical suite; ``*_budget``: rarefaction budgets (n-gram occurrences) of distinct-n."""
    return [
        *[_distinct_metric(n, within_budget, across_budget) for n in range(1, 5)],
        *[_entropy_metric(n) for n in range(1, 5)],
        _LexicalMetric(
            "compression_ratio",
            compression_ratio,
            lambda t, k: None,
            _pooled_compression,
            False,
            per_prompt=lambda s, c: rep.compression_within(c, joined_compression_ratio),
            pooled_many=lambda s, w, c: rep.compression_many(w, c, _pooled_compression),
            start_many=lambda w, c: rep.compression_start(w, c, _pooled_compression),
        ),
        _LexicalMetric(
            "ngram_diversity_score",
            ngram_diversity_score,
            lambda t, k: _space_token_ids(t, {}),
            _pooled_ngram_div,
            True,
            per_prompt=rep.ngram_diversity_within,
            pooled_many=lambda s, w, c: rep.ngram_diversity_many(s, w, c, _pooled_ngram_div),
        ),
        _LexicalMetric(
            "self_repetition",
            self_repetition,
            lambda t, k: _presence_matrix(t),
            lambda s, m, c: _self_repetition_from(s, m),
            False,
            per_prompt=rep.self_repetition_within,
            pooled_many=rep.self_repetition_many,
        ),
        _LexicalMetric(
            "self_bleu",
            self_bleu,
            bleu_tables,
            lambda s, m, c: weighted_bleu(s, m),
            False,
            min_outputs=2,
            per_prompt=lambda s, c: rep.self_bleu_within(s, c, BLEU_EPSILON),
            pooled_many=lambda s, w, c: rep.self_bleu_many(s, w, c, BLEU_EPSILON, weighted_bleu),
        ),
        _LexicalMetric(
            "repetition_rate",
            repetition_rate,
            lambda t, k: _repeat_counts(t, REPETITION_N, k),
            lambda s, m, c: float((m * s[0]).sum() / (m * s[1]).sum()) if (m * s[1]).sum() else float("nan"),
            False,
            per_prompt=lambda s, c: ratio_per_prompt(c, s[0], s[1]),
        ),
        _LexicalMetric(
            "duplicate_rate",
            duplicate_rate,
            lambda t, k: _dup_keys(t),
            lambda s, m, c: _dup_from(s, m),
            False,
            min_outputs=2,
            per_prompt=dup_per_prompt,
        ),
        _LexicalMetric(
            "length_mean",
            length_mean,
            _lengths,
            lambda s, m, c: _len_stats(s, m)[0],
            True,
            family="length",
            per_prompt=lambda s, c: length_per_prompt(s, c, std=False),
        ),
        _LexicalMetric(
            "length_std",
            length_std,
            _lengths,
            lambda s, m, c: _len_stats(s, m)[1],
            True,
            family="length",
            per_prompt=lambda s, c: length_per_prompt(s, c, std=True),
        ),
    ]


LEXICAL_METRICS: list[_LexicalMetric] = make_lexical_metrics()
