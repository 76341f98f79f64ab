"""The alert history as a table: what Alertmanager told the collector's webhook about a model."""

from __future__ import annotations

from datetime import datetime

from rich import box
from rich.table import Table
from rich.text import Text

from collector.store.alerts import AlertEvent

STATUS_STYLE = {"firing": "red", "resolved": "green"}


def _when(t: datetime | None) -> str:
    return "" if t is None else t.strftime("%Y-%m-%d %H:%M:%S")


def alert_table(model: str, events: list[AlertEvent]) -> Table:
    """Newest first: when received, alert, version, severity, firing/resolved, since, summary."""
    table = Table(title=Text(f"{model}: alerts received"), title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("received (UTC)", "alert", "version", "severity", "status", "since"):
        table.add_column(col, no_wrap=True)
    table.add_column("summary", overflow="fold")
    for e in events:
        table.add_row(  # every cell as Text: labels and annotations are never parsed as markup
            _when(e.received_at),
            Text(e.alertname),
            Text(e.version or ""),
            Text(e.severity or ""),
            Text(e.status, style=STATUS_STYLE.get(e.status, "")),
            _when(e.starts_at),
            Text(e.summary or ""),
        )
    return table
