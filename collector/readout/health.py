"""Health endpoints for orchestrators (Kubernetes probes, Docker's HEALTHCHECK, compose).

* ``GET /healthz`` (liveness): the process answers HTTP. Nothing else: a database outage must
  not make Kubernetes restart every replica, it makes them unready instead.
* ``GET /readyz`` (readiness): the database answers, its schema is at the head revision this
  build ships (``collapse-watch db upgrade``), and, in ``collapse-watch run``, the scheduler runs.
  200 when all hold, else 503; the JSON body names each check and what failed.

``/readyz`` never waits on the database: one background ``DatabaseCheck`` thread per server checks it
every ``CHECK_EVERY_SECONDS`` (each connect and statement bounded to ``CHECK_TIMEOUT_SECONDS``, below
a probe's usual 5 s timeout) and a probe reports its latest result and that result's age. A database
that accepts connections and never answers therefore cannot tie up the HTTP workers, and
``/healthz`` touches nothing at all.

Both are unauthenticated, as kubelet probes expect; they reveal no data, only the checks' state.
``liveness`` and ``readiness`` return ``(status code, body)``; ``collector.readout.server`` mounts
them on the exporter's port as routes of access ``open``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

from collector.store.api import Store
from collector.store.errors import first_line

HEALTH_PATHS = ("/healthz", "/readyz")
Answer = tuple[int, dict[str, Any]]
CHECK_TIMEOUT_SECONDS = 2.0  # one connect, one statement: below a kubelet probe's timeout
CHECK_EVERY_SECONDS = 3.0
FIRST_WAIT_SECONDS = 1.0  # a probe before the first check finished waits at most this long


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
    with store.engine.connect() as conn:
        return _revision(conn)


def _revision(conn: Any) -> str:
    from sqlalchemy import inspect, text

    if not inspect(conn).has_table("alembic_version"):
        return "none"
    rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return ",".join(sorted(rows)) or "none"


def database_problem(exc: BaseException) -> str:
    """``/readyz``'s "database" text for a failed check: "refused: ..." when the server answered and
    said no (no such database, unknown role, bad password: fix the configuration), else
    "unreachable: ..." (no answer, a network fault)."""
    line = first_line(exc)
    return (
        f"refused: {line}" if "FATAL:" in str(getattr(exc, "orig", None) or exc) else f"unreachable: {line}"
    )


def bounded_engine(store: Store) -> Any:
    """An engine on ``store``'s database for health checks: a fresh connection per check (no pool
    to hold a connection a hung server stalled), connects bounded to ``CHECK_TIMEOUT_SECONDS`` and,
    on PostgreSQL, a server-side ``statement_timeout`` of the same."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from collector.readout.snapshot import read_only_store

    if store.engine.dialect.name != "postgresql":
        return read_only_store(store).engine
    url = store.engine.url
    given = url.query.get("options", "")  # e.g. a search_path: kept, the timeout added
    options = " ".join([*([given] if isinstance(given, str) else given), "-c statement_timeout="])
    options += str(int(CHECK_TIMEOUT_SECONDS * 1000))
    return create_engine(
        url.difference_update_query(["options", "connect_timeout"]),
        poolclass=NullPool,
        connect_args={"connect_timeout": max(2, round(CHECK_TIMEOUT_SECONDS)), "options": options.strip()},
    )


def checked_revision(engine: Any, timeout: float = CHECK_TIMEOUT_SECONDS) -> str:
    """``database_revision`` within ``timeout`` seconds after the connect: a server that stops
    answering mid-statement has the connection's socket shut under it (the read then fails)."""
    with engine.connect() as conn:
        timer = None
        fileno = getattr(conn.connection.dbapi_connection, "fileno", None)
        if engine.dialect.name == "postgresql" and fileno is not None:
            fd = fileno()
            timer = threading.Timer(timeout, _shut, args=(fd,))
            timer.daemon = True
            timer.start()
        try:
            return _revision(conn)
        finally:
            if timer is not None:
                timer.cancel()


def _shut(fd: int) -> None:
    with contextlib.suppress(OSError):
        s = socket.socket(fileno=fd)
        try:
            s.shutdown(socket.SHUT_RDWR)
        finally:
            s.detach()  # the driver still owns the descriptor


class DatabaseCheck:
    """Checks the database in one daemon thread every ``every`` seconds; ``state()`` is its latest
    result (what ``/readyz`` reports), never waiting on the database."""

    def __init__(self, store: Store, every: float = CHECK_EVERY_SECONDS) -> None:
        self._engine = bounded_engine(store)
        self._every = every
        self._lock = threading.Lock()
        self._result: tuple[dict[str, str], float] | None = None
        self._running_since: float | None = None
        self._created = time.monotonic()
        self._stop = threading.Event()
        self._first = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="readyz-db-check", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.check_now()
            if self._stop.wait(self._every):
                break

    def check_now(self) -> dict[str, str]:
        """Check once (in the calling thread) and keep the result."""
        with self._lock:
            self._running_since = time.monotonic()
        checks: dict[str, str] = {}
        try:
            revision = checked_revision(self._engine)
        except Exception as exc:  # any driver error: the database cannot be read
            checks["database"] = database_problem(exc)
        else:
            checks["database"] = "ok"
            checks["schema"] = schema_state(revision)
        with self._lock:
            self._result = (checks, time.monotonic())
            self._running_since = None
        self._first.set()
        return checks

    def state(self) -> tuple[dict[str, str], float]:
        """(the latest checks, their age in seconds); a check running past its bound is reported as
        the database not answering."""
        self._first.wait(FIRST_WAIT_SECONDS)  # only until the first result: a probe right at start
        now = time.monotonic()
        with self._lock:
            result, running = self._result, self._running_since
        if result is None:
            return {"database": f"connecting (first check running for {now - self._created:.0f}s)"}, 0.0
        checks, at = result
        if running is not None and now - running > 2 * CHECK_TIMEOUT_SECONDS + 1:
            return {"database": f"unreachable: no answer for {now - running:.0f}s"}, now - at
        return dict(checks), now - at

    def stop(self) -> None:
        self._stop.set()


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


def readiness(source: Store | DatabaseCheck, scheduler: SchedulerProbe | None = None) -> Answer:
    """Database reachable and migrated to head; ``scheduler`` (``run`` only) running.

    ``source``: a ``DatabaseCheck`` (the server's: its latest result, ``checked_seconds_ago`` its
    age) or a ``Store`` (checked now, in the calling thread)."""
    body: dict[str, Any] = {}
    if isinstance(source, DatabaseCheck):
        checks, age = source.state()
        body["checked_seconds_ago"] = round(age, 1)
    else:
        checks = {}
        try:
            revision = database_revision(source)
        except Exception as exc:  # any driver error: the database cannot be read
            checks["database"] = database_problem(exc)
        else:
            checks["database"] = "ok"
            checks["schema"] = schema_state(revision)
    if scheduler is not None:
        checks["scheduler"] = scheduler.state()
    ready = checks.get("schema") == "ok" and all(v == "ok" for v in checks.values())
    return (200 if ready else 503), {"status": "ready" if ready else "not ready", "checks": checks, **body}
