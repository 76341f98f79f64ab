"""Health endpoints for orchestrators (Kubernetes probes, Docker's HEALTHCHECK, compose).

* ``GET /healthz`` (liveness): the process answers HTTP. Nothing else: a database outage must
  not make Kubernetes restart every replica, it makes them unready instead.
* ``GET /readyz`` (readiness): the database answers, its schema is at the head revision this
  build ships (``collapse-watch db upgrade``), and, in ``collapse-watch run``, the scheduler runs.
  200 when all hold, else 503; the JSON body names each check and what failed.

Both are unauthenticated, as kubelet probes expect; they reveal no data, only the checks' state.
``liveness`` and ``readiness`` return ``(status code, body)``; ``collector.metrics_server`` mounts
them on the exporter's port as routes of access ``open``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

from collector.store.api import Store
from collector.store.errors import first_line

HEALTH_PATHS = ("/healthz", "/readyz")
Answer = tuple[int, dict[str, Any]]


class Scheduler(Protocol):
    @property
    def running(self) -> bool: ...


@dataclass
class SchedulerProbe:
    """The scheduler ``/readyz`` reports on in ``run`` (attached once built; None: not yet)."""

    scheduler: Scheduler | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def attach(self, scheduler: Scheduler) -> None:
        with self._lock:
            self.scheduler = scheduler

    def state(self) -> str:
        with self._lock:
            scheduler = self.scheduler
        if scheduler is None:
            return "not started"
        return "ok" if scheduler.running else "stopped"


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The newest shipped migration (fixed for the life of the process)."""
    from collector.store.migrate import head

    return head()


@lru_cache(maxsize=1)
def known_revisions() -> frozenset[str]:
    """Every revision this build ships: a database at any other one was migrated by a newer image."""
    from alembic.script import ScriptDirectory

    from collector.store.migrate import alembic_config

    return frozenset(s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions())


def database_revision(store: Store) -> str:
    """The database's Alembic revision ('none' when unmigrated); raises when it cannot be reached.

    Read from Alembic's version table directly: ``MigrationContext.configure`` logs two INFO lines
    per call, which every probe would add to the log.
    """
    from sqlalchemy import inspect, text

    with store.engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return "none"
        rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return ",".join(sorted(rows)) or "none"


def schema_state(revision: str) -> str:
    """'ok' at this build's head, else what is wrong and what to do about it."""
    want = head_revision()
    if revision == want:
        return "ok"
    if revision != "none" and revision not in known_revisions():
        return (
            f"database at revision {revision}, newer than this image's migrations (head {want}): "
            "deploy the newer image"
        )
    return f"at revision {revision}, this collapse-watch needs {want}: run `collapse-watch db upgrade`"


def liveness() -> Answer:
    """The process is alive (it answered)."""
    return 200, {"status": "ok"}


def readiness(store: Store, scheduler: SchedulerProbe | None = None) -> Answer:
    """Database reachable and migrated to head; ``scheduler`` (``run`` only) running."""
    checks: dict[str, str] = {}
    try:
        revision = database_revision(store)
    except Exception as exc:  # any driver error: the database cannot be read
        checks["database"] = f"unreachable: {first_line(exc)}"
    else:
        checks["database"] = "ok"
        checks["schema"] = schema_state(revision)
    if scheduler is not None:
        checks["scheduler"] = scheduler.state()
    ready = checks.get("schema") == "ok" and all(v == "ok" for v in checks.values())
    return (200 if ready else 503), {"status": "ready" if ready else "not ready", "checks": checks}
