"""Assessing a model's latest run: comparisons vs baseline and previous version, trends, verdict.

``assess_model(store, model)`` takes the model's latest completed run (the candidate), rebuilds the
latest completed runs of the baseline version and of the previous version as scored batches from
their stored samples (failed samples skipped), compares the candidate with each
(``compare_batches``: both scopes), fits the trend of every metric over the last K versions'
latest values, and stores comparisons + verdict (in one transaction) and trends.  The verdict is
the one of the comparison vs the baseline, with the ``within`` trends as extra evidence.

Rescoring from samples (rather than reading stored per-prompt values) keeps all three batches on
the same metric set; the ``across`` comparison needs the texts anyway.  The vectors are not
recomputed: the collector's embedder reads the ones stored when each run was scored
(``collector.store.embeddings``).  Each run records its embedding identity (backend, model,
dimension, normalisation); a reference run of another identity is compared on every metric but
the embedding family, and the verdict says why (:func:`embedding_mismatch`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import cached_property

from collector.comparison import ACROSS_HALVES, BatchComparison, ScoredBatch, compare_batches
from collector.metrics.registry import select_metrics
from collector.scored_subset import scored_samples
from collector.scoring import SCORE_BOOT, EmbedFn, identity_of, score_batch
from collector.store.api import Store
from collector.store.assessments import PromptFindingRecord, VerdictRecord
from collector.store.embeddings import run_identities
from collector.trends import DEFAULT_LAST_K, Thresholds, Trend, Verdict, trend
from collector.vocabulary import ChangeRow, TrendRow


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
    max_samples: int | None = None,
) -> ScoredBatch:
    """A stored run's outputs (failed or pruned samples skipped) scored as a batch.

    With ``max_samples``, the outputs its collector scored: the same bounded uniform sample
    (``collector.scored_subset``), so their embeddings are read back, not computed.
    """
    stored = [s for s in store.run_samples(run_id) if s.output is not None]
    samples = scored_samples(stored, max_samples)
    if not samples:
        raise AssessmentError(
            f"run {run_id} ({label}) has no stored outputs to compare (all failed, or pruned by retention)"
        )
    return score_batch(label, samples, metrics=metrics, embed=embed, n_boot=SCORE_BOOT, seed=seed)


def version_trends(
    store: Store, model: str, up_to_ordinal: int, last_k: int, embedding: str | None = None
) -> tuple[dict[tuple[str, str], Trend], str | None]:
    """Trend of every metric × scope over the latest values of the last ``last_k`` versions.

    With ``embedding`` (an identity label) the embedding metrics' series keep only the runs scored
    with that identity (or with none recorded): values of another embedder are not on its scale.
    """
    rows = [r for r in store.latest_metrics(model) if r["version_ordinal"] <= up_to_ordinal]
    if embedding is not None:
        labels = run_identities(
            store.engine, sorted({r["run_id"] for r in rows if r["family"] == "embedding"})
        )
        rows = [r for r in rows if r["family"] != "embedding" or labels.get(r["run_id"]) in (None, embedding)]
    series: dict[tuple[str, str], list[tuple[int, float]]] = {}
    orient: dict[str, bool] = {}
    last: tuple[int, str] | None = None
    for r in rows:
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


def change_rows(
    bc: BatchComparison, model: str, version: str, reference: str, reference_run_id: int
) -> list[ChangeRow]:
    """The rows of one batch comparison as the store keeps them."""
    return [r.change_row(model, version, reference, reference_run_id) for r in bc.rows]


def finding_records(bc: BatchComparison, reference_run_id: int) -> list[PromptFindingRecord]:
    """The per-prompt findings of one batch comparison as store records (none when not tested)."""
    if bc.prompts is None:
        return []
    return [
        PromptFindingRecord(
            reference_run_id,
            f.prompt_id,
            mf.metric,
            mf.base_value,
            mf.cand_value,
            mf.change,
            mf.p_value,
            mf.adjusted_p,
            f.collapsed,
        )
        for f in bc.prompts.findings
        for mf in f.metrics.values()
    ]


class EmbeddingIdentities:
    """The embedding identity of each run an assessment touches: the recorded one, or, for a run
    that recorded none (scored before identities were kept, or without embedding metrics), the
    identity of the embedder in use (computed only when such a run is met)."""

    def __init__(self, store: Store, run_ids: list[int], embed: EmbedFn | None) -> None:
        self.recorded = run_identities(store.engine, run_ids)
        self.embed = embed

    @cached_property
    def current(self) -> str | None:
        ident = identity_of(self.embed)
        return None if ident is None else ident.label()

    def of(self, run_id: int) -> str | None:
        return self.recorded.get(run_id) or self.current


def embedding_mismatch(
    idents: EmbeddingIdentities, cand: tuple[int, str], ref: tuple[int, str]
) -> str | None:
    """Why the embedding family of two runs cannot be compared, or None when it can.

    ``cand`` and ``ref`` are (run id, version label). Vectors of two embedders (another model, a
    remote server instead of the local model, another dimension) are on different scales: a
    difference between them says nothing about the model's outputs.
    """
    if idents.embed is None:
        return None
    a, b = idents.of(cand[0]), idents.of(ref[0])
    if a == b or a is None or b is None:
        return None
    return (
        f"embedding metrics not compared with {ref[1]} (run {ref[0]}): it was embedded with {b}, this run "
        f"(run {cand[0]}) with {a}; vectors of two embedders are not comparable. The lexical metrics "
        "still are. To compare embeddings again, set baseline_version to a version collected with the "
        "new embedder"
    )


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
    max_samples: int | None = None,
    on_compared: Callable[[str, BatchComparison], None] | None = None,
) -> Verdict | None:
    """Assess the model's latest completed run and store the result; None when it has no such run.

    ``on_compared(reference, comparison)`` receives the comparisons as they are made
    (``"baseline"``, then ``"previous"``), for a caller that shows more than the verdict (the API).

    ``max_samples`` (the model's ``max_scored_samples``) bounds each run to the sample its
    collector scored.

    ``metrics`` are suite names (None: the default suite); without ``embed`` the embedding metrics
    are skipped and the verdict is lexical-only (``collapse_suspected`` then needs the lexical family
    at ``p < watch_p_value``; see :func:`collector.trends.verdict`).
    """
    cand_run = store.latest_completed_run(model_name)
    if cand_run is None:
        return None
    info = store.run_info(cand_run)
    baseline = store.baseline_version(model_name)
    base_run = None if baseline is None else store.latest_completed_run(model_name, baseline)
    prev = _previous_run(store, model_name, info.version_ordinal)
    # Identities matter only when an embedding metric is scored (the current one may load the model).
    embeds = embed if any(m.needs_embeddings for m in select_metrics(metrics)) else None
    idents = EmbeddingIdentities(
        store, [r for r in (cand_run, base_run, prev and prev[1]) if r is not None], embeds
    )
    cand_ident = idents.recorded.get(cand_run) or (idents.current if embeds is not None else None)
    trends, last_label = version_trends(store, model_name, info.version_ordinal, last_k, cand_ident)
    store.save_trends(
        model_name,
        [
            TrendRow(
                model_name,
                metric,
                scope,
                t.slope,
                t.p_value,
                t.n_versions,
                t.slope_ci_low,
                t.slope_ci_high,
                last_label,
            )
            for (metric, scope), t in sorted(trends.items())
        ],
    )
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

    def batch(run_id: int, label: str, with_embeddings: bool = True) -> ScoredBatch:
        e = embed if with_embeddings else None
        return load_batch(store, run_id, label, metrics=names, embed=e, seed=seed, max_samples=max_samples)

    assert baseline is not None
    cand = batch(cand_run, info.version)
    base_mismatch = embedding_mismatch(idents, (cand_run, info.version), (base_run, baseline))
    base = batch(base_run, baseline, with_embeddings=base_mismatch is None)
    within_trends = {metric: t for (metric, scope), t in trends.items() if scope == "within"}

    def compare(ref: ScoredBatch, mismatch: str | None) -> BatchComparison:
        try:
            bc = compare_batches(
                ref,
                cand,
                selected,
                trends=within_trends,
                thresholds=thresholds,
                n_boot=n_boot,
                n_halves=n_halves,
                seed=seed,
                embed=embed if mismatch is None else None,
            )
        except ValueError as exc:
            raise AssessmentError(f"{model_name}: run {cand_run} vs {ref.label}: {exc}") from exc
        return bc if mismatch is None else with_mismatch(bc, mismatch)

    vs_base = compare(base, base_mismatch)
    if on_compared is not None:
        on_compared("baseline", vs_base)
    records = change_rows(vs_base, model_name, info.version, "baseline", base_run)
    if prev is not None:
        prev_label, prev_run = prev
        if prev_run == base_run:
            vs_prev = vs_base
        else:
            mismatch = embedding_mismatch(idents, (cand_run, info.version), (prev_run, prev_label))
            vs_prev = compare(batch(prev_run, prev_label, with_embeddings=mismatch is None), mismatch)
        records += change_rows(vs_prev, model_name, info.version, "previous", prev_run)
        if on_compared is not None:
            on_compared("previous", vs_prev)
    v = vs_base.verdict
    store.save_assessment(
        cand_run,
        records,
        VerdictRecord(v.status, v.reasons, v.details, baseline),
        finding_records(vs_base, base_run),
    )
    return v


def with_mismatch(bc: BatchComparison, mismatch: str) -> BatchComparison:
    """``bc`` with its verdict saying first why the embedding family was left out."""
    v = bc.verdict
    verdict = Verdict(v.status, [mismatch, *v.reasons], {**v.details, "embedding_incomparable": mismatch})
    return replace(bc, verdict=verdict)


def assess_all(store: Store, **kwargs: object) -> dict[str, Verdict | None]:
    """``assess_model`` for every model in the store (keyword arguments passed on)."""
    return {name: assess_model(store, name, **kwargs) for name in store.model_names()}  # type: ignore[arg-type]
