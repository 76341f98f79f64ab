"""The collector's HTTP server: ``GET /metrics`` for Prometheus and ``POST /alerts`` for Alertmanager
(and ``GET /healthz`` / ``GET /readyz`` for orchestrators: ``collector.readout.health``).

* ``/metrics``: the store's state (read at scrape time through ``SnapshotReader``: no write lock,
  an answer within a bounded time) plus this process's own metrics.
* ``/alerts``: Alertmanager's webhook receiver (``webhook_configs`` in
  dashboards/alertmanager/alertmanager.yml).  Every notification, firing and resolved, is stored
  in the alert history (``collector.store.alerts``) before the answer: 200 once stored (values cut
  and sanitised to fit), 4xx with the reason for a body that is not a notification (Alertmanager
  does not retry a 4xx), 503 only when the database is unreachable (Alertmanager retries).

Routes live in one table (``ROUTES``-style list built by ``collector_routes``); each declares its
access (docs/security.md); the server itself, its access rules and its limits are
``collector.readout.http_server``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from collector import json_input
from collector.credentials import TokenFile
from collector.readout.exporter import StoreCollector
from collector.readout.exposition import CONTENT_TYPE, render
from collector.readout.health import HEALTH_PATHS, DatabaseCheck, SchedulerProbe, liveness, readiness
from collector.readout.http_server import Auth, HttpServer, Request, Response, Route
from collector.readout.outage import OutageLog
from collector.readout.snapshot import Detail
from collector.store import Store
from collector.store.alerts import AlertHistory
from collector.store.errors import StoreError
from collector.web_config import BasicAuth, WebConfig, reloading_ssl_context

log = logging.getLogger("collapse_watch.http")
MAX_ALERT_BODY = 4 * 1024 * 1024  # bytes; Alertmanager batches at most a few hundred alerts


def store_registry(
    store: Store,
    intervals: dict[str, float] | None = None,
    max_versions: int | None = None,
    detail: Detail = "summary",
) -> CollectorRegistry:
    """A private registry: the store collector plus the usual process, platform and GC collectors."""
    from collector.readout.snapshot import SnapshotReader, load_snapshot, read_only_store

    reader_store = read_only_store(store)
    reader = SnapshotReader(
        lambda: load_snapshot(
            reader_store, detail=detail, max_versions=max_versions, intervals=intervals, reliability=True
        )
    )
    registry = CollectorRegistry()
    outage = OutageLog(logging.getLogger("collapse_watch.exporter"), "the store for /metrics")
    registry.register(StoreCollector(reader, outage))  # one line per outage, not per scrape
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def alerts_handler(history: AlertHistory) -> Callable[[Request], Response]:
    """``POST /alerts``: store one Alertmanager notification."""

    def handle(request: Request) -> Response:
        try:
            payload = json_input.loads(request.body)
        except ValueError as exc:  # JSONDecodeError, nesting and huge integers included
            return Response.json(400, {"error": f"body is not JSON: {exc}"})
        try:
            stored = history.record(payload)
        except StoreError as exc:
            log.warning("rejected an alert notification: %s", exc)
            return Response.json(400, {"error": str(exc)})
        except RecursionError:
            return Response.json(400, {"error": "body is not a notification: nested too deeply"})
        except Exception as exc:  # the database is unreachable: Alertmanager retries a 5xx
            log.error("cannot store an alert notification: %s", exc)
            return Response.json(503, {"error": "cannot store the notification now"}, **{"Retry-After": "30"})
        return Response.json(200, {"stored": stored})

    return handle


def metrics_handler(registry: CollectorRegistry) -> Callable[[Request], Response]:
    """``GET /metrics`` (``collector.readout.exposition``: the text format, written fast)."""

    def handle(_request: Request) -> Response:
        return Response(200, render([registry]), CONTENT_TYPE)

    return handle


def health_routes(store: Store, scheduler: SchedulerProbe | None = None) -> list[Route]:
    """``GET``/``HEAD`` ``/healthz`` and ``/readyz`` (collector/readout/health.py): open, as kubelet probes expect.

    ``/readyz`` reports the latest result of one background ``DatabaseCheck``: it never waits on
    the database, so a hung database cannot tie up the workers ``/healthz`` needs."""
    check = DatabaseCheck(store)
    answers: dict[str, Callable[[], tuple[int, dict[str, Any]]]] = {
        "/healthz": liveness,
        "/readyz": lambda: readiness(check, scheduler),
    }

    def route(method: str, path: str) -> Route:
        def handle(_request: Request) -> Response:
            status, body = answers[path]()
            return Response.json(status, body, **{"Cache-Control": "no-store"})

        return Route(method, path, handle, "open")

    return [route(m, p) for p in HEALTH_PATHS for m in ("GET", "HEAD")]


def collector_routes(
    store: Store, registry: CollectorRegistry, scheduler: SchedulerProbe | None = None
) -> list[Route]:
    """The collector's routes; add an entry here for a new endpoint (with its access)."""
    return [
        Route("GET", "/metrics", metrics_handler(registry), "read"),
        Route("POST", "/alerts", alerts_handler(AlertHistory(store.engine)), "write", MAX_ALERT_BODY),
        *health_routes(store, scheduler),
    ]


def serve_store_metrics(
    store: Store,
    *,
    host: str,
    port: int,
    intervals: dict[str, float] | None = None,
    max_versions: int | None = None,
    detail: Detail = "summary",
    scheduler: SchedulerProbe | None = None,
    web: WebConfig | None = None,
    alerts_token: str | TokenFile | None = None,
) -> HttpServer:
    """Start serving in a daemon thread; returns the HTTP server (``.server_port``, ``.shutdown()``).

    ``web``: the exporter-toolkit web config (TLS, basic auth; the certificate is reloaded when its
    files change); ``alerts_token``: the bearer token ``POST /alerts`` accepts (docs/security.md;
    a ``TokenFile`` is re-read when the file changes); ``scheduler``: ``collapse-watch run``'s, for
    ``/readyz`` (None: no scheduler to check).
    """
    registry = store_registry(store, intervals, max_versions, detail)
    server = HttpServer(
        (host, port),
        collector_routes(store, registry, scheduler),
        auth=Auth(BasicAuth(web.basic_auth_users) if web and web.basic_auth_users else None, alerts_token),
        tls=reloading_ssl_context(web) if web else None,  # follows a rotated certificate
        extra_headers=dict(web.http_server_config.headers) if web else None,
    )
    threading.Thread(target=server.serve_forever, daemon=True, name="metrics-http").start()
    return server
