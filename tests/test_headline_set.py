"""What the readers show of the headline set (collector.vocabulary.HEADLINE_METRICS): the terminal's
fleet table has a column for each of the five (it had four) and the model dashboard's metric
variable selects them by default.  That each reader holds the floor's object, and that no module
writes the set out again, is tests/test_vocabulary.py's."""

from __future__ import annotations

from rich.console import Console

from collector import vocabulary
from collector.grafana import dashboards
from collector.readout.snapshot import Snapshot
from collector.render import tables


def test_the_fleet_table_shows_every_headline_metric() -> None:
    console = Console(width=400, record=True)
    console.print(tables.fleet_table(Snapshot()))
    header = console.export_text()
    for metric in vocabulary.HEADLINE_METRICS:
        assert metric.replace("_", " ") in header, metric


def test_the_dashboards_metric_variable_defaults_to_the_headline_set() -> None:
    [metric] = [v for v in dashboards.model_dashboard()["templating"]["list"] if v["name"] == "metric"]
    assert metric["current"]["value"] == list(vocabulary.HEADLINE_METRICS)
