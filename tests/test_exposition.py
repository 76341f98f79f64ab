"""The fast text exposition writes exactly what prometheus_client's generate_latest writes."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.process_collector import ProcessCollector
from test_exporter import registry_for, snapshot

from collector.readout.exposition import render
from collector.readout.snapshot import Snapshot
from collector.store.overview import ValueRow

VOLATILE = ("process_", "python_gc_", "collapse_watch_scrape_duration_seconds ")


def lines(text: bytes) -> list[str]:
    """The exposition's lines, the values of samples that change between two calls masked."""
    return [ln.rsplit(" ", 1)[0] if ln.startswith(VOLATILE) else ln for ln in text.decode().splitlines()]


def test_render_matches_generate_latest_for_every_family() -> None:
    for detail in ("full", "summary"):
        reg = registry_for(lambda detail=detail: snapshot(detail))
        ProcessCollector(registry=reg)
        GCCollector(registry=reg)
        assert lines(render([reg])) == lines(generate_latest(reg))


def test_label_values_are_escaped_like_the_reference() -> None:
    odd = 'a "quoted"\\model\nwith a newline'
    snap = Snapshot(values=[ValueRow(odd, "v1", "distinct_2", "within", 1e16, float("inf"), -0.0)])
    snap.versions = []
    reg = registry_for(lambda: snap)
    assert lines(render([reg])) == lines(generate_latest(reg))
    assert CollectorRegistry  # the private registry type the server renders
