"""Reads for the exporter: the state of every model in a handful of queries (not one per metric).

Typed rows out (``Overview``): the same row types travel from here to the exporter, the fleet table
and the demo (a change and a trend are the vocabulary's ``ChangeRow``/``TrendRow``, as written);
``collector.readout.snapshot`` only adds what the config knows (schedule intervals).

* Versions: per model the last ``max_versions`` by ordinal, plus the baseline version always.
* Values: ``v_latest_metrics`` of those versions (the latest completed run's values).
* Verdicts and comparisons: of each version's latest *assessed* run, so a run that has just been
  stored but not yet assessed does not make the verdict disappear for a scrape.
* Decisions: what the verdict itself decided (status, each metric's ``significant_decline`` as
  stored with the comparison, the trend decision from the verdict's details), never re-derived.
* Health: runs by outcome ('running' not counted), samples, errors, timestamps and durations of
  the last ``max_durations`` finished runs per model ('interrupted' runs were not timed: their
  ``finished_at`` is when a later process noticed, so they have no duration and no finish time).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, DateTime, Engine, Integer, bindparam, func, select, text, type_coerce

from collector.store import models as m
from collector.store.assessments import change_row, change_select, trend_row, trend_select
from collector.vocabulary import COMPLETED_RUN_STATUSES as COMPLETED
from collector.vocabulary import TIMED_RUN_STATUSES, ChangeRow, TrendRow

TIMED = TIMED_RUN_STATUSES
# The store's run status -> the exported ``status`` label of ``collapse_watch_runs_total``.
RUN_OUTCOMES = {
    "succeeded": "success",
    "partial": "partial",
    "failed": "failed",
    "interrupted": "failed",
    "no_data": "no_data",
}
OUTCOMES = ("success", "partial", "failed", "no_data")


@dataclass(frozen=True)
class VersionState:
    """A version and the verdict of its latest assessed run (None: not assessed)."""

    model: str
    version: str
    version_id: int
    ordinal: int  # the store's ordinal: 1 = first seen
    verdict: str | None
    trend_declining: bool | None = None  # the verdict's trend decision (both families trend down)
    trending: tuple[str, ...] = ()  # the metrics whose trend counted towards it
    first_seen: float | None = None  # Unix seconds when the store first saw the version
    prompts_collapsed: int | None = None  # prompts the verdict found collapsed (None: not tested)


@dataclass(frozen=True)
class ValueRow:
    """A metric's value (raw orientation) and bootstrap 95% interval; NaN where not scorable."""

    model: str
    version: str
    metric: str
    scope: str
    value: float
    ci_low: float
    ci_high: float


@dataclass
class ModelHealth:
    """Runs by exported outcome (``OUTCOMES``), outputs stored, failed requests, times."""

    model: str
    runs: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    samples: int = 0  # outputs stored (requests that returned text)
    sample_errors: int = 0  # requests that failed; samples + sample_errors = requests made
    last_run_ts: float | None = None
    last_success_ts: float | None = None
    last_duration: float | None = None
    durations: list[float] = field(default_factory=list)


@dataclass
class Overview:
    """What one scrape needs, as typed rows (see the module docstring)."""

    baselines: dict[str, str] = field(default_factory=dict)
    versions: list[VersionState] = field(default_factory=list)
    values: list[ValueRow] = field(default_factory=list)
    changes: list[ChangeRow] = field(default_factory=list)
    trends: list[TrendRow] = field(default_factory=list)
    health: list[ModelHealth] = field(default_factory=list)


def _f(x: float | None) -> float:
    return math.nan if x is None else float(x)


def trend_decision(details: dict[str, Any] | None) -> tuple[bool | None, tuple[str, ...]]:
    """The verdict's trend decision from its stored ``details`` (None: the verdict did not record one)."""
    if not details or "trend_family_reached" not in details:
        return None, ()
    reached = details.get("trend_family_reached") or {}
    down = details.get("trending_down") or {}
    decided = bool(reached) and all(bool(x) for x in reached.values())
    return decided, tuple(m for fam in sorted(down) for m in (down.get(fam) or []))


def prompts_collapsed(details: dict[str, Any] | None) -> int | None:
    """How many prompts the verdict found collapsed, from its stored ``details`` (None: untested)."""
    found = (details or {}).get("prompts")
    if not isinstance(found, dict) or not isinstance(found.get("n_collapsed"), int):
        return None
    return int(found["n_collapsed"])


def unix_seconds(t: datetime | None) -> float | None:
    """A stored timestamp as Unix seconds (the store writes UTC; SQLite reads back naive)."""
    if t is None:
        return None
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()


def _exported_versions(conn: Connection, max_versions: int) -> tuple[dict[str, str], list[tuple]]:
    v, mo = m.ModelVersion, m.Model
    rows = conn.execute(
        select(
            mo.name,
            v.label,
            v.id,
            v.ordinal,
            mo.baseline_version_id,
            type_coerce(v.first_seen_at, DateTime(timezone=True)),
        )
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
    out: dict[str, ModelHealth] = {}
    for name, status, n_runs, n_samples, n_errors, finished in conn.execute(
        select(
            mo.name,
            r.status,
            func.count(r.id),
            func.coalesce(func.sum(r.n_samples), 0),
            func.coalesce(func.sum(r.n_errors), 0),
            type_coerce(func.max(r.finished_at), DateTime(timezone=True)),
        )
        .select_from(mo)
        .outerjoin(r, r.model_id == mo.id)
        .group_by(mo.name, r.status)
        .order_by(mo.name)
    ):
        h = out.setdefault(name, ModelHealth(name))
        if status is None:  # a model without runs
            continue
        if status != "running":  # a run counts once it ended; its samples count as they are stored
            outcome = RUN_OUTCOMES.get(status, "failed")
            h.runs[outcome] = h.runs.get(outcome, 0) + int(n_runs)
        # runs.n_samples counts requests made, failed ones included: stored outputs are the difference
        h.samples += int(n_samples) - int(n_errors)
        h.sample_errors += int(n_errors)
        at = unix_seconds(finished)
        if at is not None and status in TIMED:
            h.last_run_ts = max(h.last_run_ts or at, at)
        if at is not None and status in COMPLETED:
            h.last_success_ts = max(h.last_success_ts or at, at)
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

    def overview(
        self, *, max_versions: int = 10, max_durations: int = 1000, latest_metrics_only: bool = False
    ) -> Overview:
        """The exported state of every model (8 queries, whatever the number of metrics).

        ``latest_metrics_only``: values and comparisons of each model's latest version only (the
        ``summary`` detail; the exporter picks which of their rows it renders).
        """
        with self.engine.connect() as conn:
            baselines, kept = _exported_versions(conn, max_versions)
            ids = [r[2] for r in kept]
            metric_ids = ids
            if latest_metrics_only:
                newest: dict[str, tuple] = {}
                for r in kept:
                    if r[0] not in newest or r[3] > newest[r[0]][3]:
                        newest[r[0]] = r
                metric_ids = [r[2] for r in newest.values()]
            vr, c, v = m.VerdictRow, m.ComparisonRow, m.ModelVersion
            verdicts = {
                vid: (status, details)
                for vid, status, details in conn.execute(
                    select(vr.version_id, vr.status, vr.details).where(vr.run_id.in_(_assessed_runs(ids)))
                )
            }
            versions = []
            for r in kept:
                status, details = verdicts.get(r[2], (None, None))
                declining, trending = trend_decision(details)
                versions.append(
                    VersionState(
                        r[0],
                        r[1],
                        r[2],
                        r[3],
                        status,
                        declining,
                        trending,
                        unix_seconds(r[5]),
                        prompts_collapsed(details),
                    )
                )
            values: list[ValueRow] = []
            if metric_ids:
                values = [
                    ValueRow(row[0], row[1], row[2], row[3], _f(row[4]), _f(row[5]), _f(row[6]))
                    for row in conn.execute(
                        text(
                            "SELECT model, version, metric, scope, value, ci_low, ci_high "
                            "FROM v_latest_metrics WHERE version_id IN :ids "
                            "ORDER BY model, version_ordinal, metric, scope"
                        ).bindparams(bindparam("ids", expanding=True)),
                        {"ids": metric_ids},
                    )
                ]
            change_query = (
                change_select()
                .where(c.run_id.in_(_assessed_runs(metric_ids)))
                .order_by(m.Model.name, v.ordinal, c.metric, c.scope, c.reference)
            )
            changes = [change_row(row) for row in conn.execute(change_query)]
            trends = [trend_row(row) for row in conn.execute(trend_select())]
            health = _health(conn, max_durations)
        return Overview(baselines, versions, values, changes, trends, health)
