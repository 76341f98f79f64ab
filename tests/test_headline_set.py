"""The headline set is defined once (collector.vocabulary) and the /metrics readout, the terminal's
fleet table, the report and the Grafana generator all use that object (issue #21: they had three
different memberships and each side's own tests passed)."""

from __future__ import annotations

import ast
from pathlib import Path

from rich.console import Console

from collector import vocabulary
from collector.grafana import board, dashboards, overview
from collector.readout import exporter
from collector.readout.snapshot import Snapshot
from collector.render import tables
from collector.report import html

ROOT = Path(__file__).resolve().parents[1] / "collector"
READERS = ("readout", "render", "report", "grafana")


def test_every_reader_uses_the_vocabulary_object() -> None:
    for module in (exporter, tables, html, dashboards, board, overview):
        assert module.HEADLINE_METRICS is vocabulary.HEADLINE_METRICS, module.__name__


def test_no_reader_writes_the_headline_metrics_out_again() -> None:
    """A literal naming two or more headline metrics is a second definition waiting to drift."""
    headline = set(vocabulary.HEADLINE_METRICS)
    found = []
    for folder in READERS:
        for path in sorted((ROOT / folder).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                    names = {e.value for e in node.elts if isinstance(e, ast.Constant)}
                    if len(names & headline) >= 2:
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found, found


def test_the_fleet_table_shows_every_headline_metric() -> None:
    console = Console(width=400, record=True)
    console.print(tables.fleet_table(Snapshot()))
    header = console.export_text()
    for metric in vocabulary.HEADLINE_METRICS:
        assert metric.replace("_", " ") in header, metric


def test_the_dashboards_metric_variable_defaults_to_the_headline_set() -> None:
    [metric] = [v for v in dashboards.model_dashboard()["templating"]["list"] if v["name"] == "metric"]
    assert metric["current"]["value"] == list(vocabulary.HEADLINE_METRICS)
