"""The Prometheus exporter: a custom collector that reads the latest state from SQL at scrape time.

Reading at scrape time (instead of setting gauges when a run finishes) means values survive
restarts, a separate `serve-metrics` process shows exactly what the database holds, and no label
set of a pruned version lingers.  The families and their meaning are the contract in
docs/metrics.md; the snapshot it renders comes from ``collector.store.snapshot``.

Emits (all prefixed ``collapse_watch_``)::

    diversity{model,version,metric,scope}                    + _ci_lower, _ci_upper
    diversity_change_ratio{model,version,metric,scope,reference}
        + diversity_change_ci_lower_ratio, _ci_upper_ratio, _p_value
    diversity_declined{model,version,metric,scope}
    verdict{model,version,verdict}   collapse_suspected{model}
    model_version_info{model,version,baseline_version}  version_ordinal  latest_version_ordinal
    trend_slope{model,metric,scope}  trend_p_value  trend_versions
    runs_total{model,status}  samples_total  sample_errors_total  last_run_timestamp_seconds
    last_success_timestamp_seconds  last_run_duration_seconds  run_duration_seconds (histogram)
    schedule_interval_seconds{model}  up  scrape_duration_seconds  build_info{version}
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from collector import __version__

log = logging.getLogger("collapse_watch.exporter")

PREFIX = "collapse_watch_"
VERDICTS = ("ok", "watch", "collapse_suspected")
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600)


@dataclass(frozen=True)
class ValueRow:
    model: str
    version: str
    metric: str
    scope: str
    value: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class ChangeRow:
    """A change in diversity orientation (negative = less diverse)."""

    model: str
    version: str
    metric: str
    scope: str
    reference: str  # "baseline" | "previous"
    change: float
    ci_low: float
    ci_high: float
    p_value: float


@dataclass(frozen=True)
class TrendRow:
    model: str
    metric: str
    scope: str
    slope: float  # diversity orientation
    p_value: float
    n_versions: int


@dataclass(frozen=True)
class VersionRow:
    model: str
    version: str
    ordinal: int
    verdict: str | None


@dataclass
class HealthRow:
    model: str
    runs_success: int = 0
    runs_failed: int = 0
    samples: int = 0
    sample_errors: int = 0
    last_run_ts: float | None = None
    last_success_ts: float | None = None
    last_duration: float | None = None
    durations: list[float] = field(default_factory=list)
    interval_seconds: float | None = None


@dataclass
class Snapshot:
    """Everything one scrape exports, read from the store in one go."""

    baselines: dict[str, str] = field(default_factory=dict)  # model -> baseline version
    versions: list[VersionRow] = field(default_factory=list)
    values: list[ValueRow] = field(default_factory=list)
    changes: list[ChangeRow] = field(default_factory=list)
    trends: list[TrendRow] = field(default_factory=list)
    health: list[HealthRow] = field(default_factory=list)


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _gauge(name: str, doc: str, labels: list[str], unit: str = "") -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, doc, labels=labels, unit=unit)


def value_families(snap: Snapshot) -> Iterator[GaugeMetricFamily]:
    labels = ["model", "version", "metric", "scope"]
    fams = {
        "value": _gauge("diversity", "Diversity metric value of a model version (raw orientation).", labels),
        "lo": _gauge("diversity_ci_lower", "Lower end of the value's bootstrap 95% interval.", labels),
        "hi": _gauge("diversity_ci_upper", "Upper end of the value's bootstrap 95% interval.", labels),
    }
    for r in snap.values:
        key = [r.model, r.version, r.metric, r.scope]
        for part, x in (("value", r.value), ("lo", r.ci_low), ("hi", r.ci_high)):
            if _finite(x):
                fams[part].add_metric(key, x)
    yield from fams.values()


def change_families(snap: Snapshot) -> Iterator[GaugeMetricFamily]:
    labels = ["model", "version", "metric", "scope", "reference"]
    change = _gauge(
        "diversity_change_ratio",
        "Relative change vs the reference version; negative means less diverse.",
        labels,
    )
    lo = _gauge("diversity_change_ci_lower_ratio", "Lower end of the change's 95% interval.", labels)
    hi = _gauge("diversity_change_ci_upper_ratio", "Upper end of the change's 95% interval.", labels)
    p = _gauge("diversity_change_p_value", "Two-sided p-value of the change.", labels)
    declined = _gauge(
        "diversity_declined",
        "1 when the change vs baseline is a significant decline (whole interval below 0).",
        ["model", "version", "metric", "scope"],
    )
    for r in snap.changes:
        key = [r.model, r.version, r.metric, r.scope, r.reference]
        for fam, x in ((change, r.change), (lo, r.ci_low), (hi, r.ci_high), (p, r.p_value)):
            if _finite(x):
                fam.add_metric(key, x)
        if r.reference == "baseline" and _finite(r.ci_high):
            declined.add_metric(key[:4], 1.0 if r.ci_high < 0 else 0.0)
    baseline_keys = {
        (r.model, r.metric, r.scope) for r in snap.values if snap.baselines.get(r.model) == r.version
    }
    for model, metric, scope in sorted(baseline_keys):
        declined.add_metric([model, snap.baselines[model], metric, scope], 0.0)
    yield from (change, lo, hi, p, declined)


def version_families(snap: Snapshot) -> Iterator[GaugeMetricFamily]:
    verdict = _gauge(
        "verdict", "1 for the version's collapse verdict, 0 for the others.", ["model", "version", "verdict"]
    )
    suspected = _gauge(
        "collapse_suspected", "1 when the latest version's verdict is collapse_suspected.", ["model"]
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
    newest: dict[str, VersionRow] = {}
    for v in snap.versions:
        info.add_metric([v.model, v.version, snap.baselines.get(v.model, "")], 1.0)
        ordinal.add_metric([v.model, v.version], float(v.ordinal))
        if v.verdict is not None:
            for name in VERDICTS:
                verdict.add_metric([v.model, v.version, name], 1.0 if v.verdict == name else 0.0)
        if v.model not in newest or v.ordinal > newest[v.model].ordinal:
            newest[v.model] = v
    for model, v in sorted(newest.items()):
        latest.add_metric([model], float(v.ordinal))
        if v.verdict is not None:
            suspected.add_metric([model], 1.0 if v.verdict == "collapse_suspected" else 0.0)
    yield from (verdict, suspected, info, ordinal, latest)


def trend_families(snap: Snapshot) -> Iterator[GaugeMetricFamily]:
    labels = ["model", "metric", "scope"]
    slope = _gauge("trend_slope", "Theil-Sen slope per version step; negative means less diverse.", labels)
    p = _gauge("trend_p_value", "Mann-Kendall two-sided p-value of the trend.", labels)
    n = _gauge("trend_versions", "Number of versions the trend was fitted on.", labels)
    for r in snap.trends:
        key = [r.model, r.metric, r.scope]
        if _finite(r.slope):
            slope.add_metric(key, r.slope)
        if _finite(r.p_value):
            p.add_metric(key, r.p_value)
        n.add_metric(key, float(r.n_versions))
    yield from (slope, p, n)


def health_families(
    snap: Snapshot,
) -> Iterator[GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily]:
    runs = CounterMetricFamily(
        PREFIX + "runs", "Collection runs recorded, by outcome.", labels=["model", "status"]
    )
    samples = CounterMetricFamily(PREFIX + "samples", "Model outputs sampled and stored.", labels=["model"])
    errors = CounterMetricFamily(PREFIX + "sample_errors", "Sampling requests that failed.", labels=["model"])
    last_run = _gauge("last_run_timestamp_seconds", "When the latest run finished.", ["model"])
    last_ok = _gauge("last_success_timestamp_seconds", "When the latest successful run finished.", ["model"])
    last_dur = _gauge("last_run_duration_seconds", "Wall time of the latest run.", ["model"])
    interval = _gauge("schedule_interval_seconds", "The model's schedule interval.", ["model"])
    hist = HistogramMetricFamily(PREFIX + "run_duration_seconds", "Wall time of runs.", labels=["model"])
    for h in snap.health:
        runs.add_metric([h.model, "success"], h.runs_success)
        runs.add_metric([h.model, "failed"], h.runs_failed)
        samples.add_metric([h.model], h.samples)
        errors.add_metric([h.model], h.sample_errors)
        for fam, x in ((last_run, h.last_run_ts), (last_ok, h.last_success_ts), (last_dur, h.last_duration)):
            if _finite(x):
                fam.add_metric([h.model], float(x))  # type: ignore[arg-type]
        if _finite(h.interval_seconds):
            interval.add_metric([h.model], float(h.interval_seconds))  # type: ignore[arg-type]
        buckets = [(str(float(b)), sum(1 for d in h.durations if d <= b)) for b in DURATION_BUCKETS]
        buckets.append(("+Inf", len(h.durations)))
        hist.add_metric([h.model], buckets, sum_value=float(sum(h.durations)))
    yield from (runs, samples, errors, last_run, last_ok, last_dur, interval, hist)


class StoreCollector(Collector):
    """Reads a ``Snapshot`` on every scrape; a failing read exports ``collapse_watch_up 0``."""

    def __init__(self, load_snapshot: Callable[[], Snapshot]) -> None:
        self._load = load_snapshot

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []  # families depend on the store's content: no describe-time checks

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily]:
        start = time.perf_counter()
        up = _gauge("up", "1 when the exporter could read the store during this scrape.", [])
        try:
            snap = self._load()
        except Exception as exc:  # the scrape must still answer, saying the store is unreadable
            log.error("cannot read the store for /metrics: %s", exc)
            snap = None
        if snap is not None:
            yield from value_families(snap)
            yield from change_families(snap)
            yield from version_families(snap)
            yield from trend_families(snap)
            yield from health_families(snap)
        up.add_metric([], 1.0 if snap is not None else 0.0)
        yield up
        took = _gauge("scrape_duration_seconds", "Time spent reading the store for this scrape.", [])
        took.add_metric([], time.perf_counter() - start)
        yield took
        build = _gauge("build_info", "collapse-watch build information.", ["version"])
        build.add_metric([__version__], 1.0)
        yield build
