"""What `collapse-watch history` shows, read from the store as rows (``collector.render.history``
formats them): a model's latest completed values by version, its stored trends, per-version
verdicts and collapsed-prompt counts, and the prompts that collapsed in its newest version."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from collector.store.api import Store

if TYPE_CHECKING:  # the stored trend's type, as Store.trends_of returns it
    from collector.vocabulary import TrendRow


@dataclass
class ModelHistory:
    """One model's stored history in one scope, versions oldest first."""

    versions: list[str] = field(default_factory=list)
    baseline: str | None = None  # the pinned baseline version, else the first version
    values: dict[str, dict[str, float]] = field(default_factory=dict)  # metric -> version -> value (NaN: n/a)
    # (metric, version): an embedding metric embedded by another identity than the baseline's run
    other_embedder: set[tuple[str, str]] = field(default_factory=set)
    trends: dict[str, TrendRow] = field(default_factory=dict)  # metric -> stored trend
    prompts_collapsed: dict[str, tuple[int, int]] = field(
        default_factory=dict
    )  # version -> (collapsed, tested)
    verdicts: dict[str, str] = field(default_factory=dict)  # version -> the verdict's status


@dataclass(frozen=True)
class CollapsedPrompt:
    """A prompt that collapsed on its own vs the baseline: the change of each headline metric."""

    key: str
    text: str
    changes: list[tuple[str, float]]  # (metric, change on the metric's scale)


def read_history(store: Store, model: str, scope: str = "within") -> ModelHistory:
    """The latest completed values of ``model`` in ``scope`` with what the history table shows."""
    rows = [r for r in store.latest_metrics(model) if r["scope"] == scope]
    versions: list[str] = []
    for r in sorted(rows, key=lambda r: r["version_ordinal"]):
        if r["version"] not in versions:
            versions.append(r["version"])
    history = ModelHistory(versions, store.baseline_version(model) or (versions[0] if versions else None))
    for r in rows:
        v = r["value"]
        history.values.setdefault(r["metric"], {})[r["version"]] = math.nan if v is None else float(v)
    history.trends = {t.metric: t for t in store.trends_of(model) if t.scope == scope}
    run_ids = {v: store.latest_completed_run(model, v) for v in versions}
    history.other_embedder = _other_embedder(store, history, run_ids)
    counts = store.prompts_collapsed([r for r in run_ids.values() if r is not None])
    history.prompts_collapsed = {v: counts[r] for v, r in run_ids.items() if r in counts}
    for version, run_id in run_ids.items():
        verdict = store.verdict_of(run_id) if run_id is not None else None
        if verdict is not None:
            history.verdicts[version] = verdict.status
    return history


def _other_embedder(
    store: Store, history: ModelHistory, run_ids: dict[str, int | None]
) -> set[tuple[str, str]]:
    """(metric, version) pairs of embedding metrics whose run and the baseline's were embedded by
    different identities: not on one scale, so no change is shown."""
    from collector.metrics.registry import metric_names, needs_embeddings
    from collector.store.embeddings import run_identities

    identities = run_identities(store.engine, [r for r in run_ids.values() if r is not None])
    label = {v: identities.get(r) if r is not None else None for v, r in run_ids.items()}
    base = label.get(history.baseline) if history.baseline is not None else None
    known = set(metric_names())
    embedded = [m for m in history.values if m in known and needs_embeddings([m])]
    return {
        (metric, version)
        for metric in embedded
        for version in history.versions
        if base is not None and label.get(version) is not None and label.get(version) != base
    }


def read_collapsed_prompts(store: Store, model: str, limit: int = 10) -> tuple[str, list[CollapsedPrompt]]:
    """The newest assessed version with collapsed prompts and at most ``limit`` of them, the largest
    decline (in the first headline metric found) first; ("", []) when none collapsed."""
    for version, _ in reversed(store.version_order(model)):
        run_id = store.latest_completed_run(model, version)
        if run_id is None:
            continue
        found = [f for f in store.prompt_findings_of(run_id) if f.collapsed]
        if not found:
            continue
        texts = store.prompt_texts(run_id)
        changes: dict[str, list[tuple[str, float]]] = {}
        worst: dict[str, float] = {}  # the prompt's change in its first headline metric found
        for f in found:
            changes.setdefault(f.prompt_key, []).append((f.metric, f.change))
            worst.setdefault(f.prompt_key, f.change if math.isfinite(f.change) else math.inf)
        keys = sorted(changes, key=lambda k: (worst[k], k))
        return version, [CollapsedPrompt(k, texts.get(k, ""), changes[k]) for k in keys[:limit]]
    return "", []
