"""Assessing a model's latest run: comparisons vs baseline and previous version, trends, verdict.

``assess_model(store, model)`` takes the model's latest completed run (the candidate), rebuilds the
latest completed runs of the baseline version and of the previous version as scored batches from
their stored samples (failed samples skipped), compares the candidate with each
(``compare_batches``: both scopes), fits the trend of every metric over the last K versions'
latest values, and stores comparisons + verdict (in one transaction) and trends.  The verdict is
the one of the comparison vs the baseline, with the ``within`` trends as extra evidence.

Rescoring from samples (rather than reading stored per-prompt values) keeps all three batches on
the same metric set and embedder; the ``across`` comparison needs the texts anyway.  Embedders
cache by text hash, so re-embedding stored outputs is cheap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from collector.comparison import ACROSS_HALVES, BatchComparison, ScoredBatch, compare_batches
from collector.metrics.base import Sample
from collector.metrics.registry import select_metrics
from collector.scoring import EmbedFn, score_batch
from collector.store.api import Store
from collector.store.assessments import ComparisonRecord, TrendRecord, VerdictRecord
from collector.trends import DEFAULT_LAST_K, Thresholds, Trend, Verdict, trend

SCORE_BOOT = 2  # rescoring here only needs per-prompt values; its own intervals are never used


class AssessmentError(RuntimeError):
    """A run cannot be assessed; the message names the run and why."""


def load_batch(
    store: Store,
    run_id: int,
    label: str,
    *,
    metrics: Sequence[str] | None,
    embed: EmbedFn | None,
    seed: int,
) -> ScoredBatch:
    """A stored run's outputs (failed or pruned samples skipped) scored as a batch."""
    samples = [
        Sample(prompt_id=s.prompt_key, output=s.output, prompt=s.prompt)
        for s in store.run_samples(run_id)
        if s.output is not None
    ]
    if not samples:
        raise AssessmentError(
            f"run {run_id} ({label}) has no stored outputs to compare (all failed, or pruned by retention)"
        )
    return score_batch(label, samples, metrics=metrics, embed=embed, n_boot=SCORE_BOOT, seed=seed)


def version_trends(
    store: Store, model: str, up_to_ordinal: int, last_k: int
) -> tuple[dict[tuple[str, str], Trend], str | None]:
    """Trend of every metric × scope over the latest values of the last ``last_k`` versions."""
    series: dict[tuple[str, str], list[tuple[int, float]]] = {}
    orient: dict[str, bool] = {}
    last: tuple[int, str] | None = None
    for r in store.latest_metrics(model):
        if r["version_ordinal"] > up_to_ordinal:
            continue
        value = math.nan if r["value"] is None else float(r["value"])
        series.setdefault((r["metric"], r["scope"]), []).append((r["version_ordinal"], value))
        orient[r["metric"]] = bool(r["higher_is_diverse"])
        if last is None or r["version_ordinal"] > last[0]:
            last = (r["version_ordinal"], r["version"])
    out = {
        key: trend([v for _, v in sorted(points)][-last_k:], higher_is_diverse=orient[key[0]], last_k=last_k)
        for key, points in series.items()
    }
    return out, None if last is None else last[1]


def comparison_records(bc: BatchComparison, reference: str, reference_run_id: int) -> list[ComparisonRecord]:
    """The rows of one batch comparison as store records."""
    return [
        ComparisonRecord(
            reference=reference,
            reference_run_id=reference_run_id,
            metric=r.metric,
            scope=r.scope,
            rel_change=c.rel_change,
            ci_low=c.ci_low,
            ci_high=c.ci_high,
            diversity_change=c.diversity_change,
            diversity_ci_low=c.diversity_ci_low,
            diversity_ci_high=c.diversity_ci_high,
            p_value=c.p_value,
            n_pairs=c.n_pairs,
            significant_decline=c.significant_decline,
        )
        for r in bc.rows
        for c in [r.comparison]
    ]


def _previous_run(store: Store, model: str, ordinal: int) -> tuple[str, int] | None:
    """The latest completed run of the newest version older than ``ordinal`` that has one."""
    for label, o in reversed(store.version_order(model)):
        if o < ordinal:
            rid = store.latest_completed_run(model, label)
            if rid is not None:
                return label, rid
    return None


def assess_model(
    store: Store,
    model_name: str,
    *,
    embed: EmbedFn | None = None,
    metrics: Sequence[str] | None = None,
    last_k: int = DEFAULT_LAST_K,
    thresholds: Thresholds | None = None,
    seed: int = 0,
    n_boot: int = 2000,
    n_halves: int = ACROSS_HALVES,
) -> Verdict | None:
    """Assess the model's latest completed run and store the result; None when it has no such run.

    ``metrics`` are suite names (None: the default suite); without ``embed`` the embedding metrics
    are skipped and the verdict is lexical-only (``collapse_suspected`` then needs the lexical family
    at ``p < watch_p_value``; see :func:`collector.trends.verdict`).
    """
    cand_run = store.latest_completed_run(model_name)
    if cand_run is None:
        return None
    info = store.run_info(cand_run)
    baseline = store.baseline_version(model_name)
    trends, last_label = version_trends(store, model_name, info.version_ordinal, last_k)
    store.save_trends(
        model_name,
        [
            TrendRecord(
                metric, scope, t.slope, t.slope_ci_low, t.slope_ci_high, t.p_value, t.n_versions, last_label
            )
            for (metric, scope), t in sorted(trends.items())
        ],
    )
    base_run = None if baseline is None else store.latest_completed_run(model_name, baseline)
    if baseline == info.version or base_run is None:
        reason = (
            f"baseline version {info.version}: nothing to compare"
            if baseline == info.version
            else f"baseline version {baseline} has no completed run: nothing to compare"
        )
        result = Verdict("ok", [reason], {"baseline": baseline})
        store.save_assessment(cand_run, [], VerdictRecord("ok", result.reasons, result.details, baseline))
        return result

    selected = select_metrics(metrics)
    names = [m.name for m in selected]

    def batch(run_id: int, label: str) -> ScoredBatch:
        return load_batch(store, run_id, label, metrics=names, embed=embed, seed=seed)

    cand = batch(cand_run, info.version)
    base = batch(base_run, baseline)  # type: ignore[arg-type]
    within_trends = {metric: t for (metric, scope), t in trends.items() if scope == "within"}

    def compare(ref: ScoredBatch) -> BatchComparison:
        try:
            return compare_batches(
                ref,
                cand,
                selected,
                trends=within_trends,
                thresholds=thresholds,
                n_boot=n_boot,
                n_halves=n_halves,
                seed=seed,
            )
        except ValueError as exc:
            raise AssessmentError(f"{model_name}: run {cand_run} vs {ref.label}: {exc}") from exc

    vs_base = compare(base)
    records = comparison_records(vs_base, "baseline", base_run)
    prev = _previous_run(store, model_name, info.version_ordinal)
    if prev is not None:
        prev_label, prev_run = prev
        vs_prev = vs_base if prev_run == base_run else compare(batch(prev_run, prev_label))
        records += comparison_records(vs_prev, "previous", prev_run)
    v = vs_base.verdict
    store.save_assessment(cand_run, records, VerdictRecord(v.status, v.reasons, v.details, baseline))
    return v


def assess_all(store: Store, **kwargs: object) -> dict[str, Verdict | None]:
    """``assess_model`` for every model in the store (keyword arguments passed on)."""
    return {name: assess_model(store, name, **kwargs) for name in store.model_names()}  # type: ignore[arg-type]
