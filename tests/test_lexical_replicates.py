"""The near-linear across-scope replicates and vectorised ``within`` against the plain computations.

Real SmolLM2 outputs (every file of tests/data and the demo's series), grouped by prompt and
resampled with replacement as a probe set sampled many times gives, plus edge texts (empty, one
word, whitespace only, prompts with one output) that reach the fallbacks.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from real_outputs import distinct_outputs_by_prompt

from collector.metrics import lexical as lx
from collector.metrics import lexical_replicates as rep
from collector.metrics.base import Corpus, Sample, build_corpus
from collector.metrics.ngrams import ngram_ids
from collector.metrics.suite import half_sample_weights, prompt_weights, replicate_values, score_corpus
from collector.metrics.tokenize import token_ids

CHANGED = ("compression_ratio", "ngram_diversity_score", "self_repetition", "self_bleu")


@pytest.fixture(scope="module")
def resampled() -> Corpus:
    """12 real prompts, 25 outputs each drawn with replacement from the prompt's real outputs."""
    rng = np.random.default_rng(7)
    groups = sorted(distinct_outputs_by_prompt().items())[:12]
    samples = [Sample(pid, outs[int(rng.integers(len(outs)))]) for pid, outs in groups for _ in range(25)]
    return build_corpus(samples)


@pytest.fixture(scope="module")
def edgy() -> Corpus:
    """Distinct real outputs, two per prompt, and prompts made of edge texts."""
    groups = sorted(distinct_outputs_by_prompt().items())[:10]
    samples = [Sample(pid, o) for pid, outs in groups for o in outs[:2]]
    samples += [
        Sample("zz-empty", ""),
        Sample("zz-one-word", "hello"),
        Sample("zz-short", "a b"),
        Sample("zz-short", "a b"),
        Sample("zz-space", "  x  y "),
        Sample("zz-space", ""),
        Sample("zz-space", "x y"),
    ]
    return build_corpus(samples)


def _weights(n_prompts: int) -> np.ndarray:
    rows = [
        half_sample_weights(n_prompts, 8, 0),
        prompt_weights(n_prompts, 4, 1),  # multiplicities >= 2: copies of a prompt's outputs
        np.ones((1, n_prompts), np.int64),
        np.zeros((1, n_prompts), np.int64),
        np.eye(n_prompts, dtype=np.int64)[:3],  # one prompt alone
    ]
    return np.vstack(rows).astype(np.int64)


def _same(a: np.ndarray, b: np.ndarray, tol: float) -> bool:
    return bool(np.all((np.isnan(a) & np.isnan(b)) | (np.abs(a - b) <= tol * np.maximum(1.0, np.abs(b)))))


@pytest.fixture
def frozen_gzip_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """gzip writes the current time into its header (the code before the metric fixed it at 0 did
    too); frozen at 0, that code's values are today's."""
    monkeypatch.setattr(time, "time", lambda: 0.0)


@pytest.mark.parametrize("which", ["resampled", "edgy"])
@pytest.mark.parametrize("metric", lx.LEXICAL_METRICS, ids=lambda m: m.name)
def test_across_many_equals_across_row_by_row(metric, which, request, frozen_gzip_time) -> None:
    corpus = request.getfixturevalue(which)
    w = _weights(corpus.n_prompts)
    fast = metric.across_many(corpus, w)
    slow = np.array([metric.across(corpus, row) for row in w])
    assert fast.shape == (w.shape[0],)
    # counts are exact integers; only float summation order differs (entropy, rarefaction)
    assert _same(fast, slow, 1e-12), (metric.name, fast - slow)
    assert np.isfinite(fast[:8]).all()  # the half-samples of real text all have a value


@pytest.mark.parametrize("which", ["resampled", "edgy"])
@pytest.mark.parametrize("name", CHANGED)
def test_vectorised_within_is_identical_to_the_plain_function(name, which, request, frozen_gzip_time) -> None:
    corpus = request.getfixturevalue(which)
    metric = next(m for m in lx.LEXICAL_METRICS if m.name == name)
    got = metric.within(corpus)
    want = np.array(
        [
            metric.fn(corpus.prompt_texts(p))
            if len(corpus.prompt_texts(p)) >= metric.min_outputs
            else math.nan
            for p in range(corpus.n_prompts)
        ]
    )
    assert np.array_equal(got, want, equal_nan=True), name


def test_suite_points_are_the_plain_functions_and_intervals_the_row_by_row_ones(
    resampled, frozen_gzip_time
) -> None:
    fresh = build_corpus(
        [Sample(pid, t) for p, pid in enumerate(resampled.prompt_ids) for t in resampled.prompt_texts(p)]
    )
    result = score_corpus(fresh, lx.LEXICAL_METRICS, n_boot=60, seed=3)
    halves = half_sample_weights(fresh.n_prompts, 60, 3)
    for metric in lx.LEXICAL_METRICS:
        across = result.get(metric.name, "across")
        assert across.value == metric.across(fresh, np.ones(fresh.n_prompts, np.int64))
        if metric.name in CHANGED:
            plain = metric.fn(fresh.texts)
            assert across.value == plain or (math.isnan(plain) and math.isnan(across.value))
        slow = np.array([metric.across(fresh, row) for row in halves])
        slow = slow[np.isfinite(slow)]
        m = fresh.n_prompts // 2
        se = slow.std(ddof=1) * math.sqrt(m / (fresh.n_prompts - m))
        assert across.ci_high - across.value == pytest.approx(1.959963984540054 * se, rel=1e-9, abs=1e-12)


def test_compression_policy_caps_the_exact_replicates(resampled, monkeypatch, frozen_gzip_time) -> None:
    metric = next(m for m in lx.LEXICAL_METRICS if m.name == "compression_ratio")
    w = half_sample_weights(resampled.n_prompts, 40, 0)
    uncapped = replicate_values(metric, resampled, w)
    assert np.isfinite(uncapped).all()
    monkeypatch.setattr(rep, "COMPRESSION_BUDGET_BYTES", 1)
    monkeypatch.setattr(rep, "COMPRESSION_MIN_REPLICATES", 7)
    capped = replicate_values(metric, resampled, w)
    assert np.array_equal(capped[:7], uncapped[:7])  # the replicates kept are today's exact values
    assert np.isnan(capped[7:]).all()


def test_grams_of_repeated_texts_equal_ngram_ids_over_all_texts(resampled) -> None:
    texts = [*resampled.texts, "", "a", "a b c d e", *resampled.texts[:5]]
    grams = lx.Grams.of(texts)
    ids, offs = token_ids(texts)
    assert np.array_equal(grams.lengths, np.diff(offs))
    for n in range(1, 5):
        gid, doc = grams.ngrams(n)
        want_gid, want_doc = ngram_ids(ids, offs, n)
        assert np.array_equal(gid, want_gid) and np.array_equal(doc, want_doc)


def test_across_many_rejects_bad_weights(resampled) -> None:
    metric = lx.LEXICAL_METRICS[0]
    with pytest.raises(ValueError, match="replicates"):
        metric.across_many(resampled, np.ones(resampled.n_prompts))
    with pytest.raises(ValueError, match="non-negative"):
        metric.across_many(resampled, -np.ones((2, resampled.n_prompts)))


BEFORE_ISSUE_25 = "5abf52a"  # main before the repeated-work removals of issue #25


@pytest.mark.parametrize("which", ["resampled", "edgy"])
def test_lexical_suite_is_bit_identical_to_the_code_before_issue_25(which, request, frozen_gzip_time) -> None:
    """Per-text repetition counted once per distinct text, self-repetition replicates without row
    copies, the normal quantile from a table: every value and interval equal to before, bit for bit."""
    import importlib
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    known = subprocess.run(["git", "cat-file", "-e", f"{BEFORE_ISSUE_25}^{{commit}}"], cwd=root, check=False)
    if known.returncode != 0:
        pytest.skip(f"commit {BEFORE_ISSUE_25} is not in this checkout's history (a shallow clone)")
    sys.path.insert(0, str(root / "benchmarks"))
    previous = importlib.import_module("previous").load_previous(BEFORE_ISSUE_25)
    old_base = importlib.import_module("previous_metrics.base")
    old_registry = importlib.import_module("previous_metrics.registry")
    corpus: Corpus = request.getfixturevalue(which)
    samples = [
        Sample(corpus.prompt_ids[p], t)
        for p in range(corpus.n_prompts)
        for t in corpus.texts[corpus.prompt_slice(p)]
    ]
    names = [m.name for m in lx.LEXICAL_METRICS]
    new = score_corpus(build_corpus(samples), [m for m in lx.LEXICAL_METRICS], n_boot=60, seed=3)
    old_samples = [old_base.Sample(s.prompt_id, s.output) for s in samples]
    old = previous.score_corpus(
        old_base.build_corpus(old_samples), old_registry.select_metrics(names), n_boot=60, seed=3
    )
    as_tuples = [(v.metric, v.scope, repr(v.value), repr(v.ci_low), repr(v.ci_high)) for v in new.values]
    assert as_tuples == [
        (v.metric, v.scope, repr(v.value), repr(v.ci_low), repr(v.ci_high)) for v in old.values
    ]
    assert {k: {p: repr(x) for p, x in d.items()} for k, d in new.per_prompt.items()} == {
        k: {p: repr(x) for p, x in d.items()} for k, d in old.per_prompt.items()
    }


@pytest.mark.parametrize("which", ["resampled", "edgy"])
def test_ngram_diversity_point_from_the_tables_is_the_joined_text_value(which, request) -> None:
    """The across point of ``ngram_diversity_score`` read from the tables the replicates build
    (issue #25) is the value of the joined text's own n-grams, bit for bit."""
    corpus: Corpus = request.getfixturevalue(which)
    parts = lx._space_token_ids(corpus.texts, {})
    seq = np.concatenate(parts) if parts else np.empty(0, np.int64)
    assert repr(rep.ngram_diversity_all(parts, corpus)) == repr(lx._ngram_diversity_from_ids(seq, 4))


def test_compression_replicates_are_computed_here_when_no_thread_can_start(resampled, monkeypatch) -> None:
    """A process or thread limit (``can't start new thread``): the gzips run in this thread, same values."""
    import concurrent.futures

    metric = next(m for m in lx.LEXICAL_METRICS if m.name == "compression_ratio")
    weights = _weights(resampled.n_prompts)[:6]
    expected = metric.across_many(resampled, weights)

    def refuse(self, *args, **kwargs):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(concurrent.futures.ThreadPoolExecutor, "submit", refuse)
    resampled.cache.clear()
    assert np.array_equal(metric.across_many(resampled, weights), expected, equal_nan=True)
