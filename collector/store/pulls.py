"""Pull-source bookkeeping in the database (issue #11): positions, delivered keys, quarantine, reclaim.

A pull pass stores one batch at a time with ``commit_pull``, which in ONE transaction

1. advances the source's position with a compare-and-set on ``pull_offsets.generation`` (two
   processes on one source: the second gets ``OffsetConflict`` and stores nothing),
2. records every delivered ``source_key`` in ``source_records`` (primary key ``(source, source_key)``,
   so a line is never stored twice, even by processes racing past the check above),
3. appends the new samples to their runs and the quarantined records to ``quarantine``.

A crash before the commit re-delivers the batch; after it, nothing is re-read: each line is stored
exactly once or quarantined with its reason.  ``reclaim_orphaned_runs`` closes at start-up the runs
whose owning process is gone (``collector.owner``), or whose heartbeat is stale when the owner is on
another host.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from collector.owner import current_owner, owner_alive
from collector.store import models as m
from collector.store.errors import StoreError
from collector.store.text import safe_label
from collector.vocabulary import TIMED_RUN_STATUSES

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from collector.store.api import SampleRecord


class OffsetConflict(StoreError):
    """Another process advanced the source's position since this one read it; nothing was stored."""


@dataclass(frozen=True)
class Quarantined:
    """A record set aside: where it came from and why it could not be stored."""

    location: str
    reason: str
    excerpt: str | None = None
    source_key: str | None = None


@dataclass(frozen=True)
class PullBatch:
    """One batch of a pull pass: samples per run (with their source keys) and quarantined records."""

    samples: dict[int, list[tuple[str | None, SampleRecord]]]
    quarantined: list[tuple[int | None, Quarantined]]


def _now() -> datetime:
    return datetime.now(UTC)


class PullStore:
    """Mixed into ``Store``."""

    engine: Engine

    def _add_samples(self, conn: Connection, run_id: int, samples: Sequence[SampleRecord]) -> int:
        raise NotImplementedError  # provided by Store

    # -- positions --------------------------------------------------------------------------------
    def pull_position(self, source: str) -> tuple[dict[str, Any] | None, int]:
        """(position, generation) of a pull source; (None, 0) before its first commit."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(m.PullOffset.position, m.PullOffset.generation).where(m.PullOffset.source == source)
            ).one_or_none()
        return (None, 0) if row is None else (row.position, row.generation)

    def _advance(self, conn: Connection, source: str, position: dict[str, Any], generation: int) -> int:
        now = _now()
        if generation == 0:  # the first commit: insert, and lose cleanly to a racing first commit
            ins = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
            won = conn.execute(
                ins(m.PullOffset)
                .values(source=source, position=position, generation=1, updated_at=now)
                .on_conflict_do_nothing(index_elements=["source"])
                .returning(m.PullOffset.generation)
            ).scalar()
            if won is None:
                raise OffsetConflict(f"source {source}: another process started reading it first")
            return 1
        n = conn.execute(
            update(m.PullOffset)
            .where(m.PullOffset.source == source, m.PullOffset.generation == generation)
            .values(position=position, generation=generation + 1, updated_at=now)
        ).rowcount
        if n != 1:
            raise OffsetConflict(f"source {source}: another process advanced it since this pass began")
        return generation + 1

    def commit_pull(
        self, source: str, model: str, batch: PullBatch, position: dict[str, Any], generation: int
    ) -> tuple[int, int]:
        """Store one batch and advance the position, atomically. Returns (new generation, duplicates).

        Records whose ``source_key`` was already delivered are skipped and counted as duplicates.
        """
        with self.engine.begin() as conn:
            new_gen = self._advance(conn, source, position, generation)
            keys = [k for rows in batch.samples.values() for k, _ in rows if k] + [
                q.source_key for _, q in batch.quarantined if q.source_key
            ]
            seen: set[str] = set()
            for j in range(0, len(keys), 500):
                seen.update(
                    conn.scalars(
                        select(m.SourceRecord.source_key).where(
                            m.SourceRecord.source == source, m.SourceRecord.source_key.in_(keys[j : j + 500])
                        )
                    )
                )
            dupes = 0
            now = _now()
            delivered: list[dict[str, Any]] = []

            def fresh(key: str | None) -> bool:
                nonlocal dupes
                if key is None:
                    return True
                if key in seen:
                    dupes += 1
                    return False
                seen.add(key)
                return True

            for run_id, rows in batch.samples.items():
                new = [(k, r) for k, r in rows if fresh(k)]
                delivered += [
                    {
                        "source": source,
                        "source_key": k,
                        "run_id": run_id,
                        "quarantined": False,
                        "created_at": now,
                    }
                    for k, _ in new
                    if k
                ]
                if new:
                    self._add_samples(conn, run_id, [r for _, r in new])
            qrows = []
            per_run: dict[int, int] = {}
            for run_id, q in batch.quarantined:
                if not fresh(q.source_key):
                    continue
                qrows.append(
                    {
                        "model": model,
                        "source": source,
                        "source_key": q.source_key,
                        "location": safe_label(q.location),
                        "reason": safe_label(q.reason),
                        "excerpt": None if q.excerpt is None else safe_label(q.excerpt),
                        "run_id": run_id,
                        "created_at": now,
                    }
                )
                if q.source_key:
                    delivered.append(
                        {
                            "source": source,
                            "source_key": q.source_key,
                            "run_id": run_id,
                            "quarantined": True,
                            "created_at": now,
                        }
                    )
                if run_id is not None:
                    per_run[run_id] = per_run.get(run_id, 0) + 1
            if qrows:
                conn.execute(insert(m.QuarantineRow), qrows)
            for run_id, n in per_run.items():
                conn.execute(
                    update(m.Run).where(m.Run.id == run_id).values(n_quarantined=m.Run.n_quarantined + n)
                )
            if delivered:
                conn.execute(insert(m.SourceRecord), delivered)
            return new_gen, dupes

    def quarantined(self, model: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Quarantined records, newest first (``model`` None: every model)."""
        q = select(m.QuarantineRow).order_by(m.QuarantineRow.id.desc()).limit(limit)
        if model is not None:
            q = q.where(m.QuarantineRow.model == model)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q.with_only_columns(*m.QuarantineRow.__table__.c))]

    def quarantine_counts(self) -> dict[tuple[str, str], int]:
        """{(model, source): quarantined records} over all time (for /metrics)."""
        qr = m.QuarantineRow
        with self.engine.connect() as conn:
            rows = conn.execute(select(qr.model, qr.source, func.count()).group_by(qr.model, qr.source))
            return {(a, b): n for a, b, n in rows}

    def last_run_blank_ratios(self) -> dict[str, float]:
        """{model: share of blank outputs among the successful outputs of its latest finished run}."""
        r = m.Run
        latest = (
            select(r.model_id, func.max(r.id).label("run_id"))
            .where(r.status.in_(TIMED_RUN_STATUSES), r.n_samples > r.n_errors)
            .group_by(r.model_id)
            .subquery()
        )
        q = (
            select(m.Model.name, r.n_blank, r.n_samples, r.n_errors)
            .join(latest, latest.c.run_id == r.id)
            .join(m.Model, m.Model.id == r.model_id)
        )
        with self.engine.connect() as conn:
            return {name: blank / (n - err) for name, blank, n, err in conn.execute(q)}

    # -- run lifecycle ----------------------------------------------------------------------------
    def reclaim_orphaned_runs(self, stale_after: timedelta = timedelta(minutes=30)) -> int:
        """Close every 'running' run whose owner is gone (or, owner unknown, heartbeat is stale).

        Call at start-up: a run of a process killed with -9 becomes 'interrupted' at the next start,
        keeping what it stored. Returns the number of runs closed.
        """
        me = current_owner()
        cutoff = _now() - stale_after
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(m.Run.id, m.Run.owner, m.Run.heartbeat_at).where(m.Run.status == "running")
            ).all()
        dead: list[tuple[int, str]] = []
        for run_id, owner, beat in rows:
            alive = None if owner is None or owner == me else owner_alive(owner)
            if owner == me:
                continue
            if alive is False:
                dead.append((run_id, f"its process ({owner}) ended before the run finished"))
            elif alive is None and beat is not None and _aware(beat) < cutoff:
                dead.append((run_id, f"no heartbeat since {_aware(beat):%Y-%m-%d %H:%M:%S} UTC"))
        n = 0
        for run_id, reason in dead:
            with self.engine.begin() as conn:
                n += conn.execute(
                    update(m.Run)
                    .where(m.Run.id == run_id, m.Run.status == "running")
                    .values(status="interrupted", error=reason, finished_at=_now())
                ).rowcount
        return n


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)
