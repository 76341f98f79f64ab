"""Grafana dashboards for collapse-watch, built as plain dicts (pure: no I/O outside ``main``).

Three dashboards, with stable uids so links and provisioning survive regeneration:

* ``collapse-watch-overview``: the verdict of every model's latest version, each headline metric's
  change vs baseline (worst first), the worst declines over all metrics;
* ``collapse-watch-model``: one model, each selected metric across versions with its 95% interval,
  the change vs baseline and vs the previous version, trend slopes, recent runs;
* ``collapse-watch-health``: the collector itself: runs by status, failures, samples, sample errors,
  age of the last success, run-duration quantiles, exporter health.

Every metric name used here is part of the contract in ``docs/metrics.md``; changes and
slopes are in diversity orientation (negative = less diverse). Regenerate the committed JSON with::

    python -m collector.grafana.dashboards --out dashboards/grafana/dashboards
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

from collector.grafana.health import health_dashboard
from collector.grafana.model import model_dashboard
from collector.grafana.overview import overview_dashboard
from collector.grafana.panels import UIDS, Dashboard, Panel
from collector.vocabulary import HEADLINE_METRICS

__all__ = [
    "HEADLINE_METRICS",
    "UIDS",
    "Dashboard",
    "Panel",
    "all_dashboards",
    "health_dashboard",
    "iter_panels",
    "main",
    "model_dashboard",
    "overview_dashboard",
    "render",
    "write_dashboards",
]


def all_dashboards() -> dict[str, Dashboard]:
    """Every dashboard keyed by its uid."""
    return {d["uid"]: d for d in (overview_dashboard(), model_dashboard(), health_dashboard())}


def iter_panels(dashboard: Dashboard) -> Iterator[Panel]:
    """Every panel of a dashboard, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def render(dashboard: Dashboard) -> str:
    """The dashboard's committed JSON text (stable key order, trailing newline)."""
    return json.dumps(dashboard, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_dashboards(out: Path) -> list[Path]:
    """Write ``<uid>.json`` for every dashboard into ``out``; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for uid, dashboard in all_dashboards().items():
        path = out / f"{uid}.json"
        path.write_text(render(dashboard), encoding="utf-8")
        paths.append(path)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m collector.grafana.dashboards --out DIR``: write the dashboards' JSON files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("dashboards/grafana/dashboards"))
    args = parser.parse_args(argv)
    for path in write_dashboards(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
