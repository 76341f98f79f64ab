"""Reads for the exporter: the state of every model in a handful of queries (not one per metric).

Plain rows out (``Overview``); ``collector.snapshot`` turns them into the exporter's ``Snapshot``.

* Versions: per model the last ``max_versions`` by ordinal, plus the baseline version always.
* Values: ``v_latest_metrics`` of those versions (the latest completed run's values).
* Verdicts and comparisons: of each version's latest *assessed* run, so a run that has just been
  stored but not yet assessed does not make the verdict disappear for a scrape.
* Health: runs by outcome ('running' not counted), samples, errors, timestamps and durations of
  the last ``max_durations`` finished runs per model ('interrupted' runs were not timed: their
  ``finished_at`` is when a later process noticed, so they have no duration and no finish time).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, DateTime, Engine, Integer, bindparam, case, func, select, text, type_coerce

from collector.store import models as m

COMPLETED = ("succeeded", "partial")
FAILED = ("failed", "interrupted")
TIMED = ("succeeded", "partial", "failed")


@dataclass(frozen=True)
class VersionState:
    model: str
    version: str
    version_id: int
    ordinal: int  # the store's ordinal: 1 = first seen
    verdict: str | None


@dataclass
class ModelHealth:
    model: str
    runs_success: int = 0
    runs_failed: int = 0
    samples: int = 0
    sample_errors: int = 0
    last_run_ts: float | None = None
    last_success_ts: float | None = None
    last_duration: float | None = None
    durations: list[float] = field(default_factory=list)


@dataclass
class Overview:
    """What one scrape needs, as plain rows (see the module docstring)."""

    baselines: dict[str, str] = field(default_factory=dict)
    versions: list[VersionState] = field(default_factory=list)
    values: list[dict[str, Any]] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    trends: list[dict[str, Any]] = field(default_factory=list)
    health: list[ModelHealth] = field(default_factory=list)


def unix_seconds(t: datetime | None) -> float | None:
    """A stored timestamp as Unix seconds (the store writes UTC; SQLite reads back naive)."""
    if t is None:
        return None
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()


def _exported_versions(conn: Connection, max_versions: int) -> tuple[dict[str, str], list[tuple]]:
    v, mo = m.ModelVersion, m.Model
    rows = conn.execute(
        select(mo.name, v.label, v.id, v.ordinal, mo.baseline_version_id)
        .join(mo, mo.id == v.model_id)
        .order_by(mo.name, v.ordinal)
    ).all()
    by_model: dict[str, list[Any]] = {}
    for r in rows:
        by_model.setdefault(r[0], []).append(r)
    baselines: dict[str, str] = {}
    kept: list[tuple] = []
    for model, vs in by_model.items():
        base = next((r for r in vs if r[2] == r[4]), vs[0])
        baselines[model] = base[1]
        tail = vs[-max_versions:] if max_versions > 0 else []
        kept.extend(([base] if base not in tail else []) + tail)
    return baselines, kept


def _assessed_runs(version_ids: list[int]) -> Any:
    vr = m.VerdictRow
    return (
        select(func.max(vr.run_id)).where(vr.version_id.in_(version_ids)).group_by(vr.version_id)
    ).scalar_subquery()


def _health(conn: Connection, max_durations: int) -> list[ModelHealth]:
    r, mo = m.Run, m.Model
    ok = r.status.in_(COMPLETED)
    agg = conn.execute(
        select(
            mo.name,
            func.coalesce(func.sum(case((ok, 1), else_=0)), 0),
            func.coalesce(func.sum(case((r.status.in_(FAILED), 1), else_=0)), 0),
            func.coalesce(func.sum(r.n_samples), 0),
            func.coalesce(func.sum(r.n_errors), 0),
            type_coerce(func.max(case((r.status.in_(TIMED), r.finished_at))), DateTime(timezone=True)),
            type_coerce(func.max(case((ok, r.finished_at))), DateTime(timezone=True)),
        )
        .select_from(mo)
        .outerjoin(r, r.model_id == mo.id)
        .group_by(mo.name)
        .order_by(mo.name)
    ).all()
    out = {
        row[0]: ModelHealth(
            row[0],
            int(row[1]),
            int(row[2]),
            int(row[3]),
            int(row[4]),
            unix_seconds(row[5]),
            unix_seconds(row[6]),
        )
        for row in agg
    }
    ranked = (
        select(
            r.model_id,
            r.started_at,
            r.finished_at,
            type_coerce(
                func.row_number().over(partition_by=r.model_id, order_by=(r.finished_at.desc(), r.id.desc())),
                Integer,
            ).label("rn"),
        )
        .where(r.status.in_(TIMED), r.finished_at.is_not(None))
        .subquery()
    )
    for name, started, finished, rn in conn.execute(
        select(mo.name, ranked.c.started_at, ranked.c.finished_at, ranked.c.rn)
        .join(ranked, ranked.c.model_id == mo.id)
        .where(ranked.c.rn <= max_durations)
        .order_by(mo.name, ranked.c.rn)
    ):
        took = max(0.0, (unix_seconds(finished) or 0.0) - (unix_seconds(started) or 0.0))
        out[name].durations.append(took)
        if rn == 1:
            out[name].last_duration = took
    return list(out.values())


class OverviewStore:
    """Mixin of ``Store``: ``overview()`` for the Prometheus exporter."""

    engine: Engine

    def overview(self, *, max_versions: int = 10, max_durations: int = 1000) -> Overview:
        """The exported state of every model (7 queries, whatever the number of metrics)."""
        with self.engine.connect() as conn:
            baselines, kept = _exported_versions(conn, max_versions)
            ids = [r[2] for r in kept]
            vr, c, v = m.VerdictRow, m.ComparisonRow, m.ModelVersion
            verdicts = dict(
                conn.execute(select(vr.version_id, vr.status).where(vr.run_id.in_(_assessed_runs(ids)))).all()
            )
            versions = [VersionState(r[0], r[1], r[2], r[3], verdicts.get(r[2])) for r in kept]
            values = []
            if ids:
                values = [
                    dict(row._mapping)
                    for row in conn.execute(
                        text(
                            "SELECT model, version, metric, scope, value, ci_low, ci_high "
                            "FROM v_latest_metrics WHERE version_id IN :ids "
                            "ORDER BY model, version_ordinal, metric, scope"
                        ).bindparams(bindparam("ids", expanding=True)),
                        {"ids": ids},
                    )
                ]
            changes = [
                dict(row._mapping)
                for row in conn.execute(
                    select(
                        m.Model.name.label("model"),
                        v.label.label("version"),
                        c.metric,
                        c.scope,
                        c.reference,
                        c.diversity_change,
                        c.diversity_ci_low,
                        c.diversity_ci_high,
                        c.p_value,
                    )
                    .join(v, v.id == c.version_id)
                    .join(m.Model, m.Model.id == v.model_id)
                    .where(c.run_id.in_(_assessed_runs(ids)))
                    .order_by(m.Model.name, v.ordinal, c.metric, c.scope, c.reference)
                )
            ]
            t = m.TrendRow
            trends = [
                dict(row._mapping)
                for row in conn.execute(
                    select(m.Model.name.label("model"), t.metric, t.scope, t.slope, t.p_value, t.n_versions)
                    .join(m.Model, m.Model.id == t.model_id)
                    .order_by(m.Model.name, t.metric, t.scope)
                )
            ]
            health = _health(conn, max_durations)
        return Overview(baselines, versions, values, changes, trends, health)
