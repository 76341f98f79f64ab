"""The one storage API: everything the collector, `score --store`, trends and the exporter write or read.

Every public method is one transaction. A run's samples may be appended in batches while it runs (so
a kill keeps what was sampled); the run only counts as complete once ``finish_run`` commits its
status, metric values and per-prompt values together.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, func, insert, select, update

from collector.metrics.result import SuiteResult
from collector.store import models as m
from collector.store.assessments import AssessmentStore
from collector.store.embeddings import ensure_identity
from collector.store.engine import insert_ignore, make_engine
from collector.store.errors import StoreError
from collector.store.overview import OverviewStore
from collector.store.pulls import PullStore
from collector.store.text import TextError, check_label, decode_text, encode_text
from collector.vocabulary import FINAL_RUN_STATUSES

if TYPE_CHECKING:
    from collector.embeddings import EmbeddingIdentity

FINAL_STATUSES = FINAL_RUN_STATUSES


@dataclass(frozen=True)
class SampleRecord:
    """One model call to store (``output`` None when the call failed; then ``error`` says why)."""

    prompt_key: str
    prompt: str
    output: str | None
    sample_index: int = 0
    created_at: datetime | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    decoding: dict[str, Any] | None = None
    latency_seconds: float | None = None
    finish_reason: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class StoredSample:
    """A sample read back, with its texts decoded exactly as written (output None if pruned/failed)."""

    prompt_key: str
    prompt: str
    output: str | None
    sample_index: int
    error: str | None
    decoding: dict[str, Any] | None = field(default=None)


def _now() -> datetime:
    return datetime.now(UTC)


def is_blank(output: str) -> bool:
    """An output with no visible text (empty or whitespace only): counted per run as ``n_blank``."""
    return not output.strip()


def _num(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


class Store(AssessmentStore, OverviewStore, PullStore):
    """History in SQL. ``Store(url)``; ``url`` None means env / default (see engine.resolve_url)."""

    def __init__(self, url: str | None = None, engine: Engine | None = None) -> None:
        self.engine = engine or make_engine(url)

    # -- helpers --------------------------------------------------------------------------------
    def _insert_ignore(
        self, conn: Connection, table: Any, rows: list[dict[str, Any]], key: list[str]
    ) -> None:
        insert_ignore(conn, table, rows, key)

    def _model_id(self, conn: Connection, name: str) -> int:
        mid = conn.scalar(select(m.Model.id).where(m.Model.name == name))
        if mid is None:
            raise StoreError(f"unknown model {name!r}")
        return mid

    # -- models and versions --------------------------------------------------------------------
    def ensure_model(self, name: str) -> int:
        """The id of model ``name``, created on first use."""
        try:
            check_label(name, "model name")
        except (TypeError, ValueError) as exc:
            raise StoreError(str(exc)) from None
        with self.engine.begin() as conn:
            self._insert_ignore(conn, m.Model.__table__, [{"name": name, "created_at": _now()}], ["name"])
            return self._model_id(conn, name)

    def ensure_version(
        self, model: str, label: str, source: str = "config", seen_at: datetime | None = None
    ) -> int:
        """The id of ``model``'s version ``label``; a new label gets the next ordinal. Updates last_seen."""
        mid = self.ensure_model(model)
        at = seen_at or _now()
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # serialise ordinal allocation per model
                conn.execute(select(m.Model.id).where(m.Model.id == mid).with_for_update())
            vid = conn.scalar(
                select(m.ModelVersion.id).where(m.ModelVersion.model_id == mid, m.ModelVersion.label == label)
            )
            if vid is None:
                nxt = (
                    conn.scalar(
                        select(func.max(m.ModelVersion.ordinal)).where(m.ModelVersion.model_id == mid)
                    )
                    or 0
                ) + 1
                vid = conn.execute(
                    insert(m.ModelVersion).returning(m.ModelVersion.id),
                    {
                        "model_id": mid,
                        "label": label,
                        "ordinal": nxt,
                        "source": source,
                        "first_seen_at": at,
                        "last_seen_at": at,
                    },
                ).scalar_one()
            else:
                conn.execute(update(m.ModelVersion).where(m.ModelVersion.id == vid).values(last_seen_at=at))
            return vid

    def set_baseline(self, model: str, label: str) -> None:
        """Make ``label`` the model's baseline in v_metric_vs_baseline (default: the first version)."""
        vid = self.ensure_version(model, label)
        with self.engine.begin() as conn:
            conn.execute(update(m.Model).where(m.Model.name == model).values(baseline_version_id=vid))

    def versions(self, model: str) -> list[tuple[str, int, datetime, datetime, str]]:
        """(label, ordinal, first_seen_at, last_seen_at, source) in ordinal order."""
        with self.engine.connect() as conn:
            mid = self._model_id(conn, model)
            v = m.ModelVersion
            rows = conn.execute(
                select(v.label, v.ordinal, v.first_seen_at, v.last_seen_at, v.source)
                .where(v.model_id == mid)
                .order_by(v.ordinal)
            )
            return [tuple(r) for r in rows]  # type: ignore[misc]

    # -- prompts and probe sets -----------------------------------------------------------------
    def _prompt_ids(self, conn: Connection, prompts: Iterable[str]) -> dict[str, int]:
        enc = {}
        for p in prompts:
            e = encode_text(p, "prompt")
            if e.body is None:
                raise StoreError(
                    f"prompt {p[:60]!r} contains NUL or undecodable bytes; prompts must be plain text"
                )
            enc[p] = e
        rows = [{"sha256": e.sha256, "body": e.body} for e in enc.values()]
        self._insert_ignore(conn, m.Prompt.__table__, rows, ["sha256"])
        ids = dict(
            conn.execute(
                select(m.Prompt.sha256, m.Prompt.id).where(
                    m.Prompt.sha256.in_([e.sha256 for e in enc.values()])
                )
            ).all()
        )
        return {p: ids[e.sha256] for p, e in enc.items()}

    def ensure_probe_set(self, name: str, prompts: Sequence[tuple[str, str]]) -> int:
        """The id of the probe set holding these ordered (key, prompt) pairs; a change is a new set."""
        h = hashlib.sha256()
        for key, body in prompts:
            h.update(
                key.encode("utf-8", "surrogatepass")
                + b"\x00"
                + body.encode("utf-8", "surrogatepass")
                + b"\x01"
            )
        digest = h.hexdigest()
        with self.engine.begin() as conn:
            sid = conn.scalar(select(m.ProbeSet.id).where(m.ProbeSet.sha256 == digest))
            if sid is not None:
                return sid
            pids = self._prompt_ids(conn, [p for _, p in prompts])
            self._insert_ignore(
                conn,
                m.ProbeSet.__table__,
                [{"sha256": digest, "name": name, "created_at": _now()}],
                ["sha256"],
            )
            sid = conn.scalar(select(m.ProbeSet.id).where(m.ProbeSet.sha256 == digest))
            rows = [
                {"probe_set_id": sid, "prompt_key": k, "prompt_id": pids[p], "position": i}
                for i, (k, p) in enumerate(prompts)
            ]
            self._insert_ignore(conn, m.ProbeSetPrompt.__table__, rows, ["probe_set_id", "prompt_key"])
            return sid  # type: ignore[return-value]

    # -- runs -----------------------------------------------------------------------------------
    def begin_run(
        self,
        model: str,
        version: str,
        *,
        probe_set_id: int | None = None,
        config_hash: str | None = None,
        source_kind: str = "collector",
        version_source: str = "config",
        owner: str | None = None,
    ) -> int:
        """Start a run in status 'running' and return its id (committed at once).

        ``owner`` (``collector.owner.current_owner()``) lets the next start reclaim the run at once
        if this process dies (``reclaim_orphaned_runs``) instead of waiting for a stale heartbeat.
        """
        vid = self.ensure_version(model, version, version_source)
        with self.engine.begin() as conn:
            mid = self._model_id(conn, model)
            now = _now()
            return conn.execute(
                insert(m.Run).returning(m.Run.id),
                {
                    "model_id": mid,
                    "version_id": vid,
                    "probe_set_id": probe_set_id,
                    "started_at": now,
                    "heartbeat_at": now,
                    "status": "running",
                    "n_samples": 0,
                    "n_errors": 0,
                    "config_hash": config_hash,
                    "source_kind": source_kind,
                    "owner": owner,
                    "n_blank": 0,
                    "n_quarantined": 0,
                },
            ).scalar_one()

    def add_samples(self, run_id: int, samples: Sequence[SampleRecord]) -> int:
        """Append a batch of samples to a running run in one transaction; returns how many were stored.

        Every text is checked before anything is written: one bad sample rejects the whole batch with a
        ``StoreError`` naming it, and nothing of the batch is stored.
        """
        with self.engine.begin() as conn:
            return self._add_samples(conn, run_id, samples)

    def _add_samples(self, conn: Connection, run_id: int, samples: Sequence[SampleRecord]) -> int:
        encoded = []
        for i, s in enumerate(samples):
            try:
                out = (
                    None
                    if s.output is None
                    else encode_text(s.output, f"sample {i} ({s.prompt_key!r}#{s.sample_index}) output")
                )
            except TextError as exc:
                raise StoreError(f"run {run_id}: {exc}") from exc
            encoded.append(out)
        run = conn.execute(select(m.Run.status, m.Run.version_id).where(m.Run.id == run_id)).one_or_none()
        if run is None:
            raise StoreError(f"run {run_id} does not exist")
        if run.status != "running":
            raise StoreError(f"run {run_id} is {run.status!r}; samples can only be added to a running run")
        pids = self._prompt_ids(conn, {s.prompt for s in samples})
        texts = {e.sha256: e for e in encoded if e is not None}
        self._insert_ignore(
            conn,
            m.TextBody.__table__,
            [
                {"sha256": e.sha256, "n_bytes": e.n_bytes, "body": e.body, "raw": e.raw}
                for e in texts.values()
            ],
            ["sha256"],
        )
        tids: dict[str, int] = {}
        keys = list(texts)
        for j in range(0, len(keys), 500):
            tids.update(
                conn.execute(
                    select(m.TextBody.sha256, m.TextBody.id).where(m.TextBody.sha256.in_(keys[j : j + 500]))
                ).all()
            )
        now = _now()
        rows = [
            {
                "run_id": run_id,
                "version_id": run.version_id,
                "prompt_id": pids[s.prompt],
                "prompt_key": s.prompt_key,
                "text_id": None if e is None else tids[e.sha256],
                "sample_index": s.sample_index,
                "created_at": s.created_at or now,
                "prompt_tokens": s.prompt_tokens,
                "completion_tokens": s.completion_tokens,
                "decoding": s.decoding,
                "latency_seconds": s.latency_seconds,
                "finish_reason": s.finish_reason,
                "error": s.error,
            }
            for s, e in zip(samples, encoded, strict=True)
        ]
        if rows:
            conn.execute(insert(m.SampleRow), rows)
        n_err = sum(1 for s in samples if s.output is None or s.error)
        n_blank = sum(1 for s in samples if s.output is not None and not s.error and is_blank(s.output))
        conn.execute(
            update(m.Run)
            .where(m.Run.id == run_id)
            .values(
                n_samples=m.Run.n_samples + len(rows),
                n_errors=m.Run.n_errors + n_err,
                n_blank=m.Run.n_blank + n_blank,
                heartbeat_at=now,
            )
        )
        return len(rows)

    def finish_run(
        self,
        run_id: int,
        status: str,
        error: str | None = None,
        result: SuiteResult | None = None,
        prompt_keys: dict[str, str] | None = None,
        *,
        embedding_identity: EmbeddingIdentity | None = None,
    ) -> None:
        """Close a run: status, error, metric values and per-prompt values, all in ONE transaction.

        ``embedding_identity`` records what embedded the outputs for the embedding metrics in
        ``result`` (runs of two identities are not compared on those metrics).
        """
        if status not in FINAL_STATUSES:
            raise StoreError(f"run {run_id}: final status must be one of {FINAL_STATUSES}, got {status!r}")
        with self.engine.begin() as conn:
            run = conn.execute(select(m.Run.status, m.Run.version_id).where(m.Run.id == run_id)).one_or_none()
            if run is None:
                raise StoreError(f"run {run_id} does not exist")
            if run.status != "running":
                raise StoreError(f"run {run_id} is already {run.status!r}")
            if result is not None:
                rows = [
                    {
                        "run_id": run_id,
                        "version_id": run.version_id,
                        "metric": v.metric,
                        "scope": v.scope,
                        "value": _num(v.value),
                        "ci_low": _num(v.ci_low),
                        "ci_high": _num(v.ci_high),
                        "n_samples": v.n_samples,
                        "n_prompts": v.n_prompts,
                        "family": v.family,
                        "higher_is_diverse": v.higher_is_diverse,
                    }
                    for v in result.values
                ]
                if rows:
                    conn.execute(insert(m.MetricValueRow), rows)
                pp = [
                    {"run_id": run_id, "metric": metric, "prompt_key": key, "value": _num(val)}
                    for metric, per in result.per_prompt.items()
                    for key, val in per.items()
                ]
                if pp:
                    conn.execute(insert(m.PromptMetricValue), pp)
            identity_id = None if embedding_identity is None else ensure_identity(conn, embedding_identity)
            conn.execute(
                update(m.Run)
                .where(m.Run.id == run_id)
                .values(status=status, error=error, finished_at=_now(), embedding_identity_id=identity_id)
            )

    def heartbeat(self, run_id: int) -> None:
        """Record that a long run's process is alive (add_samples does this too)."""
        with self.engine.begin() as conn:
            conn.execute(update(m.Run).where(m.Run.id == run_id).values(heartbeat_at=_now()))

    def mark_interrupted_runs(
        self, reason: str = "process ended before the run finished", stale_after: timedelta | None = None
    ) -> int:
        """Runs still 'running' (their process was killed) become 'interrupted'; call on start.

        With ``stale_after``, only runs whose last heartbeat is older than that are touched, so a
        process starting beside a live writer leaves the writer's run alone. Returns runs marked.
        """
        q = update(m.Run).where(m.Run.status == "running")
        if stale_after is not None:
            q = q.where(m.Run.heartbeat_at < _now() - stale_after)
        with self.engine.begin() as conn:
            return conn.execute(q.values(status="interrupted", error=reason, finished_at=_now())).rowcount

    # -- reads ----------------------------------------------------------------------------------
    def run_samples(self, run_id: int) -> list[StoredSample]:
        """The run's samples with prompt and output texts exactly as written."""
        s, t, p = m.SampleRow, m.TextBody, m.Prompt
        q = (
            select(s.prompt_key, p.body, t.body, t.raw, s.sample_index, s.error, s.decoding)
            .join(p, p.id == s.prompt_id)
            .outerjoin(t, t.id == s.text_id)
            .where(s.run_id == run_id)
            .order_by(s.id)
        )
        with self.engine.connect() as conn:
            if conn.scalar(select(m.Run.id).where(m.Run.id == run_id)) is None:
                raise StoreError(f"run {run_id} does not exist")
            return [
                StoredSample(r[0], r[1], decode_text(r[2], r[3]), r[4], r[5], r[6]) for r in conn.execute(q)
            ]

    def run_status(self, run_id: int) -> tuple[str, str | None, int, int]:
        """(status, error, n_samples, n_errors) of a run."""
        with self.engine.connect() as conn:
            r = conn.execute(
                select(m.Run.status, m.Run.error, m.Run.n_samples, m.Run.n_errors).where(m.Run.id == run_id)
            ).one_or_none()
            if r is None:
                raise StoreError(f"run {run_id} does not exist")
            return tuple(r)  # type: ignore[return-value]

    def per_prompt_values(self, run_id: int) -> dict[str, dict[str, float]]:
        """``{metric: {prompt_key: value}}`` for a run (NaN where the value was unscorable)."""
        out: dict[str, dict[str, float]] = {}
        with self.engine.connect() as conn:
            for metric, key, val in conn.execute(
                select(
                    m.PromptMetricValue.metric, m.PromptMetricValue.prompt_key, m.PromptMetricValue.value
                ).where(m.PromptMetricValue.run_id == run_id)
            ):
                out.setdefault(metric, {})[key] = math.nan if val is None else val
        return out

    def latest_metrics(self, model: str) -> list[dict[str, Any]]:
        """Rows of v_latest_metrics for ``model`` (latest completed value per version, metric, scope)."""
        from sqlalchemy import text

        with self.engine.connect() as conn:
            return [
                dict(r._mapping)
                for r in conn.execute(
                    text(
                        "SELECT * FROM v_latest_metrics WHERE model = :m ORDER BY version_ordinal, metric, scope"
                    ),
                    {"m": model},
                )
            ]

    def metric_history(self, model: str, metric: str, scope: str = "within") -> list[dict[str, Any]]:
        """Every completed run's value of one metric for ``model``, in version then time order."""
        from sqlalchemy import text

        with self.engine.connect() as conn:
            return [
                dict(r._mapping)
                for r in conn.execute(
                    text(
                        "SELECT * FROM v_metric_history WHERE model = :m AND metric = :k AND scope = :s "
                        "ORDER BY version_ordinal, run_started_at"
                    ),
                    {"m": model, "k": metric, "s": scope},
                )
            ]
