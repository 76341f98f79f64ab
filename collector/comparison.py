"""Compare two scored batches of the same probe set: per-metric paired comparisons and a verdict.

* ``within`` scope: :func:`collector.trends.compare` pairs the per-prompt values of the prompts both
  batches share (the probe set is the same for every version).
* ``across`` scope: a pooled value is not a mean of prompt values, so both batches are restricted
  to their shared prompts and every metric is recomputed on the *same* random halves of those
  prompts on both sides (half-samples without replacement: a bootstrap copy of a prompt would look
  like duplicated outputs); :func:`collector.trends.compare_paired_replicates` turns the paired
  half-sample changes into an interval around the full-data change (delete-half jackknife).
* The verdict is taken on the ``within`` comparisons (paired by prompt, the cleanest test); the
  ``across`` comparisons are reported alongside (see docs/metrics.md).
* Per prompt: each headline metric is tested on every shared prompt alone (a permutation test on
  the prompt's own outputs, :mod:`collector.trends.prompts`), so a collapse on a few prompts is
  named (and gives ``watch``) before the mean moves.
* A shared opening or closing (:mod:`collector.metrics.affix`) that most candidate outputs carry and
  the baseline's do not is named, and the verdict is computed again with it stripped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial

import numpy as np

from collector.metrics.affix import Affix, shared_affix, strip_affix
from collector.metrics.base import Corpus, Metric, Sample, build_corpus
from collector.metrics.prompt_test import DEFAULT_PERMUTATIONS, PromptTest, tests_for
from collector.metrics.result import SuiteResult
from collector.metrics.suite import half_sample_weights, replicate_values, score_corpus, start_replicates
from collector.metrics.tail import TailPair
from collector.parallel import Job, can_fork, run_balanced
from collector.trends import (
    Comparison,
    Coverage,
    Thresholds,
    Trend,
    Verdict,
    compare,
    compare_paired_replicates,
    verdict,
)
from collector.trends.prompts import PromptEvidence, assess_prompts
from collector.vocabulary import ChangeRow, diversity_oriented

ACROSS_HALVES = 100
MAX_PERMUTATIONS = 9999


@dataclass(frozen=True)
class ScoredBatch:
    """A batch's grouped outputs and its scores (``result`` from ``score_corpus(corpus, ...)``)."""

    label: str
    corpus: Corpus
    result: SuiteResult
    prompts: dict[str, str] = field(default_factory=dict)  # prompt id -> prompt text (when known)


@dataclass(frozen=True)
class MetricComparison:
    """One metric x scope of a batch comparison, with the full statistics (means, scale, minimum
    detectable change) that the gate's table and the verdict read.  Not the stored row: two
    batches compared by the gate may have no model, version or run; ``change_row`` labels it."""

    metric: str
    scope: str
    family: str
    comparison: Comparison

    @property
    def diversity_change(self) -> tuple[float, float, float]:
        """The change and its interval in ``CHANGE_UNIT``: the metric's scale, negative = less
        diverse (what the store keeps, ``/metrics`` exports and ``--json`` says)."""
        c = self.comparison
        return diversity_oriented(c.change, c.change_ci_low, c.change_ci_high, c.higher_is_diverse)

    def change_row(self, model: str, version: str, reference: str, reference_run_id: int) -> ChangeRow:
        """The labelled row the store keeps."""
        c = self.comparison
        return ChangeRow(
            model,
            version,
            self.metric,
            self.scope,
            reference,
            *self.diversity_change,
            p_value=c.p_value,
            significant_decline=c.significant_decline,
            n_pairs=c.n_pairs,
            reference_run_id=reference_run_id,
            relative=c.diversity_change,
            relative_ci_low=c.diversity_ci_low,
            relative_ci_high=c.diversity_ci_high,
            higher_is_diverse=c.higher_is_diverse,
        )


@dataclass(frozen=True)
class BatchComparison:
    baseline: str
    candidate: str
    n_shared_prompts: int
    rows: list[MetricComparison]
    verdict: Verdict
    coverage: Coverage | None = None
    prompts: PromptEvidence | None = None
    affix: Affix | None = None
    without_affix: Verdict | None = None  # the verdict with the shared opening/closing stripped

    def by_scope(self, scope: str) -> dict[str, Comparison]:
        return {r.metric: r.comparison for r in self.rows if r.scope == scope}


def restrict(corpus: Corpus, prompt_ids: Sequence[str]) -> Corpus:
    """The sub-corpus of the given prompts (kept in the corpus' canonical order)."""
    wanted = set(prompt_ids)
    keep = [p for p, pid in enumerate(corpus.prompt_ids) if pid in wanted]
    rows = [i for p in keep for i in range(corpus.offsets[p], corpus.offsets[p + 1])]
    offsets = np.concatenate([[0], np.cumsum([corpus.offsets[p + 1] - corpus.offsets[p] for p in keep])])
    return Corpus(
        prompt_ids=[corpus.prompt_ids[p] for p in keep],
        texts=[corpus.texts[i] for i in rows],
        offsets=offsets.astype(np.int64),
        embeddings=None if corpus.embeddings is None else corpus.embeddings[rows],
    )


def coverage_of(base: ScoredBatch, cand: ScoredBatch, shared: Sequence[str]) -> Coverage:
    """Shared and dropped prompts, the fewest outputs of a shared prompt, blank outputs per side."""
    base_ids, cand_ids = set(base.corpus.prompt_ids), set(cand.corpus.prompt_ids)
    wanted = set(shared)
    per_prompt = [
        int(c.offsets[p + 1] - c.offsets[p])
        for c in (base.corpus, cand.corpus)
        for p, pid in enumerate(c.prompt_ids)
        if pid in wanted
    ]
    return Coverage(
        n_shared_prompts=len(shared),
        only_baseline=len(base_ids - cand_ids),
        only_candidate=len(cand_ids - base_ids),
        min_samples_per_prompt=min(per_prompt, default=0),
        n_baseline=base.corpus.n_samples,
        n_baseline_blank=base.result.n_blank,
        n_candidate=cand.corpus.n_samples,
        n_candidate_blank=cand.result.n_blank,
    )


def across_replicates(metric: Metric, corpus: Corpus, weights: np.ndarray) -> tuple[float, np.ndarray]:
    point = float(metric.across(corpus, np.ones(corpus.n_prompts, dtype=np.int64)))
    return point, replicate_values(metric, corpus, weights)


def tail_rows(base: Corpus, cand: Corpus, halves: np.ndarray, scale: float) -> list[MetricComparison]:
    """The tail-coverage family (``collector.metrics.tail``) on two corpora over the same prompts:
    forward vs reverse on the full data and on the same half-samples (``across`` scope)."""
    pair = TailPair(base, cand)
    full = pair.pairs(np.ones(base.n_prompts))
    reps = [pair.pairs(w) for w in halves]
    return [
        MetricComparison(
            name,
            "across",
            "tail",
            compare_paired_replicates(
                np.array([r[name][1] for r in reps]),
                np.array([r[name][0] for r in reps]),
                higher_is_diverse=True,
                base_value=full[name][1],
                cand_value=full[name][0],
                n_pairs=base.n_prompts,
                spread_scale=scale,
            ),
        )
        for name in pair.names
    ]


@dataclass(frozen=True)
class Resampled:
    """What a comparison resamples: each side's pooled value and half-sample replicates per
    metric, the tail family's rows and the headline metrics' per-prompt permutation tests."""

    base: dict[str, tuple[float, np.ndarray]]
    cand: dict[str, tuple[float, np.ndarray]]
    tail: list[MetricComparison]
    tests: dict[str, list[PromptTest]]


def side_replicates(
    metrics: Sequence[Metric], corpus: Corpus, halves: np.ndarray
) -> dict[str, tuple[float, np.ndarray]]:
    """``across_replicates`` of every metric on one side (its background work started first)."""
    start_replicates(metrics, corpus, halves)  # gzips run in threads while the rest is computed
    return {m.name: across_replicates(m, corpus, halves) for m in metrics}


# Relative cost of the pieces of ``resample_both``, measured on 2 x 320 real outputs of 40 prompts
# (one BLAS thread): a side's replicates 0.25 s (lexical) to 0.33 s (full suite), the tail family
# 0.16-0.3 s, a headline metric's permutation tests 0.06-0.09 s.
SIDE_COST, TAIL_COST, LEXICAL_TEST_COST, EMBEDDING_TEST_COST = 1.0, 0.6, 0.3, 0.2


def resample_both(
    scored: Sequence[Metric],
    metrics: Sequence[Metric],
    base: Corpus,
    cand: Corpus,
    halves: np.ndarray,
    scale: float,
    th: Thresholds,
    seed: int,
    workers: int = 1,
) -> Resampled:
    """The independent resampling of a comparison, on two processes when ``workers >= 2`` allows
    (``collector.parallel``): the same functions on the same data, so the same values either way."""
    n_perm = permutations_for(cand.n_prompts, th)
    jobs: list[tuple[float, Job]] = [
        (SIDE_COST, partial(side_replicates, scored, base, halves)),
        (SIDE_COST, partial(side_replicates, scored, cand, halves)),
        (TAIL_COST, partial(tail_rows, base, cand, halves, scale)),
        *[
            (
                EMBEDDING_TEST_COST if m.needs_embeddings else LEXICAL_TEST_COST,
                partial(tests_for, [m], base, cand, n_perm=n_perm, seed=seed),
            )
            for m in headline_of(metrics, th)
        ],
    ]
    if not can_fork(workers):  # one process: both sides' gzips overlap everything else
        for side in (base, cand):
            start_replicates(scored, side, halves)
    b, c, tail, *tests = run_balanced(jobs, workers=workers)
    return Resampled(base=b, cand=c, tail=tail, tests={k: v for t in tests for k, v in t.items()})


def permutations_for(n_prompts: int, th: Thresholds) -> int:
    """Random splits per prompt: enough that the smallest p-value, ``1/(n+1)``, survives the
    Benjamini-Hochberg step the per-prompt rule needs (with a factor 2 to spare), at least
    ``DEFAULT_PERMUTATIONS``, at most ``MAX_PERMUTATIONS``."""
    need = max(1, th.min_collapsed_prompts, math.ceil(th.min_collapsed_share * n_prompts))
    wanted = math.ceil(2 * n_prompts / (th.prompt_fdr * need))
    return int(min(MAX_PERMUTATIONS, max(DEFAULT_PERMUTATIONS, wanted)))


def headline_of(metrics: Sequence[Metric], th: Thresholds) -> list[Metric]:
    """The metrics among ``metrics`` whose per-prompt findings the verdict reads."""
    return [m for m in metrics if m.name in th.headline_metrics]


def prompt_evidence(
    tests: dict[str, list[PromptTest]], metrics: Sequence[Metric], texts: dict[str, str], th: Thresholds
) -> PromptEvidence | None:
    """The per-prompt findings of the headline metrics' ``tests`` (None when none was tested)."""
    if not tests:
        return None
    return assess_prompts(
        tests,
        {m.name: m.higher_is_diverse for m in headline_of(metrics, th)},
        texts,
        fdr=th.prompt_fdr,
        floors=th.prompt_min_decline,
        min_count=th.min_collapsed_prompts,
        min_share=th.min_collapsed_share,
    )


def without_affix(
    cand: ScoredBatch, affix: Affix, metrics: Sequence[Metric], embed: Callable | None
) -> ScoredBatch:
    """The candidate rescored with ``affix`` stripped from its outputs (embedded again with ``embed``;
    without it, the embedding metrics are left out)."""
    c = cand.corpus
    owner = c.sample_prompt_index()
    samples = [Sample(c.prompt_ids[owner[i]], strip_affix(t, affix)) for i, t in enumerate(c.texts)]
    vectors = None
    if embed is not None and any(m.needs_embeddings for m in metrics):
        vectors = np.asarray(embed([s.output for s in samples]))
    use = [m for m in metrics if vectors is not None or not m.needs_embeddings]
    corpus = build_corpus(samples, vectors)
    return replace(cand, corpus=corpus, result=score_corpus(corpus, use, n_boot=2, seed=0))


def _shares(affix: Affix, field: str) -> str:
    """``100%``, or ``100% and 95%`` for an opening with a closing."""
    own = f"{getattr(affix, field):.0%}"
    return own if affix.closing is None else f"{own} and {getattr(affix.closing, field):.0%}"


def _it(affix: Affix) -> str:
    return "it" if affix.closing is None else "them"


def affix_reason(affix: Affix, status_with: str, without: Verdict, baseline_label: str) -> str:
    """``shared opening "Certainly! Here is my answer:" in 100% of the candidate's outputs (v1: 0%);
    with it: collapse_suspected; without it: ok``."""
    return (
        f"shared {affix.describe()} in {_shares(affix, 'share')} of the candidate's outputs "
        f"({baseline_label}: {_shares(affix, 'baseline_share')}); with {_it(affix)}: {status_with}; "
        f"without {_it(affix)}: {without.status}"
    )


def compare_batches(
    base: ScoredBatch,
    cand: ScoredBatch,
    metrics: Sequence[Metric],
    *,
    trends: dict[str, Trend] | None = None,
    thresholds: Thresholds | None = None,
    n_boot: int = 2000,
    n_halves: int = ACROSS_HALVES,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    embed: Callable | None = None,
    check_affix: bool = True,
    workers: int = 1,
) -> BatchComparison:
    """Every metric in both scopes, candidate vs baseline, per-prompt findings and the verdict.
    ``workers=2`` resamples on two processes (``resample_both``): the same result, sooner.

    When the candidate's outputs share an opening or closing the baseline's do not
    (``check_affix``), the comparison is made again with it stripped (``embed`` re-embeds the
    stripped outputs; without it that second verdict is lexical-only) and both verdicts are said.
    """
    shared = sorted(set(base.corpus.prompt_ids) & set(cand.corpus.prompt_ids))
    if not shared:
        raise ValueError(
            f"{base.label} and {cand.label} share no prompt: versions are compared on the same probe set"
        )
    base_sub, cand_sub = restrict(base.corpus, shared), restrict(cand.corpus, shared)
    halves = half_sample_weights(len(shared), n_halves, seed)
    m = len(shared) // 2
    scale = float(np.sqrt(m / (len(shared) - m))) if m else 1.0
    rows: list[MetricComparison] = []
    families: dict[str, str] = {}
    scored = [m for m in metrics if m.name in base.result.per_prompt and m.name in cand.result.per_prompt]
    th = (thresholds or Thresholds()).model_copy(update={"baseline_label": base.label})
    work = resample_both(scored, metrics, base_sub, cand_sub, halves, scale, th, seed, workers)
    for metric in scored:  # a metric not scored on one side (e.g. no embeddings) is left out
        if progress:
            progress(metric.name)
        families[metric.name] = metric.family
        within = compare(
            base.result.per_prompt[metric.name],
            cand.result.per_prompt[metric.name],
            higher_is_diverse=metric.higher_is_diverse,
            n_boot=n_boot,
            seed=seed,
            metric=metric.name,
        )
        (bv, b_reps), (cv, c_reps) = work.base[metric.name], work.cand[metric.name]
        across = compare_paired_replicates(
            b_reps,
            c_reps,
            higher_is_diverse=metric.higher_is_diverse,
            base_value=bv,
            cand_value=cv,
            n_pairs=len(shared),
            spread_scale=scale,
            metric=metric.name,
        )
        rows.append(MetricComparison(metric.name, "within", metric.family, within))
        rows.append(MetricComparison(metric.name, "across", metric.family, across))
    rows.extend(work.tail)
    families.update({r.metric: r.family for r in rows if r.family == "tail"})
    within_cmp = {r.metric: r.comparison for r in rows if r.scope == "within"}
    across_cmp = {r.metric: r.comparison for r in rows if r.scope == "across"}
    coverage = coverage_of(base, cand, shared)
    texts = {**base.prompts, **cand.prompts}
    prompts = prompt_evidence(work.tests, metrics, texts, th)
    result = verdict(
        within_cmp, trends or {}, families, th, pooled=across_cmp, coverage=coverage, prompts=prompts
    )
    groups = [cand_sub.prompt_texts(p) for p in range(cand_sub.n_prompts)]
    affix = shared_affix(groups, base_sub.texts) if check_affix else None
    stripped = None
    if affix is not None:
        plain = without_affix(cand, affix, metrics, embed)
        stripped = compare_batches(
            base,
            plain,
            metrics,
            trends=trends,
            thresholds=th,
            n_boot=n_boot,
            n_halves=n_halves,
            seed=seed,
            check_affix=False,
            workers=workers,
        ).verdict
        line = affix_reason(affix, result.status, stripped, th.baseline_label)
        first = result.status != "inconclusive"  # else the reason it could not decide stays first
        result = Verdict(
            result.status,
            [line, *result.reasons] if first else [*result.reasons, line],
            {
                **result.details,
                "shared_affix": {
                    **asdict(affix),
                    "status_without": stripped.status,
                    "reasons_without": stripped.reasons,
                },
            },
        )
    return BatchComparison(
        base.label, cand.label, len(shared), rows, result, coverage, prompts, affix, stripped
    )
