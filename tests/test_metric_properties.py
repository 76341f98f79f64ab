"""Properties every lexical metric must keep, checked with hypothesis on generated texts."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.metrics import lexical as lx
from collector.metrics.base import Sample, build_corpus

WORDS = st.sampled_from(["the", "cat", "sat", "on", "a", "mat", "dog", "ran", ",", ".", "é", "über"])
TEXT = st.lists(WORDS, min_size=0, max_size=12).map(" ".join)
TEXTS = st.lists(TEXT, min_size=2, max_size=8)


@settings(max_examples=60, deadline=None)
@given(text=st.lists(WORDS, min_size=5, max_size=12).map(" ".join), k=st.integers(2, 6))
def test_identical_outputs_are_minimally_diverse(text, k):
    texts = [text] * k
    assert lx.self_bleu(texts) == 1.0 or math.isclose(lx.self_bleu(texts), 1.0)
    assert lx.duplicate_rate(texts) == 1.0
    for n in range(1, 5):
        # copies add no new n-gram: distinct is that of one copy divided by k (its minimum)
        one = lx.distinct_n([text], n)
        if not math.isnan(one):
            assert math.isclose(lx.distinct_n(texts, n), one / k)
            assert lx.distinct_n(texts, n) <= 1 / k + 1e-12


@settings(max_examples=60, deadline=None)
@given(texts=TEXTS, extra=st.lists(TEXT, min_size=1, max_size=4))
def test_adding_outputs_never_lowers_unique_count(texts, extra):
    for n in range(1, 5):
        before = lx._doc_gram_matrix(texts, n).shape[1]
        after = lx._doc_gram_matrix(texts + extra, n).shape[1]
        assert after >= before


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


@settings(max_examples=30, deadline=None)
@given(
    rows=st.lists(st.tuples(st.sampled_from(["p1", "p2", "p3"]), TEXT), min_size=2, max_size=12),
    seed=st.integers(0, 2**32 - 1),
)
def test_values_independent_of_sample_order(rows, seed):
    perm = np.random.default_rng(seed).permutation(len(rows))
    a = build_corpus([Sample(p, t) for p, t in rows])
    b = build_corpus([Sample(*rows[i]) for i in perm])
    ones = np.ones(a.n_prompts, dtype=np.int64)
    for m in lx.LEXICAL_METRICS:
        assert _same(m.across(a, ones), m.across(b, ones)), m.name
        wa, wb = m.within(a), m.within(b)
        assert all(_same(x, y) for x, y in zip(wa, wb, strict=True)), m.name


@settings(max_examples=30, deadline=None)
@given(texts=TEXTS)
def test_bounds(texts):
    for n in range(1, 5):
        v = lx.rarefied_distinct_n(texts, n, 8)
        assert math.isnan(v) or 0 < v <= 1 + 1e-12
    sb = lx.self_bleu(texts)
    assert 0 <= sb <= 1
    assert 0 <= lx.duplicate_rate(texts) <= 1


def test_halves_dot_is_the_two_thread_dot_on_one_thread() -> None:
    """``blas.halves_dot`` (the tail family's dot products, issue #25): below the split, the plain
    dot; above, the two halves in OpenBLAS's two-thread order, so a two-core machine's values
    before the change are kept bit for bit (where BLAS has two threads, compare with it)."""
    from collector.metrics.blas import _SPLIT_ABOVE, halves_dot, one_blas_thread

    rng = np.random.default_rng(5)
    for n in (0, 1, 17, _SPLIT_ABOVE, _SPLIT_ABOVE + 1, 12_065, 25_001, 60_000):
        x, y = rng.random(n) * np.exp(rng.normal(0, 5, n)), rng.random(n)
        with one_blas_thread():
            h = (n + 1) // 2
            halves = (0.0 + float(x[:h] @ y[:h])) + float(x[h:] @ y[h:])
            plain = float(x @ y)
        assert halves_dot(x, y) == (plain if n <= _SPLIT_ABOVE else halves)
        try:
            from threadpoolctl import threadpool_info
        except ImportError:
            continue
        threads = {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}
        if n > _SPLIT_ABOVE and threads == {2}:
            assert halves_dot(x, y) == float(x @ y)  # what the previous code computed here
