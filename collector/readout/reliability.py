"""/metrics series for what issue #11 added: quarantined records and blank outputs.

Emits::

    collapse_watch_quarantined_records_total{model,source}   records set aside (never stored as samples)
    collapse_watch_last_run_blank_ratio{model}                blank share of the latest run's outputs

Read from the scrape's one ``Snapshot`` (``collector.readout.snapshot``, loaded with
``reliability=True``), like every other store family: a database error fails that read, so the scrape answers ``collapse_watch_up 0`` without
them, and a busy store serves them from the last good snapshot.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from collector.readout.snapshot import Snapshot


def reliability_families(snap: Snapshot) -> Iterator[Metric]:
    """Quarantine and blank-output series of the snapshot (none when it did not read the counts)."""
    if snap.quarantined is None or snap.blank_ratios is None:
        return
    q = CounterMetricFamily(
        "collapse_watch_quarantined_records",
        "Records of a pull source set aside with their reason (see the quarantine table).",
        labels=["model", "source"],
    )
    for (model, source), n in sorted(snap.quarantined.items()):
        q.add_metric([model, source], float(n))
    yield q
    b = GaugeMetricFamily(
        "collapse_watch_last_run_blank_ratio",
        "Share of blank (empty or whitespace-only) outputs among the latest run's successful outputs.",
        labels=["model"],
    )
    for model, ratio in sorted(snap.blank_ratios.items()):
        b.add_metric([model], ratio)
    yield b
