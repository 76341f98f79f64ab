"""Per-model leases in PostgreSQL: several collector replicas, each tick of a model collected once.

Two mechanisms, each doing what it is good at (docs/replicas.md explains the choice):

* **a session-level advisory lock per model** (``pg_try_advisory_lock``), held on a connection of
  its own for as long as a run of the model lasts.  Runs of one model never overlap, and when the
  replica holding it dies its connection closes and PostgreSQL releases the lock at once: no
  expiry to wait out, no clock involved.
* **the ``collection_leases`` row** of the model, whose ``last_tick`` the holder moves forward to
  the tick it collects (a conditional UPDATE).  Every replica fires every tick; only the first to
  get the lock *and* move ``last_tick`` past its previous value runs, so a replica that gets the
  lock a moment after the winner finished finds the tick taken and skips it.

SQLite has neither (and one collector per SQLite file is enforced elsewhere), so ``Leases.for_url``
returns None there.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, create_engine, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from collector.store import models as m
from collector.store.engine import make_engine
from collector.store.errors import first_line

log = logging.getLogger("collapse_watch.leases")

LEASE_LOCK_CLASS = 0x6377_6C73  # "cwls": first key of pg_advisory_lock(int, int); the second is schema:model
_KEY = "CAST(:cls AS integer), hashtext(coalesce(current_schema(), 'public') || ':' || :model)"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def replica_id() -> str:
    """This process as a lease holder: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Leases:
    """Claims of (model, tick) for one replica; thread-safe (each claim has its own connection)."""

    def __init__(self, engine: Engine, holder: str | None = None) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError(f"leases need PostgreSQL, not {engine.dialect.name}")
        self.engine = engine
        self.holder = holder or replica_id()

    @classmethod
    def for_url(cls, url: str | None, holder: str | None = None) -> Leases | None:
        """Leases on the database at ``url``; None unless it is PostgreSQL."""
        probe = make_engine(url)
        try:
            if probe.dialect.name != "postgresql":
                return None
            # NullPool: a lock lives as long as its connection, which must never go back to a pool
            return cls(create_engine(probe.url, poolclass=NullPool), holder)
        finally:
            probe.dispose()

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _model_lock(self, model: str, wait: bool) -> Iterator[Connection | None]:
        conn = self.engine.connect()
        try:
            fn = "pg_advisory_lock" if wait else "pg_try_advisory_lock"
            got = conn.execute(
                text(f"SELECT {fn}({_KEY})"), {"cls": LEASE_LOCK_CLASS, "model": model}
            ).scalar()
            conn.commit()
            if wait or got:
                try:
                    yield conn
                finally:
                    try:
                        conn.execute(
                            text(f"SELECT pg_advisory_unlock({_KEY})"),
                            {"cls": LEASE_LOCK_CLASS, "model": model},
                        )
                        conn.commit()
                    except SQLAlchemyError:  # the database went away: the lock ends with the session
                        conn.invalidate()
            else:
                yield None
        finally:
            conn.close()

    @contextmanager
    def claim(self, model: str, tick: datetime) -> Iterator[bool]:
        """Yield True if this replica is to collect ``model`` at ``tick`` (and holds it meanwhile).

        False when another replica is running the model now, or already claimed this tick (or a
        later one).  The lease is released when the block ends, or when this process dies.
        """
        with self._model_lock(model, wait=False) as conn:
            if conn is None:
                yield False
                return
            if not self._advance(conn, model, tick):
                yield False
                return
            try:
                yield True
            finally:
                try:
                    conn.execute(
                        update(m.CollectionLease)
                        .where(m.CollectionLease.model == model, m.CollectionLease.holder == self.holder)
                        .values(released_at=datetime.now(UTC))
                    )
                    conn.commit()
                except SQLAlchemyError as exc:  # an outage: said once, not raised over the run's own end
                    log.warning("could not release the lease of %s: %s", model, first_line(exc))

    @contextmanager
    def hold(self, model: str) -> Iterator[None]:
        """Wait until no replica runs ``model``, then hold it (an unscheduled run, `collect --once`)."""
        with self._model_lock(model, wait=True):
            yield

    def _advance(self, conn: Connection, model: str, tick: datetime) -> bool:
        """Move the model's ``last_tick`` to ``tick`` if it is earlier; True if this call moved it."""
        now = datetime.now(UTC)
        conn.execute(
            pg_insert(m.CollectionLease)
            .values(model=model, last_tick=EPOCH, holder=self.holder, claimed_at=now)
            .on_conflict_do_nothing(index_elements=["model"])
        )
        moved = conn.execute(
            update(m.CollectionLease)
            .where(m.CollectionLease.model == model, m.CollectionLease.last_tick < tick)
            .values(last_tick=tick, holder=self.holder, claimed_at=now, released_at=None)
        ).rowcount
        conn.commit()
        return moved == 1
