"""The alert history as a table: what Alertmanager told the collector's webhook about a model."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from rich import box
from rich.table import Table

from collector.render import cell

if TYPE_CHECKING:
    from collector.store.alerts import AlertEvent

STATUS_STYLE = {"firing": "red", "resolved": "green"}
SUMMARY_LIMIT = 300  # characters of a summary in the terminal (the database keeps it whole)


def _when(t: datetime | None) -> str:
    return "" if t is None else t.strftime("%Y-%m-%d %H:%M:%S")


def alert_table(model: str, events: list[AlertEvent]) -> Table:
    """Newest first: when received, alert, version, severity, firing/resolved, since, summary."""
    table = Table(
        title=cell(f"{model}: alerts received", limit=400), title_justify="left", box=box.SIMPLE_HEAD
    )
    for col in ("received (UTC)", "alert", "version", "severity", "status", "since"):
        table.add_column(col, no_wrap=True)
    table.add_column("summary", overflow="fold")
    for e in events:
        table.add_row(  # every cell as data: never markup, controls visible, long text cut
            _when(e.received_at),
            cell(e.alertname),
            cell(e.version),
            cell(e.severity),
            cell(e.status, style=STATUS_STYLE.get(e.status, "")),
            _when(e.starts_at),
            cell(e.summary, limit=SUMMARY_LIMIT),
        )
    return table
