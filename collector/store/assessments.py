"""Storing and reading assessments: comparisons, verdicts and trends (tables of migration 0002).

The vocabulary's rows in and out (``ChangeRow``, ``TrendRow``: one type for writing and reading),
plus the verdict and per-prompt records: the store does not know how they were computed (that is
``collector.assessment``).  ``save_assessment`` replaces a run's previous assessment in ONE
transaction, so a reader sees either the old or the new one, never a mix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Integer, Select, and_, delete, func, insert, select

from collector.store import models as m
from collector.store.errors import StoreError, VersionExists
from collector.vocabulary import COMPLETED_RUN_STATUSES as COMPLETED
from collector.vocabulary import REFERENCES, SCOPES, STATUSES, ChangeRow, TrendRow, diversity_oriented


@dataclass(frozen=True)
class VerdictRecord:
    """The verdict of a run: ``status`` ok | watch | collapse_suspected, reasons in words, details."""

    status: str
    reasons: list[str]
    details: dict[str, Any] = field(default_factory=dict)
    baseline_version: str | None = None  # label of the baseline it was judged against


@dataclass(frozen=True)
class PromptFindingRecord:
    """One headline metric on one prompt of a candidate run vs the baseline run (NaN stored as
    NULL); ``collapsed`` says whether the prompt counted as collapsed (every headline metric)."""

    reference_run_id: int
    prompt_key: str
    metric: str
    baseline_value: float
    candidate_value: float
    change: float
    p_value: float
    adjusted_p: float
    collapsed: bool


@dataclass(frozen=True)
class RunInfo:
    """Which model and version a run belongs to, and its status."""

    run_id: int
    model: str
    version: str
    version_ordinal: int
    status: str


def _now() -> datetime:
    return datetime.now(UTC)


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


def _relative_columns(c: ChangeRow) -> dict[str, float | None]:
    """The relative change's columns: ``rel_change``/``ci_*`` in the metric's own direction,
    ``diversity_*`` as the row has it (negative = less diverse)."""
    own = diversity_oriented(c.relative, c.relative_ci_low, c.relative_ci_high, c.higher_is_diverse)
    return {
        "rel_change": _num(own[0]),
        "ci_low": _num(own[1]),
        "ci_high": _num(own[2]),
        "diversity_change": _num(c.relative),
        "diversity_ci_low": _num(c.relative_ci_low),
        "diversity_ci_high": _num(c.relative_ci_high),
    }


def change_select() -> Select:
    """The stored comparisons as ``ChangeRow`` columns (``change_row`` builds the row): the
    direction comes from the candidate run's stored value of the metric (none for the tail
    family's comparisons, which are all higher-is-diverse)."""
    c, v, mv = m.ComparisonRow, m.ModelVersion, m.MetricValueRow
    return (
        select(
            m.Model.name,
            v.label,
            c.metric,
            c.scope,
            c.reference,
            c.change,
            c.change_ci_low,
            c.change_ci_high,
            c.p_value,
            c.significant_decline,
            c.n_pairs,
            c.reference_run_id,
            c.diversity_change,
            c.diversity_ci_low,
            c.diversity_ci_high,
            func.coalesce(mv.higher_is_diverse, True),
        )
        .join(v, v.id == c.version_id)
        .join(m.Model, m.Model.id == v.model_id)
        .outerjoin(mv, and_(mv.run_id == c.run_id, mv.metric == c.metric, mv.scope == c.scope))
    )


def change_row(r: Any) -> ChangeRow:
    """One row of ``change_select``."""
    return ChangeRow(
        *r[:5],
        _nan(r[5]),
        _nan(r[6]),
        _nan(r[7]),
        _nan(r[8]),
        bool(r[9]),
        int(r[10]),
        r[11],
        _nan(r[12]),
        _nan(r[13]),
        _nan(r[14]),
        bool(r[15]),
    )


def trend_select() -> Select:
    """The stored trends as ``TrendRow`` columns, by model, metric and scope."""
    t, v = m.TrendTable, m.ModelVersion
    return (
        select(
            m.Model.name,
            t.metric,
            t.scope,
            t.slope,
            t.p_value,
            t.n_versions,
            t.slope_ci_low,
            t.slope_ci_high,
            v.label,
        )
        .join(m.Model, m.Model.id == t.model_id)
        .outerjoin(v, v.id == t.last_version_id)
        .order_by(m.Model.name, t.metric, t.scope)
    )


def trend_row(r: Any) -> TrendRow:
    """One row of ``trend_select``."""
    return TrendRow(r[0], r[1], r[2], _nan(r[3]), _nan(r[4]), int(r[5]), _nan(r[6]), _nan(r[7]), r[8])


def _jsonable(obj: Any) -> Any:
    """``obj`` with non-finite floats as None and tuples as lists (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set):
        return [_jsonable(v) for v in obj]
    return obj


class AssessmentStore:
    """Mixin of ``Store``: the assessment tables and the reads the assessment service needs."""

    engine: Engine

    # -- helpers --------------------------------------------------------------------------------
    @staticmethod
    def _model_id_of(conn: Connection, name: str) -> int:
        mid = conn.scalar(select(m.Model.id).where(m.Model.name == name))
        if mid is None:
            raise StoreError(f"unknown model {name!r}")
        return mid

    @staticmethod
    def _version_ids(conn: Connection, model_id: int) -> dict[str, int]:
        v = m.ModelVersion
        return dict(conn.execute(select(v.label, v.id).where(v.model_id == model_id)).all())  # type: ignore[arg-type]

    # -- reads ----------------------------------------------------------------------------------
    def model_names(self) -> list[str]:
        """Every model's name, sorted."""
        with self.engine.connect() as conn:
            return list(conn.scalars(select(m.Model.name).order_by(m.Model.name)))

    def version_order(self, model: str) -> list[tuple[str, int]]:
        """``(label, ordinal)`` of every version of ``model``, oldest first."""
        with self.engine.connect() as conn:
            mid = self._model_id_of(conn, model)
            v = m.ModelVersion
            rows = conn.execute(select(v.label, v.ordinal).where(v.model_id == mid).order_by(v.ordinal))
            return [(r[0], r[1]) for r in rows]

    def baseline_version(self, model: str) -> str | None:
        """The baseline's label: ``models.baseline_version_id``, else the first version (None: none)."""
        with self.engine.connect() as conn:
            mid = self._model_id_of(conn, model)
            v = m.ModelVersion
            bid = conn.scalar(select(m.Model.baseline_version_id).where(m.Model.id == mid))
            q = select(v.label).where(v.model_id == mid)
            q = q.where(v.id == bid) if bid is not None else q.order_by(v.ordinal).limit(1)
            return conn.scalar(q)

    def latest_completed_run(self, model: str, version: str | None = None) -> int | None:
        """Id of the latest 'succeeded' or 'partial' run of ``model`` (of ``version`` if given)."""
        r, v = m.Run, m.ModelVersion
        with self.engine.connect() as conn:
            mid = self._model_id_of(conn, model)
            q = select(func.max(r.id)).where(r.model_id == mid, r.status.in_(COMPLETED))
            if version is not None:
                q = q.join(v, v.id == r.version_id).where(v.label == version)
            return conn.scalar(q)

    def refuse_recorded(self, model: str, version: str) -> None:
        """Raise ``VersionExists`` (naming a free label) when ``model``@``version`` already has a
        completed run; a version whose runs all failed may be recorded again."""
        if model not in self.model_names():
            return
        run_id = self.latest_completed_run(model, version)
        if run_id is not None:
            taken = {label for label, _ in self.version_order(model)}
            free = next(f"{version}-{n}" for n in range(2, len(taken) + 3) if f"{version}-{n}" not in taken)
            raise VersionExists(model, version, run_id, free)

    def run_info(self, run_id: int) -> RunInfo:
        """Model, version, ordinal and status of a run."""
        r, v, mo = m.Run, m.ModelVersion, m.Model
        with self.engine.connect() as conn:
            row = conn.execute(
                select(r.id, mo.name, v.label, v.ordinal, r.status)
                .join(v, v.id == r.version_id)
                .join(mo, mo.id == r.model_id)
                .where(r.id == run_id)
            ).one_or_none()
        if row is None:
            raise StoreError(f"run {run_id} does not exist")
        return RunInfo(*row)

    def comparisons_of(self, run_id: int) -> list[ChangeRow]:
        """The stored comparisons of a candidate run (NULL read back as NaN)."""
        c = m.ComparisonRow
        with self.engine.connect() as conn:
            query = change_select().where(c.run_id == run_id).order_by(c.reference, c.metric, c.scope)
            return [change_row(x) for x in conn.execute(query)]

    def verdict_of(self, run_id: int) -> VerdictRecord | None:
        """The stored verdict of a run, or None when it was not assessed."""
        vr, v = m.VerdictRow, m.ModelVersion
        with self.engine.connect() as conn:
            row = conn.execute(
                select(vr.status, vr.reasons, vr.details, v.label)
                .outerjoin(v, v.id == vr.baseline_version_id)
                .where(vr.run_id == run_id)
            ).one_or_none()
        return None if row is None else VerdictRecord(row[0], list(row[1]), dict(row[2]), row[3])

    def prompt_findings_of(self, run_id: int) -> list[PromptFindingRecord]:
        """The stored per-prompt findings of a candidate run (collapsed first, then by prompt)."""
        f = m.PromptFindingRow
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    f.reference_run_id,
                    f.prompt_key,
                    f.metric,
                    f.baseline_value,
                    f.candidate_value,
                    f.change,
                    f.p_value,
                    f.adjusted_p,
                    f.collapsed,
                )
                .where(f.run_id == run_id)
                .order_by(f.collapsed.desc(), f.prompt_key, f.metric)
            )
            return [
                PromptFindingRecord(
                    r[0], r[1], r[2], _nan(r[3]), _nan(r[4]), _nan(r[5]), _nan(r[6]), _nan(r[7]), bool(r[8])
                )
                for r in rows
            ]

    def prompt_texts(self, run_id: int) -> dict[str, str]:
        """The prompt text of each prompt key of a run's samples."""
        s, p = m.SampleRow, m.Prompt
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(s.prompt_key, p.body).join(p, p.id == s.prompt_id).where(s.run_id == run_id).distinct()
            )
            return {k: b for k, b in rows}

    def prompts_collapsed(self, run_ids: list[int]) -> dict[int, tuple[int, int]]:
        """Per run that has findings: (prompts collapsed, prompts tested)."""
        f = m.PromptFindingRow
        out: dict[int, tuple[int, int]] = {}
        if not run_ids:
            return out
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(f.run_id, f.prompt_key, func.max(f.collapsed.cast(Integer)))
                .where(f.run_id.in_(run_ids))
                .group_by(f.run_id, f.prompt_key)
            )
            for run_id, _, hit in rows:
                k, n = out.get(run_id, (0, 0))
                out[run_id] = (k + int(bool(hit)), n + 1)
        return out

    def trends_of(self, model: str) -> list[TrendRow]:
        """The model's stored trends, by metric and scope."""
        t = m.TrendTable
        with self.engine.connect() as conn:
            mid = self._model_id_of(conn, model)
            rows = conn.execute(trend_select().where(t.model_id == mid))
            return [trend_row(r) for r in rows]

    # -- writes ---------------------------------------------------------------------------------
    @staticmethod
    def _refuse_mislabelled(conn: Connection, run_id: int, rows: list[ChangeRow]) -> None:
        """Raise when a change row names another model or version than the run it is stored for."""
        v, mo = m.ModelVersion, m.Model
        labels = conn.execute(
            select(mo.name, v.label)
            .join(v, v.model_id == mo.id)
            .join(m.Run, m.Run.version_id == v.id)
            .where(m.Run.id == run_id)
        ).one()
        wrong = [c for c in rows if (c.model, c.version) != tuple(labels)]
        if wrong:
            raise StoreError(
                f"run {run_id} is {labels[0]}@{labels[1]}; a change row names {wrong[0].model}@{wrong[0].version}"
            )

    def save_assessment(
        self,
        run_id: int,
        comparisons: list[ChangeRow],
        verdict: VerdictRecord | None,
        prompt_findings: list[PromptFindingRecord] | None = None,
    ) -> None:
        """Replace the assessment of ``run_id`` (a completed run) by these, in ONE transaction.

        Every reference run must be a completed run of the same model (the rows' ``model`` and
        ``version`` are the run's: the store takes them from ``run_id``).  ``prompt_findings`` (the
        per-prompt findings vs the baseline) replace the run's previous ones.
        """
        findings = prompt_findings or []
        keys = [(f.prompt_key, f.metric) for f in findings]
        if len(set(keys)) != len(keys):
            raise StoreError(f"run {run_id}: one prompt finding per prompt and metric, got duplicates")
        bad = [
            c for c in comparisons if c.reference not in REFERENCES or c.scope not in SCOPES or not c.metric
        ]
        if bad:
            b = bad[0]
            raise StoreError(
                f"run {run_id}: comparison {b.metric!r}/{b.scope!r} vs {b.reference!r}: reference must be "
                f"one of {REFERENCES} and scope one of {SCOPES}"
            )
        if verdict is not None and verdict.status not in STATUSES:
            raise StoreError(
                f"run {run_id}: verdict status must be one of {STATUSES}, got {verdict.status!r}"
            )
        r = m.Run
        with self.engine.begin() as conn:
            run = conn.execute(select(r.model_id, r.version_id, r.status).where(r.id == run_id)).one_or_none()
            if run is None:
                raise StoreError(f"run {run_id} does not exist")
            if run.status not in COMPLETED:
                raise StoreError(f"run {run_id} is {run.status!r}; only completed runs can be assessed")
            self._refuse_mislabelled(conn, run_id, comparisons)
            ref_ids = {c.reference_run_id for c in comparisons} | {f.reference_run_id for f in findings}
            refs = {
                row.id: row
                for row in conn.execute(
                    select(r.id, r.model_id, r.version_id, r.status).where(r.id.in_(ref_ids))
                )
            }
            for rid in sorted(ref_ids):
                ref = refs.get(rid)
                if ref is None or ref.model_id != run.model_id or ref.status not in COMPLETED:
                    raise StoreError(
                        f"run {run_id}: reference run {rid} must be a completed run of the same model"
                    )
            baseline_vid = None
            if verdict is not None and verdict.baseline_version is not None:
                baseline_vid = self._version_ids(conn, run.model_id).get(verdict.baseline_version)
                if baseline_vid is None:
                    raise StoreError(f"run {run_id}: unknown baseline version {verdict.baseline_version!r}")
            conn.execute(delete(m.ComparisonRow).where(m.ComparisonRow.run_id == run_id))
            conn.execute(delete(m.VerdictRow).where(m.VerdictRow.run_id == run_id))
            conn.execute(delete(m.PromptFindingRow).where(m.PromptFindingRow.run_id == run_id))
            if findings:
                s = m.SampleRow
                prompt_ids = dict(
                    conn.execute(
                        select(s.prompt_key, func.min(s.prompt_id))
                        .where(s.run_id == run_id)
                        .group_by(s.prompt_key)
                    ).all()
                )
                conn.execute(
                    insert(m.PromptFindingRow),
                    [
                        {
                            "run_id": run_id,
                            "version_id": run.version_id,
                            "reference_run_id": f.reference_run_id,
                            "prompt_key": f.prompt_key,
                            "prompt_id": prompt_ids.get(f.prompt_key),
                            "metric": f.metric,
                            "baseline_value": _num(f.baseline_value),
                            "candidate_value": _num(f.candidate_value),
                            "change": _num(f.change),
                            "p_value": _num(f.p_value),
                            "adjusted_p": _num(f.adjusted_p),
                            "collapsed": bool(f.collapsed),
                        }
                        for f in findings
                    ],
                )
            if comparisons:
                conn.execute(
                    insert(m.ComparisonRow),
                    [
                        {
                            "run_id": run_id,
                            "version_id": run.version_id,
                            "reference": c.reference,
                            "reference_version_id": refs[c.reference_run_id].version_id,
                            "reference_run_id": c.reference_run_id,
                            "metric": c.metric,
                            "scope": c.scope,
                            **_relative_columns(c),
                            "change": _num(c.change),
                            "change_ci_low": _num(c.ci_low),
                            "change_ci_high": _num(c.ci_high),
                            "p_value": _num(c.p_value),
                            "n_pairs": c.n_pairs,
                            "significant_decline": bool(c.significant_decline),
                        }
                        for c in comparisons
                    ],
                )
            if verdict is not None:
                conn.execute(
                    insert(m.VerdictRow),
                    {
                        "run_id": run_id,
                        "version_id": run.version_id,
                        "status": verdict.status,
                        "reasons": [str(x) for x in verdict.reasons],
                        "details": _jsonable(verdict.details),
                        "baseline_version_id": baseline_vid,
                        "computed_at": _now(),
                    },
                )

    def save_trends(self, model: str, rows: list[TrendRow]) -> None:
        """Replace every stored trend of ``model`` by ``rows`` (one transaction)."""
        others = sorted({t.model for t in rows if t.model != model})
        if others:
            raise StoreError(f"{model}: trend rows of another model ({', '.join(others)})")
        keys = [(t.metric, t.scope) for t in rows]
        if len(set(keys)) != len(keys):
            raise StoreError(f"{model}: one trend per metric and scope, got duplicates")
        bad = [t for t in rows if t.scope not in SCOPES]
        if bad:
            raise StoreError(f"{model}: trend scope must be one of {SCOPES}, got {bad[0].scope!r}")
        with self.engine.begin() as conn:
            mid = self._model_id_of(conn, model)
            vids = self._version_ids(conn, mid)
            unknown = sorted({t.last_version for t in rows if t.last_version and t.last_version not in vids})
            if unknown:
                raise StoreError(f"{model}: unknown version(s) {', '.join(unknown)}")
            conn.execute(delete(m.TrendTable).where(m.TrendTable.model_id == mid))
            now = _now()
            if rows:
                conn.execute(
                    insert(m.TrendTable),
                    [
                        {
                            "model_id": mid,
                            "metric": t.metric,
                            "scope": t.scope,
                            "slope": _num(t.slope),
                            "slope_ci_low": _num(t.slope_ci_low),
                            "slope_ci_high": _num(t.slope_ci_high),
                            "p_value": _num(t.p_value),
                            "n_versions": t.n_versions,
                            "last_version_id": vids.get(t.last_version) if t.last_version else None,
                            "computed_at": now,
                        }
                        for t in rows
                    ],
                )
