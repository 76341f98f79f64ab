"""`demo`: watch a real model collapse. ``collector.demo`` runs it through the service; this module
shows it: the phases as they go, the live fleet table, and the result with what to try next."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.text import Text

from collector.cli.app import err, fail, out

if TYPE_CHECKING:
    from rich.live import Live

    from collector.demo import DemoResult


# The SQL the demo suggests trying on its database (tests/test_demo.py runs each).
TRY_QUERIES = (
    "SELECT model, version, metric, scope, value FROM v_latest_metrics "
    "WHERE metric='distinct_2' ORDER BY model, version_ordinal",
    "SELECT model, version, metric, scope, relative_change FROM v_metric_vs_baseline "
    "ORDER BY relative_change LIMIT 10",
)


def demo(
    directory: Annotated[
        Path, typer.Option("--dir", help="Where the demo writes its database and report.")
    ] = Path("collapse-watch-demo"),
    port: Annotated[
        int, typer.Option(help="Port of /metrics while the demo runs (0: any free port).")
    ] = 9108,
    versions: Annotated[Optional[int], typer.Option(min=2, help="Deploy only the first N versions.")] = None,
) -> None:
    """Watch a real model collapse: the whole product on embedded defaults, in a few minutes."""
    from rich.live import Live

    from collector.demo import COLLAPSING, CONTROL, DemoOptions, run_demo

    phases: dict[str, float] = {}
    started = time.monotonic()

    @contextmanager
    def timer(name: str) -> Iterator[None]:
        t0 = time.monotonic()
        err.print(f"[bold]▶ {name}[/] …")
        yield
        phases[name] = time.monotonic() - t0
        err.print(f"  done in {phases[name]:.1f}s", highlight=False, markup=False)

    opts = DemoOptions(directory=directory.resolve(), port=port, versions=versions)
    with Live(console=out, refresh_per_second=4, transient=False, auto_refresh=out.is_terminal) as live:
        try:
            result = run_demo(opts, timer=timer, on_update=live_fleet(live))
        except Exception as exc:
            raise fail(f"the demo failed: {type(exc).__name__}: {exc}", code=1) from None
    print_result(result, port)
    timings = ", ".join(f"{k} {v:.1f}s" for k, v in phases.items())
    plain(f"\nTook {time.monotonic() - started:.0f}s: {timings}.", soft_wrap=True)
    if result.verdicts.get(COLLAPSING) != "collapse_suspected" or result.verdicts.get(CONTROL) != "ok":
        raise typer.Exit(1)


def live_fleet(live: Live) -> Any:
    """``on_update(snapshot, status)``: the fleet table, redrawn; off a terminal printed once per change."""
    from collector.render.tables import fleet_table

    last: dict[str, object] = {"key": None}

    def on_update(snapshot: Any, status: str) -> None:
        live.update(fleet_table(snapshot, title=f"collapse-watch demo — {status}"))
        key = tuple((v.model, v.version, v.verdict) for v in snapshot.versions)
        if not out.is_terminal and key != last["key"]:  # plain logs: print each change once
            last["key"] = key
            live.refresh()

    return on_update


def plain(text: str, *, soft_wrap: bool = False) -> None:
    out.print(text, highlight=False, markup=False, soft_wrap=soft_wrap)


def print_result(result: DemoResult, port: int) -> None:
    """Each model's verdict and reasons, then where the history is and what to try with it."""
    from collector.demo import COLLAPSING, CONTROL
    from collector.render.tables import VERDICT_STYLE

    out.print()
    out.rule("result")
    for model in (COLLAPSING, CONTROL):
        status = result.verdicts.get(model, "unknown")
        out.print(Text.assemble((model, "bold"), ": ", (status, VERDICT_STYLE.get(status, ""))))
        for reason in result.reasons.get(model, [])[:6]:
            plain(f"  • {reason}")
    db = result.database
    plain(f"\nHistory (SQLite): {db}")
    plain("  Try:")
    for query in TRY_QUERIES:
        plain(f'    sqlite3 {db} "{query}"', soft_wrap=True)
    plain(f"/metrics was served at {result.metrics_url} while the demo ran; serve it again with:")
    plain(f"    collapse-watch serve-metrics --database-url sqlite:///{db} --port {port}", soft_wrap=True)
    plain(
        "Point the bundled stack at it: run serve-metrics as above on port 9108, add "
        '"host.docker.internal:9108" to the targets of the collapse-watch job in '
        "dashboards/prometheus/prometheus.yml, and `docker compose up -d prometheus alertmanager grafana` "
        "(Grafana on http://localhost:3000; see README).",
        soft_wrap=True,
    )
    if result.report:
        plain(f"Report: {result.report}")
