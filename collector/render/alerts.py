"""The alert history as a table: what Alertmanager told the collector's webhook about a model."""

from __future__ import annotations

from datetime import datetime

from rich import box
from rich.table import Table

from collector.store.alerts import AlertEvent

STATUS_STYLE = {"firing": "red", "resolved": "green"}


def _when(t: datetime | None) -> str:
    return "" if t is None else t.strftime("%Y-%m-%d %H:%M:%S")


def alert_table(model: str, events: list[AlertEvent]) -> Table:
    """Newest first: when received, alert, version, severity, firing/resolved, since, summary."""
    table = Table(title=f"{model}: alerts received", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("received (UTC)", "alert", "version", "severity", "status", "since"):
        table.add_column(col, no_wrap=True)
    table.add_column("summary", overflow="fold")
    for e in events:
        style = STATUS_STYLE.get(e.status, "")
        table.add_row(
            _when(e.received_at),
            e.alertname,
            e.version or "",
            e.severity or "",
            f"[{style}]{e.status}[/]",
            _when(e.starts_at),
            e.summary or "",
        )
    return table
