"""`collect`, `run` and `serve-metrics`: the collector's commands, over ``collector.service``."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.text import Text

from collector.cli.app import err, fail, out, print_verdict, usage_errors
from collector.cli.options import ConfigFile, DatabaseUrl, WebConfigFile
from collector.gate import open_history, redact, refuse_missing_file, resolve_url
from collector.vocabulary import EXIT_USAGE, is_completed

if TYPE_CHECKING:
    import threading

    from collector.config import Config
    from collector.service import Collector
    from collector.store import Store

log = logging.getLogger("collapse_watch")


def load_config_or_fail(path: Path) -> Config:
    from collector.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"{path}: cannot read the configuration ({exc.strerror})") from None


def build_collector(cfg: Config, store: Store | None = None) -> Collector:
    """The configured collector (store migrated, embedder, runner), or a usage error naming the database."""
    from collector.remote_embeddings import EmbeddingError
    from collector.service import Collector

    store = store or open_history(cfg.database_url)
    try:
        return Collector.build(cfg, store=store, on_verdict=print_verdict)
    except EmbeddingError as exc:  # e.g. the embedding server's key variable is unset
        raise fail(str(exc)) from None


@usage_errors
def collect(
    config: ConfigFile,
    model: Annotated[
        Optional[list[str]], typer.Option("--model", "-m", help="Only this model (repeatable).")
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", hidden=True, help="Accepted for old scripts; collect always runs once.")
    ] = True,
) -> None:
    """Collect one run of every configured model (or --model) now, store it and exit (`run` keeps
    collecting on the schedules).

    A source whose first 8 requests all fail fails its run early. Off a terminal, progress is
    printed as plain lines. Exit status 0 when every run stored metrics, 1 when a run failed (or
    found no data), 2 on a usage error.
    """
    from collector.render.progress import progress_bar
    from collector.render.tables import runs_table

    cfg = load_config_or_fail(config)
    setup_logging(logging.WARNING, cfg)
    wanted = model or cfg.model_names
    unknown = sorted(set(wanted) - set(cfg.model_names))
    if unknown:
        raise fail(f"no model named {', '.join(unknown)} in {config} (models: {', '.join(cfg.model_names)})")
    collector = build_collector(cfg)
    collector.mark_interrupted()
    reports = []
    for name in wanted:
        with progress_bar(f"sampling {name}", console=err) as update:
            reports += collector.collect(name, progress=update)
    collector.settle_runs()
    out.print(runs_table(reports))
    raise typer.Exit(1 if any(not is_completed(r.status) for r in reports) else 0)  # failed, no data


@usage_errors
def run(
    config: ConfigFile,
    metrics_port: Annotated[
        Optional[int],
        typer.Option(min=0, max=65535, help="Port of /metrics (default: the config's; 0: any free port)."),
    ] = None,
    web_config_file: WebConfigFile = None,
) -> None:
    """Run the collector: every model on its schedule, and /metrics for Prometheus, until stopped.

    On PostgreSQL several replicas may run with one config (each model tick is collected once, see
    docs/replicas.md); on SQLite a second `run` on the same file is refused (exit 2).  A config that
    can never collect (an unset key variable, an empty probe file, an address not on this machine, a
    missing checkpoint) is refused before the database is touched (exit 2; `config check` lists it).
    A database server that does not answer at start (or is at a revision this build does not ship)
    is waited for, with backoff, while /healthz answers 200 and /readyz 503 saying why.
    SIGTERM, SIGINT and SIGHUP stop it gracefully (runs in flight get `shutdown_grace_seconds`).
    """
    import signal
    import threading

    from collector.service import MetricsPortError, listener_security
    from collector.store.run_lock import AlreadyCollecting

    cfg = load_config_or_fail(config)
    setup_logging(logging.INFO, cfg)
    refuse_fatal_problems(config, cfg)
    web = str(web_config_file) if web_config_file else None
    try:
        listener_security(cfg, web)
    except MetricsPortError as exc:
        raise fail(str(exc)) from None
    stopped = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("received %s: finishing runs in progress, then stopping", signal.Signals(signum).name)
        stopped.set()

    for sig in (
        signal.SIGTERM,
        signal.SIGINT,
        signal.SIGHUP,
    ):  # SIGHUP: a graceful stop (docs/reliability.md)
        signal.signal(sig, on_signal)
    store, server, probe = open_store_or_wait(cfg, stopped, metrics_port, web)
    if store is None:  # stopped while the database was down (a try may still be blocked: no joining it)
        server.shutdown()
        log.info("stopped")
        logging.shutdown()
        os._exit(0)
    collector = build_collector(cfg, store)
    try:
        collector.serve(stopped, metrics_port=metrics_port, web_config_file=web, server=server, probe=probe)
    except (AlreadyCollecting, MetricsPortError) as exc:
        raise fail(str(exc)) from None
    # Everything is stored (a run still blocked was marked interrupted). Skip interpreter
    # finalisation: seconds of garbage collection with torch loaded, and joining any thread still
    # blocked in a request; the shutdown grace is a bound on the exit.
    collector.store.engine.dispose()
    logging.shutdown()
    os._exit(0)


def open_store_or_wait(
    cfg: Config, stopped: threading.Event, metrics_port: int | None, web: str | None
) -> tuple[Store | None, Any, Any]:
    """``run``'s store (``service.open_store_serving``); a port or database problem exits 2."""
    from collector import service

    try:
        return service.open_store_serving(cfg, stopped, metrics_port, web)
    except service.MetricsPortError as exc:
        raise fail(str(exc)) from None
    except Exception as exc:
        raise fail(f"cannot open the database {redact(resolve_url(cfg.database_url))}: {exc}") from None


@usage_errors
def serve_metrics(
    host: Annotated[
        Optional[str],
        typer.Option(help="Interface to listen on (default: the config's metrics_host, else 127.0.0.1)."),
    ] = None,
    port: Annotated[
        Optional[int],
        typer.Option(
            min=0, max=65535, help="Port of /metrics (default: the config's metrics_port, else 9108)."
        ),
    ] = None,
    web_config_file: WebConfigFile = None,
    config: Annotated[
        Optional[Path], typer.Option("--config", "-c", help="Config (for the database URL and schedules).")
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Serve /metrics from the database alone, for setups where collection runs elsewhere.

    A database server that does not answer at start is retried with backoff in the background
    while /metrics, /healthz and /readyz (503 until it answers and is migrated) are served.
    SIGTERM, SIGINT and SIGHUP end it at once (exit 0)."""
    import signal
    import threading

    from collector import service
    from collector.config import valid_host

    cfg = load_config_or_fail(config) if config else None
    url = database_url or (cfg.database_url if cfg else None)
    setup_logging(logging.INFO, cfg)
    web = str(web_config_file) if web_config_file else None
    try:
        host = valid_host(host or (cfg.metrics_host if cfg else "127.0.0.1"))
        service.listener_security(
            cfg, web
        )  # a bad web config or token is refused before the database is opened
    except (ValueError, service.MetricsPortError) as exc:
        raise fail(str(exc)) from None
    refuse_missing_file(url)
    stopped = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        stopped.set()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    local = resolve_url(url).startswith("sqlite")
    # a server database: listen first, open (and wait for) the database in the background
    from collector.store import Store

    store = open_history(url) if local else Store(url)
    try:
        server = service.start_metrics_server(store, cfg, host=host, port=port, web_config_file=web)
    except service.MetricsPortError as exc:
        raise fail(str(exc)) from None
    log.info("serving %s from %s", server.url("/metrics", host), redact(resolve_url(url)))
    if not local:
        threading.Thread(target=open_in_background, args=(url, stopped), name="wait-db", daemon=True).start()
    stopped.wait()
    server.shutdown()
    log.info("stopped")
    logging.shutdown()
    os._exit(0)


def open_in_background(url: str | None, stopped: threading.Event) -> None:
    """``serve-metrics``' database: migrated, waited for while it does not answer (logged once at
    start, then once per try), or the process ends (exit 2) on a configuration error."""
    from collector import service

    try:
        if service.open_or_wait(url, stopped, "/readyz answers 503 until it is") is not None:
            log.info("database open and migrated")
    except Exception as exc:
        err.print(Text(f"error: cannot open the database {redact(resolve_url(url))}: {exc}"), highlight=False)
        logging.shutdown()
        os._exit(EXIT_USAGE)


def setup_logging(level: int = logging.INFO, cfg: Config | None = None) -> None:
    """Log lines on stderr, with every credential the config names redacted (collector.redaction)."""
    from collector.credentials import config_secrets
    from collector.redaction import redact_logs

    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    redact_logs(config_secrets(cfg) if cfg is not None else [])


def refuse_fatal_problems(path: Path, cfg: Config) -> None:
    """Exit 2 listing what can never succeed (``collector.preflight``), before the database is touched."""
    from collector.preflight import environment_problems

    problems = environment_problems(cfg)
    for p in problems:
        if p.warning:  # e.g. a listener open beyond this machine without authentication
            logging.getLogger("collapse_watch").warning("%s: %s", path, p.text)
    fatal = [p.text for p in problems if p.fatal]
    if fatal:
        raise fail(
            f"{path}: {len(fatal)} problem(s) no run can get past (see `config check`):\n  "
            + "\n  ".join(fatal)
        )
