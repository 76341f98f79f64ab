"""The collector's HTTP server: ``GET /metrics`` for Prometheus and ``POST /alerts`` for Alertmanager
(and ``GET /healthz`` / ``GET /readyz`` for orchestrators: ``collector.health``).

* ``/metrics``: the store's state (read at scrape time through ``SnapshotReader``: no write lock,
  an answer within a bounded time) plus this process's own metrics.
* ``/alerts``: Alertmanager's webhook receiver (``webhook_configs`` in
  dashboards/alertmanager/alertmanager.yml).  Every notification, firing and resolved, is stored
  in the alert history (``collector.store.alerts``) before the answer: 200 once stored, 400 with
  the reason for a body that is not a notification (Alertmanager does not retry a 4xx), 500 when
  the database cannot take it (Alertmanager retries).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from collector.exporter import Detail, StoreCollector
from collector.exposition import CONTENT_TYPE, render
from collector.health import HEALTH_PATHS, SchedulerProbe, health_app
from collector.reliability_exporter import ReliabilityCollector
from collector.store import Store
from collector.store.alerts import AlertHistory
from collector.store.errors import StoreError

log = logging.getLogger("collapse_watch.http")
MAX_ALERT_BODY = 4 * 1024 * 1024  # bytes; Alertmanager batches at most a few hundred alerts

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def store_registry(
    store: Store,
    intervals: dict[str, float] | None = None,
    max_versions: int | None = None,
    detail: Detail = "summary",
) -> CollectorRegistry:
    """A private registry: the store collector plus the usual process, platform and GC collectors."""
    from collector.snapshot import SnapshotReader, load_snapshot, read_only_store

    reader_store = read_only_store(store)
    reader = SnapshotReader(
        lambda: load_snapshot(reader_store, detail=detail, max_versions=max_versions, intervals=intervals)
    )
    registry = CollectorRegistry()
    registry.register(StoreCollector(reader))
    registry.register(ReliabilityCollector(reader_store))  # #11's series, read without a write lock
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def alerts_app(history: AlertHistory) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """The WSGI app of ``POST /alerts``."""

    def answer(start: StartResponse, status: str, body: dict[str, Any]) -> list[bytes]:
        data = json.dumps(body).encode()
        start(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    def app(environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            return answer(start, "405 Method Not Allowed", {"error": "POST an Alertmanager notification"})
        try:
            size = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            size = -1
        if size <= 0 or size > MAX_ALERT_BODY:
            return answer(start, "400 Bad Request", {"error": f"body must be 1..{MAX_ALERT_BODY} bytes"})
        raw = environ["wsgi.input"].read(size)
        try:
            payload = json.loads(raw)
        except ValueError as exc:
            return answer(start, "400 Bad Request", {"error": f"body is not JSON: {exc}"})
        try:
            stored = history.record(payload)
        except StoreError as exc:
            log.warning("rejected an alert notification: %s", exc)
            return answer(start, "400 Bad Request", {"error": str(exc)})
        except Exception as exc:  # the database: Alertmanager retries a 5xx
            log.error("cannot store an alert notification: %s", exc)
            return answer(start, "500 Internal Server Error", {"error": "cannot store the notification"})
        return answer(start, "200 OK", {"stored": stored})

    return app


def metrics_app(registry: CollectorRegistry) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """The WSGI app of ``GET /metrics`` (``collector.exposition``: the text format, written fast)."""

    def app(environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        body = render([registry])
        start("200 OK", [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(body)))])
        return [body]

    return app


def collector_app(
    store: Store, registry: CollectorRegistry, scheduler: SchedulerProbe | None = None
) -> Callable[..., Iterable[bytes]]:
    """``/alerts`` to the alert history, everything else to the Prometheus exposition."""
    from collector.snapshot import read_only_store

    metrics = metrics_app(registry)
    alerts = alerts_app(AlertHistory(store.engine))
    health = health_app(read_only_store(store), scheduler)

    def app(environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        # --- health probes (collector/health.py): unauthenticated, as kubelet probes expect ---
        if environ.get("PATH_INFO", "").rstrip("/") in HEALTH_PATHS:
            return health(environ, start)
        # ---
        if environ.get("PATH_INFO", "").rstrip("/") == "/alerts":
            return alerts(environ, start)
        return metrics(environ, start)

    return app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve_store_metrics(
    store: Store,
    *,
    host: str,
    port: int,
    intervals: dict[str, float] | None = None,
    max_versions: int | None = None,
    detail: Detail = "summary",
    scheduler: SchedulerProbe | None = None,
) -> Any:
    """Start serving in a daemon thread; returns the HTTP server (``.server_port``, ``.shutdown()``).

    ``scheduler``: ``collapse-watch run``'s, for ``/readyz`` (None: no scheduler to check)."""
    registry = store_registry(store, intervals, max_versions, detail)
    server = make_server(
        host,
        port,
        collector_app(store, registry, scheduler),
        ThreadingWSGIServer,
        handler_class=_QuietHandler,
    )
    threading.Thread(target=server.serve_forever, daemon=True, name="metrics-http").start()
    return server
