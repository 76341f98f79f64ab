"""/metrics series for what issue #11 added: quarantined records and blank outputs (read at scrape time).

Emits::

    collapse_watch_quarantined_records_total{model,source}   records set aside (never stored as samples)
    collapse_watch_last_run_blank_ratio{model}                blank share of the latest run's outputs

A database error drops these families from the scrape (and is logged); it never fails the scrape,
whose own health is ``collapse_watch_up`` from the store collector.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from collector.readout.outage import OutageLog
from collector.store import Store

log = logging.getLogger("collapse_watch.exporter")


class ReliabilityCollector(Collector):
    """Quarantine and blank-output series from the store."""

    def __init__(self, store: Store, outage: OutageLog | None = None) -> None:
        self.store = store
        self._outage = outage or OutageLog(log, "quarantine and blank-output counts")

    def collect(self) -> Iterator[Metric]:
        try:
            quarantined = self.store.quarantine_counts()
            blank = self.store.last_run_blank_ratios()
        except Exception as exc:
            self._outage.failed(
                exc, "reliability"
            )  # once per outage (collector.readout.outage), no traceback
            return
        self._outage.ok("reliability")
        q = CounterMetricFamily(
            "collapse_watch_quarantined_records",
            "Records of a pull source set aside with their reason (see the quarantine table).",
            labels=["model", "source"],
        )
        for (model, source), n in sorted(quarantined.items()):
            q.add_metric([model, source], float(n))
        yield q
        b = GaugeMetricFamily(
            "collapse_watch_last_run_blank_ratio",
            "Share of blank (empty or whitespace-only) outputs among the latest run's successful outputs.",
            labels=["model"],
        )
        for model, ratio in sorted(blank.items()):
            b.add_metric([model], ratio)
        yield b
