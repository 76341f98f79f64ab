"""The /metrics HTTP endpoint: the store's state (read at scrape time) plus this process's own metrics."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from collector.exporter import StoreCollector
from collector.reliability_exporter import ReliabilityCollector
from collector.store import Store


def store_registry(
    store: Store, intervals: dict[str, float] | None = None, max_versions: int = 10
) -> CollectorRegistry:
    """A private registry: the store collector plus the usual process, platform and GC collectors."""
    from collector.snapshot import load_snapshot

    registry = CollectorRegistry()
    registry.register(
        StoreCollector(lambda: load_snapshot(store, max_versions=max_versions, intervals=intervals))
    )
    registry.register(ReliabilityCollector(store))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def serve_store_metrics(
    store: Store, *, host: str, port: int, intervals: dict[str, float] | None = None, max_versions: int = 10
) -> Any:
    """Start serving in a daemon thread; returns the HTTP server (``.server_port``, ``.shutdown()``)."""
    server, _thread = start_http_server(
        port, addr=host, registry=store_registry(store, intervals, max_versions)
    )
    return server
