"""The `collapse-watch` command line: a package of thin commands that parse their arguments, call
the service or the gate (``collector.service``, ``collector.gate``) and render the result.

One module per command group: ``gate`` (score, compare), ``watch`` (collect, run, serve-metrics),
``history`` (history, report), ``db``, ``demo``, ``dashboards``, ``config``; ``app`` holds the
Typer app, ``--version``, usage errors and ``main()``; ``options`` the options they share. The
commands are registered here, in the order ``--help`` lists them. Importing a command module
imports no metric, store or model code: a command imports what it uses when it runs, so
``--version`` and ``--help`` answer at once.
"""

from __future__ import annotations

from collector.cli import config, dashboards, db, demo, gate, history, watch
from collector.cli.app import app, main

app.command()(gate.score)
app.command()(gate.compare)
app.command()(history.history)
app.command()(watch.collect)
app.command()(watch.run)
app.command("serve-metrics")(watch.serve_metrics)
app.command()(history.report)
app.command()(demo.demo)
app.add_typer(db.db_app, name="db")
app.add_typer(dashboards.dashboards_app, name="dashboards")
app.add_typer(config.config_app, name="config")

__all__ = ["app", "main"]
