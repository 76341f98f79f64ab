"""Plain functions behind `collapse-watch db ...` and `history`; the CLI wires and prints them."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta

from collector.embeddings import EmbeddingIdentity
from collector.metrics.base import Sample
from collector.metrics.result import SuiteResult
from collector.store import migrate
from collector.store.api import SampleRecord, Store


def db_upgrade(url: str | None, revision: str = "head") -> None:
    """Upgrade the database to ``revision``."""
    migrate.upgrade(url, revision)


def db_downgrade(url: str | None, revision: str) -> None:
    """Downgrade the database to ``revision``."""
    migrate.downgrade(url, revision)


def db_current(url: str | None) -> str:
    """The database's current revision ('none' when unmigrated)."""
    return migrate.current(url)


def history_table(store: Store, model: str, scope: str = "within") -> tuple[list[str], list[list[str]]]:
    """A metric-by-version table of the latest completed values: (columns, rows), no printing.

    Each version after the baseline shows its change vs the baseline version on the metric's scale
    (``0.676 (−28.6 pp)``, ``1.874 (×0.57)``; :mod:`collector.trends.change`); the last column is the
    stored trend over the last versions (``↓ −4.1%/version, p 0.03``; "–" under 3 versions).
    """
    from collector.metrics.registry import metric_names
    from collector.trends.change import change, format_change

    known_metrics = set(metric_names())
    rows = [r for r in store.latest_metrics(model) if r["scope"] == scope]
    versions: list[str] = []
    for r in sorted(rows, key=lambda r: r["version_ordinal"]):
        if r["version"] not in versions:
            versions.append(r["version"])
    baseline = store.baseline_version(model) or (versions[0] if versions else None)
    values: dict[str, dict[str, float]] = {}
    for r in rows:
        v = r["value"]
        values.setdefault(r["metric"], {})[r["version"]] = math.nan if v is None else float(v)
    trends = {t.metric: t for t in store.trends_of(model) if t.scope == scope}
    run_ids = {v: store.latest_completed_run(model, v) for v in versions}
    from collector.metrics.registry import needs_embeddings
    from collector.store.embeddings import run_identities

    identities = run_identities(store.engine, [r for r in run_ids.values() if r is not None])
    label = {v: identities.get(r) if r is not None else None for v, r in run_ids.items()}

    def other_embedder(metric: str, version: str) -> bool:
        """An embedding metric of two runs embedded by different identities: not on one scale."""
        if baseline is None or metric not in known_metrics or not needs_embeddings([metric]):
            return False
        a, b = label.get(baseline), label.get(version)
        return a is not None and b is not None and a != b

    def cell(metric: str, version: str) -> str:
        v = values[metric].get(version)
        if v is None:
            return ""
        if math.isnan(v):
            return "n/a"
        base = values[metric].get(baseline) if baseline else None
        if version == baseline or base is None or math.isnan(base):
            return f"{v:.4f}"
        if other_embedder(metric, version):
            return f"{v:.4f} (other embedder)"
        return f"{v:.4f} ({format_change(metric, change(metric, base, v))})"

    def trend_cell(metric: str) -> str:
        t = trends.get(metric)
        if t is None or t.n_versions < 3 or math.isnan(t.slope):
            return "–"
        arrow = "↓" if t.slope < 0 else "↑"
        text = f"{arrow} {t.slope * 100:+.1f}%/version".replace("-", "−")
        return text + (f", p {t.p_value:.2f}" if not math.isnan(t.p_value) else "")

    table = [[k, *(cell(k, v) for v in versions), trend_cell(k)] for k in sorted(values)]
    counts = store.prompts_collapsed([r for r in run_ids.values() if r is not None])
    if counts:  # per version: prompts that collapsed on their own vs the baseline (issue #26)
        cells = [f"{counts[r][0]} of {counts[r][1]}" if r in counts else "" for r in run_ids.values()]
        table.append(["prompts collapsed", *cells, ""])
    verdicts = [_verdict_of_version(store, model, v) for v in versions]
    if any(verdicts):
        table.append(["verdict", *(v or "" for v in verdicts), ""])
    labels = [f"{v} (baseline)" if v == baseline else v for v in versions]
    return ["metric", *labels, "trend (diversity)"], table


def collapsed_prompts(store: Store, model: str, limit: int = 10) -> tuple[str, list[tuple[str, str, str]]]:
    """The newest assessed version with collapsed prompts: (version, [(prompt key, prompt text,
    change of each headline metric)]), at most ``limit`` prompts; ("", []) when none collapsed."""
    from collector.trends.change import format_change

    for version, _ in reversed(store.version_order(model)):
        run_id = store.latest_completed_run(model, version)
        if run_id is None:
            continue
        found = [f for f in store.prompt_findings_of(run_id) if f.collapsed]
        if not found:
            continue
        texts = store.prompt_texts(run_id)
        by_key: dict[str, list[str]] = {}
        worst: dict[str, float] = {}  # the prompt's change in its first headline metric found
        for f in found:
            by_key.setdefault(f.prompt_key, []).append(f"{f.metric} {format_change(f.metric, f.change)}")
            worst.setdefault(f.prompt_key, f.change if math.isfinite(f.change) else math.inf)
        keys = sorted(by_key, key=lambda k: (worst[k], k))  # the largest decline first
        rows = [(k, texts.get(k, ""), ", ".join(by_key[k])) for k in keys]
        return version, rows[:limit]
    return "", []


def _verdict_of_version(store: Store, model: str, version: str) -> str | None:
    """The verdict stored for the latest completed run of ``version`` (None before assessment)."""
    run_id = store.latest_completed_run(model, version)
    verdict = store.verdict_of(run_id) if run_id is not None else None
    return verdict.status if verdict is not None else None


def sample_records(samples: list[Sample]) -> list[SampleRecord]:
    """Scored samples as store records, numbered in the order given (``score --store``, the API)."""
    return [
        SampleRecord(prompt_key=s.prompt_id, prompt=s.prompt, output=s.output, sample_index=i)
        for i, s in enumerate(samples)
    ]


def record_scored_file(
    store: Store,
    model: str,
    version: str,
    samples: list[SampleRecord],
    result: SuiteResult | None,
    *,
    config_hash: str | None = None,
    source_kind: str = "file",
    version_source: str = "file",
    embedding_identity: EmbeddingIdentity | None = None,
    on_begun: Callable[[int], None] | None = None,
) -> int:
    """`score FILE --store`: record the file as one run of ``model``/``version``; returns the run id.

    Samples and metric values go through the same API the collector uses. If storing the samples
    fails, the run is closed as 'failed' with the error and the exception propagates.
    ``on_begun(run_id)`` is called once the run exists, so a caller can close it later when a
    database fault refused even the 'failed' close (the API's ``History``).
    """
    store.mark_interrupted_runs(stale_after=timedelta(hours=6))
    rid = store.begin_run(
        model, version, config_hash=config_hash, source_kind=source_kind, version_source=version_source
    )
    if on_begun is not None:
        on_begun(rid)
    try:
        for i in range(0, len(samples), 2000):
            store.add_samples(rid, samples[i : i + 2000])
    except Exception as exc:
        store.finish_run(rid, "failed", f"{type(exc).__name__}: {exc}")
        raise
    n_err = sum(1 for s in samples if s.output is None or s.error)
    store.finish_run(
        rid, "partial" if n_err else "succeeded", None, result, embedding_identity=embedding_identity
    )
    return rid
