"""`history` and `report`: what the database holds about a model, as a table or an HTML report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from collector.cli.app import fail, out, usage_errors
from collector.cli.options import DatabaseUrl
from collector.gate import open_history, redact, resolve_url, stored_name
from collector.vocabulary import SCOPES

if TYPE_CHECKING:
    from collector.store import Store


@usage_errors
def history(
    model: Annotated[str, typer.Argument(help="Model name as stored.")],
    scope: Annotated[str, typer.Option(help="within or across.")] = "within",
    database_url: DatabaseUrl = None,
) -> None:
    """Print a metric-by-version table of a model's stored values, the change of each version vs the
    baseline (pp for rates, × for other metrics) and the trend over the last versions."""
    from rich import box
    from rich.table import Table

    from collector.render import cell
    from collector.render.history import history_table
    from collector.render.tables import VERDICT_STYLE

    if scope not in SCOPES:
        raise fail(f"--scope must be 'within' or 'across', got {scope!r}")
    model = stored_name(model)
    from collector.store.errors import StoreError

    store = open_history(database_url, must_exist=True)
    try:
        columns, rows = history_table(store, model, scope)
    except StoreError as exc:  # e.g. no such model
        raise fail(f"{exc} in {redact(resolve_url(database_url))}") from None
    if not rows:
        raise fail(f"no stored metric values for model {model!r} in {redact(resolve_url(database_url))}")
    title = cell(f"{model}: {scope} values by version", limit=400)
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for i, col in enumerate(columns):  # version labels as headers: plain text, never markup
        table.add_column(cell(col), justify="left" if i == 0 else "right")
    for i, row in enumerate(rows):
        if row[0] == "prompts collapsed" or (row[0] == "verdict" and rows[i - 1][0] != "prompts collapsed"):
            table.add_section()
        if row[0] == "verdict":
            table.add_row(cell(row[0]), *(cell(v, style=VERDICT_STYLE.get(v or "", "")) for v in row[1:]))
        else:
            table.add_row(*(cell(c) for c in row))
    out.print(table)
    print_collapsed_prompts(store, model)
    print_alert_history(store, model)


def print_collapsed_prompts(store: Store, model: str) -> None:
    """The prompts that collapsed in the newest version that has any (text as data, one line each)."""
    from collector.render.history import collapsed_prompts
    from collector.trends.prompts import shorten

    version, rows = collapsed_prompts(store, model)
    if not rows:
        return
    out.print(Text(f"collapsed prompts in {version} (vs the baseline):"))
    for key, text, change in rows:
        label = f'"{shorten(text, 80)}" ({shorten(key, 60)})' if text else shorten(key, 60)
        out.print(Text(f"  • {label}: {change}"))


def print_alert_history(store: Store, model: str, limit: int = 20) -> None:
    """The model's latest alert notifications (the collector's webhook stored them), if any."""
    from collector.render.alerts import alert_table
    from collector.store.alerts import AlertHistory

    events = AlertHistory(store.engine).recent(model, limit=limit)
    if events:
        out.print(alert_table(model, events))


@usage_errors
def report(
    model: Annotated[str, typer.Argument(help="Model name as stored.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for <model>.html.")] = Path("report"),
    database_url: DatabaseUrl = None,
) -> None:
    """Write a self-contained HTML report: metrics across versions with intervals, verdict, samples."""
    from collector.report.load import ReportError, write_report

    model = stored_name(model)
    store = open_history(database_url, must_exist=True)
    try:
        path = write_report(store, model, out_dir)
    except ReportError as exc:
        raise fail(str(exc)) from None
    out.print(f"wrote {path}", highlight=False, markup=False)
