"""The Prometheus exporter: a custom collector that reads the latest state from SQL at scrape time.

Reading at scrape time (instead of setting gauges when a run finishes) means values survive
restarts, a separate `serve-metrics` process shows exactly what the database holds, and no label
set of a pruned version lingers.  The families and their meaning are the contract in
docs/metrics.md; the rows come from ``Store.overview()`` (``collector.store.overview``) unchanged,
and every decision exported is the verdict's own (status, each metric's ``significant_decline``,
the trend decision): this module draws no line of its own.

Emits (all prefixed ``collapse_watch_``); ``detail="summary"`` (the default, a series budget of
<= 300 per model) keeps the per-metric families to each model's latest version: every metric's
value, change vs the baseline and ``declined`` flag, the ``within`` trend slopes, and for the
``HEADLINE_METRICS`` (what the dashboards' per-metric panels show) the intervals, the p-value, the
change vs the previous version, the ``across`` slopes and the trend p-values as well;
``detail="full"`` exports every family for every metric of every exported version::

    diversity{model,version,metric,scope}                    + _ci_lower, _ci_upper (headline)
    diversity_change{model,version,metric,scope,reference}   reference="previous" (headline)
        + diversity_change_ci_lower, _ci_upper, _p_value (headline; previous: full)
        (in vocabulary.CHANGE_UNIT: the metric's scale, negative = less diverse)
    diversity_declined{model,version,metric,scope}
    verdict{model,version,verdict}   model_version_info{model,version,baseline_version}
    version_ordinal  latest_version_ordinal  version_first_seen_timestamp_seconds{model,version}
    collapse_suspected{model,version,worst}  diversity_watch{model,version,worst}
    trend_declining{model,version,worst}
    prompts_collapsed{model,version}   (latest version only: one series per model, a count)
    trend_slope{model,metric,scope} (across: headline)  trend_p_value (headline)  trend_versions (full)
    runs_total{model,status}  samples_total  sample_errors_total  last_run_timestamp_seconds
    last_success_timestamp_seconds  last_run_duration_seconds  run_duration_seconds (histogram)
    schedule_interval_seconds{model}  up  scrape_duration_seconds  snapshot_age_seconds  build_info{version}
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from collector import __version__
from collector.readout.outage import OutageLog
from collector.readout.reliability import reliability_families
from collector.readout.snapshot import Snapshot
from collector.store.overview import OUTCOMES, Overview, VersionState
from collector.vocabulary import CHANGE_UNIT, HEADLINE_METRICS, STATUSES, ChangeRow

log = logging.getLogger("collapse_watch.exporter")

PREFIX = "collapse_watch_"
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600)
WORST_SHOWN = 3  # metrics named in a decision's ``worst`` label


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _gauge(name: str, doc: str, labels: list[str], unit: str = "") -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, doc, labels=labels, unit=unit)


def latest_versions(snap: Overview) -> dict[str, VersionState]:
    """Each model's newest exported version."""
    newest: dict[str, VersionState] = {}
    for v in snap.versions:
        if v.model not in newest or v.ordinal > newest[v.model].ordinal:
            newest[v.model] = v
    return newest


def _detailed(snap: Snapshot, metric: str) -> bool:
    """Whether ``metric``'s detail families (intervals, p-values, vs previous, trend p) are exported."""
    return snap.detail == "full" or metric in HEADLINE_METRICS


def _exported(snap: Snapshot) -> set[tuple[str, str]]:
    """(model, version) pairs whose per-metric series this detail level exports."""
    if snap.detail == "full":
        return {(v.model, v.version) for v in snap.versions}
    return {(m, v.version) for m, v in latest_versions(snap).items()}


def value_families(snap: Snapshot) -> Iterator[GaugeMetricFamily]:
    labels = ["model", "version", "metric", "scope"]
    fams = {
        "value": _gauge("diversity", "Diversity metric value of a model version (raw orientation).", labels),
        "lo": _gauge("diversity_ci_lower", "Lower end of the value's bootstrap 95% interval.", labels),
        "hi": _gauge("diversity_ci_upper", "Upper end of the value's bootstrap 95% interval.", labels),
    }
    keep = _exported(snap)
    for r in snap.values:
        if (r.model, r.version) not in keep:
            continue
        parts = ("value", "lo", "hi") if _detailed(snap, r.metric) else ("value",)
        key = [r.model, r.version, r.metric, r.scope]
        for part, x in zip(("value", "lo", "hi"), (r.value, r.ci_low, r.ci_high), strict=True):
            if part in parts and _finite(x):
                fams[part].add_metric(key, x)
    yield from fams.values()


def change_families(snap: Snapshot) -> Iterator[GaugeMetricFamily]:
    labels = ["model", "version", "metric", "scope", "reference"]
    change = _gauge("diversity_change", f"Change vs the reference version: {CHANGE_UNIT}.", labels)
    lo = _gauge("diversity_change_ci_lower", "Lower end of the change's 95% interval (same unit).", labels)
    hi = _gauge("diversity_change_ci_upper", "Upper end of the change's 95% interval (same unit).", labels)
    p = _gauge("diversity_change_p_value", "Two-sided p-value of the change.", labels)
    declined = _gauge(
        "diversity_declined",
        "1 when the verdict counted the change vs baseline as a significant decline (its "
        "significant_decline: interval below 0, p < alpha and at least the minimum effect).",
        ["model", "version", "metric", "scope"],
    )
    full = snap.detail == "full"
    keep = _exported(snap)
    for r in snap.changes:
        detailed = _detailed(snap, r.metric)
        if (r.model, r.version) not in keep or (r.reference != "baseline" and not detailed):
            continue
        # the summary's detail of a change: its interval and p-value vs the baseline only
        parts = (change, lo, hi, p) if full or (detailed and r.reference == "baseline") else (change,)
        key = [r.model, r.version, r.metric, r.scope, r.reference]
        for fam, x in ((change, r.change), (lo, r.ci_low), (hi, r.ci_high), (p, r.p_value)):
            if fam in parts and _finite(x):
                fam.add_metric(key, x)
        if r.reference == "baseline":
            declined.add_metric(key[:4], 1.0 if r.significant_decline else 0.0)
    baseline_keys = {
        (r.model, r.metric, r.scope)
        for r in snap.values
        if snap.baselines.get(r.model) == r.version and (r.model, r.version) in keep
    }
    for model, metric, scope in sorted(baseline_keys):
        declined.add_metric([model, snap.baselines[model], metric, scope], 0.0)
    yield from (change, lo, hi, p, declined)


def worst_declines(snap: Overview, n: int = WORST_SHOWN) -> dict[tuple[str, str], list[str]]:
    """Per (model, version): the metrics the verdict counted as declined vs baseline (``within``),
    most negative change first."""
    rows: dict[tuple[str, str], list[ChangeRow]] = {}
    for c in snap.changes:
        if c.reference == "baseline" and c.scope == "within" and c.significant_decline:
            rows.setdefault((c.model, c.version), []).append(c)
    return {k: [c.metric for c in sorted(v, key=lambda c: (c.change, c.metric))][:n] for k, v in rows.items()}


def version_families(snap: Snapshot) -> Iterator[GaugeMetricFamily]:
    verdict = _gauge(
        "verdict", "1 for the version's collapse verdict, 0 for the others.", ["model", "version", "verdict"]
    )
    decision_labels = ["model", "version", "worst"]
    suspected = _gauge(
        "collapse_suspected",
        "1 when the latest version's verdict is collapse_suspected; worst: its worst declined metrics.",
        decision_labels,
    )
    watch = _gauge(
        "diversity_watch",
        "1 when the latest version's verdict is watch; worst: declined (else trending) metrics.",
        decision_labels,
    )
    trending = _gauge(
        "trend_declining",
        "1 when the latest verdict's trend decision holds (a significant downward trend of at least "
        "the minimum effect in enough metrics of both families); worst: those metrics.",
        decision_labels,
    )
    info = _gauge(
        "model_version_info",
        "Exported versions and the model's baseline.",
        ["model", "version", "baseline_version"],
    )
    ordinal = _gauge(
        "version_ordinal", "Position of the version in the model's order (0 = oldest).", ["model", "version"]
    )
    latest = _gauge("latest_version_ordinal", "Ordinal of the model's latest version.", ["model"])
    collapsed = _gauge(
        "prompts_collapsed",
        "Prompts of the latest version whose headline metrics each declined beyond their floor at the "
        "per-prompt false-discovery rate (a count; the prompts are named in the verdict and the store).",
        ["model", "version"],
    )
    first_seen = _gauge(
        "version_first_seen_timestamp_seconds",
        "When the store first saw the version (Unix seconds): the dashboards' version annotations.",
        ["model", "version"],
    )
    for v in snap.versions:
        info.add_metric([v.model, v.version, snap.baselines.get(v.model, "")], 1.0)
        ordinal.add_metric([v.model, v.version], float(v.ordinal - 1))
        if _finite(v.first_seen):
            first_seen.add_metric([v.model, v.version], float(v.first_seen))  # type: ignore[arg-type]
        if v.verdict is not None:
            for name in STATUSES:
                verdict.add_metric([v.model, v.version, name], 1.0 if v.verdict == name else 0.0)
    worst = worst_declines(snap)
    for model, v in sorted(latest_versions(snap).items()):
        latest.add_metric([model], float(v.ordinal - 1))
        if v.prompts_collapsed is not None:
            collapsed.add_metric([model, v.version], float(v.prompts_collapsed))
        if v.verdict is None:
            continue
        declines = worst.get((model, v.version), [])
        trend_worst = list(v.trending[:WORST_SHOWN])
        suspected.add_metric(
            [model, v.version, ",".join(declines)], 1.0 if v.verdict == "collapse_suspected" else 0.0
        )
        watch.add_metric(
            [model, v.version, ",".join(declines or trend_worst)], 1.0 if v.verdict == "watch" else 0.0
        )
        if v.trend_declining is not None:
            trending.add_metric([model, v.version, ",".join(trend_worst)], 1.0 if v.trend_declining else 0.0)
    yield from (verdict, suspected, watch, trending, collapsed, info, ordinal, latest, first_seen)


def trend_families(snap: Snapshot) -> Iterator[GaugeMetricFamily]:
    labels = ["model", "metric", "scope"]
    slope = _gauge("trend_slope", "Theil-Sen slope per version step; negative means less diverse.", labels)
    p = _gauge("trend_p_value", "Mann-Kendall two-sided p-value of the trend.", labels)
    n = _gauge("trend_versions", "Number of versions the trend was fitted on.", labels)
    full = snap.detail == "full"
    for r in snap.trends:
        detailed = _detailed(snap, r.metric)
        if r.n_versions < MIN_TREND_VERSIONS or (r.scope != "within" and not detailed):
            continue
        key = [r.model, r.metric, r.scope]
        if _finite(r.slope):
            slope.add_metric(key, r.slope)
        if detailed and _finite(r.p_value):
            p.add_metric(key, r.p_value)
        if full:
            n.add_metric(key, float(r.n_versions))
    yield from (slope, p, n)


MIN_TREND_VERSIONS = 3  # the contract omits trends fitted on fewer versions


def health_families(
    snap: Snapshot,
) -> Iterator[GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily]:
    runs = CounterMetricFamily(
        PREFIX + "runs",
        "Collection runs that ended, by outcome (success, partial, failed, no_data).",
        labels=["model", "status"],
    )
    samples = CounterMetricFamily(
        PREFIX + "samples", "Model outputs stored (requests that returned text).", labels=["model"]
    )
    errors = CounterMetricFamily(
        PREFIX + "sample_errors", "Sampling requests that failed (after retries).", labels=["model"]
    )
    last_run = _gauge("last_run_timestamp_seconds", "When the latest run finished.", ["model"])
    last_ok = _gauge(
        "last_success_timestamp_seconds", "When the latest run that stored results finished.", ["model"]
    )
    last_dur = _gauge("last_run_duration_seconds", "Wall time of the latest timed run.", ["model"])
    interval = _gauge("schedule_interval_seconds", "The model's schedule interval.", ["model"])
    hist = HistogramMetricFamily(PREFIX + "run_duration_seconds", "Wall time of runs.", labels=["model"])
    for h in snap.health:
        for status in OUTCOMES:
            runs.add_metric([h.model, status], h.runs.get(status, 0))
        samples.add_metric([h.model], h.samples)
        errors.add_metric([h.model], h.sample_errors)
        for fam, x in ((last_run, h.last_run_ts), (last_ok, h.last_success_ts), (last_dur, h.last_duration)):
            if _finite(x):
                fam.add_metric([h.model], float(x))  # type: ignore[arg-type]
        if _finite(snap.intervals.get(h.model)):
            interval.add_metric([h.model], float(snap.intervals[h.model]))
        buckets = [(str(float(b)), sum(1 for d in h.durations if d <= b)) for b in DURATION_BUCKETS]
        buckets.append(("+Inf", len(h.durations)))
        hist.add_metric([h.model], buckets, sum_value=float(sum(h.durations)))
    yield from (runs, samples, errors, last_run, last_ok, last_dur, interval, hist)


class StoreCollector(Collector):
    """Reads one ``Snapshot`` on every scrape (the one read path: every store family, the reliability
    series included, comes from it); a failing read exports ``collapse_watch_up 0``."""

    def __init__(self, load_snapshot: Callable[[], Snapshot], outage: OutageLog | None = None) -> None:
        self._load = load_snapshot
        self._outage = outage or OutageLog(log, "the store for /metrics")

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []  # families depend on the store's content: no describe-time checks

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily]:
        start = time.perf_counter()
        up = _gauge("up", "1 when the exporter could read the store during this scrape.", [])
        try:
            snap = self._load()
        except Exception as exc:  # the scrape must still answer, saying the store is unreadable
            self._outage.failed(exc, "snapshot")  # one line when an outage starts, not per scrape
            snap = None
        if snap is not None:
            self._outage.ok("snapshot")
            yield from value_families(snap)
            yield from change_families(snap)
            yield from version_families(snap)
            yield from trend_families(snap)
            yield from health_families(snap)
            yield from reliability_families(snap)
            age = _gauge(
                "snapshot_age_seconds",
                "Age of the store state exported (0: read during this scrape; more: the last good "
                "read, served while the store was busy).",
                [],
            )
            age.add_metric([], snap.age_seconds)
            yield age
        up.add_metric([], 1.0 if snap is not None else 0.0)
        yield up
        took = _gauge("scrape_duration_seconds", "Time spent reading the store for this scrape.", [])
        took.add_metric([], time.perf_counter() - start)
        yield took
        build = _gauge("build_info", "collapse-watch build information.", ["version"])
        build.add_metric([__version__], 1.0)
        yield build
