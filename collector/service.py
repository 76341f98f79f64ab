"""The wiring of a collector, built once from a config: the CLI, the demo and the tests all use it.

``Collector.build(cfg)`` opens (and migrates) the store and builds the embedder, the runner with its
after-run assessment hook, the retention job and the metrics server; ``Collector.serve(stopped)``
is the long-running ``collapse-watch run``: the scheduler (under per-model leases when several
replicas share one PostgreSQL database, see docs/replicas.md), ``/metrics`` and hourly retention,
until ``stopped`` is set.  Nothing here prints; what happened is logged, and verdicts are handed to
an ``on_verdict`` callback for the caller to render.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from collector.config import Config, EmbeddingServerConfig, ModelConfig
from collector.readout.health import SchedulerProbe
from collector.store import Store
from collector.store.leases import Leases
from collector.vocabulary import is_completed

if TYPE_CHECKING:
    from collector.comparison import BatchComparison
    from collector.embeddings import Backend, Embedder
    from collector.runner import Progress, Runner, RunReport
    from collector.scheduler import RunModel
    from collector.scoring import EmbedFn
    from collector.trends import Verdict
    from collector.trends.verdict import Thresholds

log = logging.getLogger("collapse_watch")

STALE_RUN = timedelta(minutes=30)
"""A run still 'running' with no heartbeat for this long belongs to a dead process."""
RETENTION_EVERY_SECONDS = 3600.0
CLOSE_RETRY_SECONDS = 5.0  # how soon a run an outage left open is closed once the database answers


class MetricsPortError(RuntimeError):
    """``/metrics`` could not be served on the configured address (the port is in use, say)."""


OnVerdict = Callable[[str, "Verdict"], None]
"""Called with (model, verdict) after a stored run was assessed."""


def build_embedder(
    model: str = "default",
    server: EmbeddingServerConfig | None = None,
    store: Store | None = None,
    backend: Backend = "auto",
) -> Embedder:
    """The embedder every run and comparison of this process uses: the local model (loaded on first
    use), or the remote ``/v1/embeddings`` server when ``embedding_server`` is configured. With
    ``store``, vectors are stored in the history database once per text (docs/capacity.md)."""
    from collector.remote_embeddings import make_embedder

    return make_embedder(model, server, store, backend)


def open_store(url: str | None) -> Store:
    """The store at ``url`` (resolved as the CLI does), migrated to the latest schema first."""
    from collector.store.migrate import upgrade

    upgrade(url)
    return Store(url)


RETRY_FIRST_SECONDS = 1.0  # the first wait for a database that did not answer at start
RETRY_MOST_SECONDS = 30.0  # the longest, after doubling


def database_down(exc: BaseException, url: str | None) -> bool:
    """Whether ``exc`` (from opening ``url``) is a database server that cannot be reached, or is at
    a revision this build does not ship, rather than a mistake in the configuration: a server
    database only (a SQLite file that cannot be opened is a wrong path, not an outage)."""
    from alembic.util.exc import CommandError
    from sqlalchemy.exc import InterfaceError, OperationalError

    from collector.store.engine import resolve_url

    if resolve_url(url).startswith("sqlite"):
        return False
    return isinstance(exc, (OperationalError, InterfaceError, CommandError))


def open_store_interruptibly(url: str | None, stopped: threading.Event) -> Store | None:
    """``open_store(url)`` in a daemon thread, so the caller (the main thread, where SIGTERM is
    handled) returns None as soon as ``stopped`` is set, even while a connect or a migration
    waits on a database that does not answer. Its error, if any, is raised here."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def attempt() -> None:
        try:
            box["store"] = open_store(url)
        except BaseException as exc:  # handed to the caller
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=attempt, name="open-store", daemon=True).start()
    while not done.wait(0.2):
        if stopped.is_set():
            return None
    if "error" in box:
        raise box["error"]
    return box["store"]  # type: ignore[no-any-return]


def wait_for_database(url: str | None, stopped: threading.Event) -> Store | None:
    """``open_store(url)``, retried with backoff (``RETRY_FIRST_SECONDS`` doubling up to
    ``RETRY_MOST_SECONDS``) while the database is down (``database_down``); each failed try is one
    warning, and each connect is bounded (``collector.store.engine.CONNECT_TIMEOUT_SECONDS``).
    None as soon as ``stopped`` is set, even mid-try. Any other error is raised at once."""
    from collector.store.errors import first_line

    delay = RETRY_FIRST_SECONDS
    attempt = 0
    while not stopped.is_set():
        try:
            store = open_store_interruptibly(url, stopped)
        except Exception as exc:
            if not database_down(exc, url):
                raise
            attempt += 1
            log.warning(
                "database not usable yet (try %d): %s; trying again in %gs", attempt, first_line(exc), delay
            )
        else:
            if store is None:
                break
            if attempt:
                log.info(
                    "database reachable and migrated after %d failed tr%s",
                    attempt,
                    "y" if attempt == 1 else "ies",
                )
            return store
        if stopped.wait(delay):
            break
        delay = min(delay * 2, RETRY_MOST_SECONDS)
    return None


def open_or_wait(url: str | None, stopped: threading.Event, waiting: str) -> Store | None:
    """The store, migrated; a database server that does not answer (``database_down``) is logged
    once with ``waiting`` (what is served meanwhile) and waited for (``wait_for_database``:
    backoff, each connect bounded, ``stopped`` honoured mid-try). None if stopped first; any
    other failure (a configuration error, say) propagates."""
    from collector.store.engine import redact_url, resolve_url
    from collector.store.errors import first_line

    try:
        return open_store_interruptibly(url, stopped)
    except Exception as exc:
        if not database_down(exc, url):
            raise
        log.warning(
            "database %s not usable at start (%s): waiting for it; %s",
            redact_url(resolve_url(url)),
            first_line(exc),
            waiting,
        )
    return wait_for_database(url, stopped)


def open_store_serving(
    cfg: Config, stopped: threading.Event, metrics_port: int | None = None, web_config_file: str | None = None
) -> tuple[Store | None, Any, SchedulerProbe | None]:
    """``run``'s store, migrated, as ``(store or None if stopped, server, probe)`` for
    ``Collector.serve``. A SQLite file is opened at once (no listener yet: ``serve`` starts it). On
    a database server the HTTP server starts first, so /healthz answers 200 and /readyz 503
    ("database": "connecting ..." / "unreachable: ...") however long the database takes
    (``open_or_wait``); if it cannot be opened the server is shut down and the error propagates."""
    from collector.store.engine import resolve_url

    url = cfg.database_url
    if resolve_url(url).startswith("sqlite"):  # a file: nothing to wait for, no listener needed yet
        return open_store(url), None, None
    probe = SchedulerProbe()
    server = start_metrics_server(
        Store(url), cfg, port=metrics_port, scheduler=probe, web_config_file=web_config_file
    )
    try:
        meanwhile = f"{server.url('/readyz', cfg.metrics_host)} answers 503 until it is"
        return open_or_wait(url, stopped, meanwhile), server, probe
    except Exception:
        server.shutdown()
        raise


def assess_after_run(
    store: Store,
    model: str,
    embed: EmbedFn | None = None,
    on_verdict: OnVerdict | None = None,
    max_samples: int | None = None,
    on_compared: Callable[[str, BatchComparison], None] | None = None,
    thresholds: Thresholds | None = None,
    metrics: Sequence[str] | None = None,
) -> Verdict | None:
    """Recompute comparisons, trends and the verdict of ``model`` after a new run was stored
    (``max_samples``: its ``max_scored_samples``, for collected runs; ``on_compared``: see
    :func:`collector.assessment.assess_model`; ``thresholds``: e.g. the model's per-prompt rule;
    ``metrics``: the model's ``metrics:`` setting, the suite its runs scored; None: the default)."""
    from collector.assessment import assess_model

    verdict = assess_model(
        store,
        model,
        embed=embed,
        metrics=metrics,
        max_samples=max_samples,
        on_compared=on_compared,
        thresholds=thresholds,
    )
    if verdict is not None and on_verdict is not None:
        on_verdict(model, verdict)
    return verdict


def after_run_hook(
    store: Store, embed: EmbedFn | None, on_verdict: OnVerdict | None = None
) -> Callable[[ModelConfig, RunReport], None]:
    """The runner's ``on_finished``: after a completed run, set the baseline and assess the model."""

    def on_finished(model: ModelConfig, report: RunReport) -> None:
        if not is_completed(report.status):
            return
        known = [label for label, _ in store.version_order(model.name)]
        if model.baseline_version and model.baseline_version in known:
            store.set_baseline(model.name, model.baseline_version)
        from collector.trends.verdict import Thresholds

        th = Thresholds(
            min_collapsed_prompts=model.min_collapsed_prompts, min_collapsed_share=model.min_collapsed_share
        )
        assess_after_run(
            store,
            model.name,
            embed,
            on_verdict,
            model.max_scored_samples,
            thresholds=th,
            metrics=model.metrics,
        )

    return on_finished


def schedule_intervals(cfg: Config) -> dict[str, float]:
    """Each scheduled model's interval in seconds (the exporter's staleness reference)."""
    from collector.scheduler import interval_seconds

    return {m.name: interval_seconds(m) for m in cfg.models if m.schedule is not None}


def start_metrics_server(
    store: Store,
    cfg: Config | None,
    host: str | None = None,
    port: int | None = None,
    scheduler: SchedulerProbe | None = None,
    web_config_file: str | None = None,
) -> Any:
    """``/metrics`` and ``/alerts`` read from ``store``, on the config's address unless overridden,
    secured by the web config file and the receiver's bearer token (docs/security.md);
    ``/readyz`` checks ``scheduler`` too when given (``run``)."""
    from collector.readout.server import serve_store_metrics

    host = host or (cfg.metrics_host if cfg else "127.0.0.1")
    port = port if port is not None else (cfg.metrics_port if cfg else 9108)
    web, token = listener_security(cfg, web_config_file)
    try:
        return serve_store_metrics(
            store,
            host=host,
            port=port,
            intervals=schedule_intervals(cfg) if cfg else None,
            detail=cfg.metrics_detail if cfg else "summary",
            scheduler=scheduler,
            web=web,
            alerts_token=token,
        )
    except OSError as exc:  # e.g. the port is in use, or the address is not this machine's
        raise MetricsPortError(f"cannot serve /metrics on {host}:{port}: {exc.strerror or exc}") from None


def listener_security(cfg: Config | None, web_config_file: str | None = None) -> tuple[Any, str | None]:
    """The web config (``--web.config.file`` over the config's ``web_config_file``) and the bearer
    token of ``POST /alerts``; ``MetricsPortError`` naming what cannot be used."""
    from collector.credentials import KeyProblem, TokenFile, alerts_token
    from collector.web_config import WebConfigError, load_web_config

    path = web_config_file or (cfg.web_config_file if cfg else None)
    try:
        web = load_web_config(path) if path else None
    except WebConfigError as exc:
        raise MetricsPortError(str(exc)) from None
    try:
        token: Any = alerts_token(cfg) if cfg else None
        if cfg and cfg.alert_receiver.bearer_token_file and not cfg.alert_receiver.bearer_token_env:
            token = TokenFile(cfg.alert_receiver.bearer_token_file)  # re-read when the Secret rotates
    except KeyProblem as exc:
        raise MetricsPortError(f"alert_receiver: {exc}") from None
    return web, token


def leased(
    leases: Leases, run_model: RunModel, on_claimed: Callable[[ModelConfig], object] | None = None
) -> RunModel:
    """``run_model`` under the model's lease: a replica collects a tick only if it wins the claim.

    ``on_claimed(model)`` runs first, once the claim is won (the service reclaims dead replicas'
    runs there, so a run left by a killed replica is closed when a survivor takes over).
    """
    from collector.scheduler import latest_tick

    def job(model: ModelConfig, stop: threading.Event) -> object:
        tick = latest_tick(model)
        with leases.claim(model.name, tick) as mine:
            if not mine:
                log.debug("%s at %s: another replica has it; skipped", model.name, tick.isoformat())
                return None
            log.info("%s at %s: lease taken by %s", model.name, tick.isoformat(), leases.holder)
            if on_claimed is not None:
                on_claimed(model)
            return run_model(model, stop)

    return job


def prune(store: Store, days: int) -> int:
    """The retention job: blank sample text older than ``days`` and drop the embeddings that only
    those texts used; logs and swallows its failure. Returns texts pruned."""
    from collector.store.retention import prune_embeddings, prune_sample_text

    try:
        n = prune_sample_text(store, days)
        n_vectors = prune_embeddings(store, days)
    except Exception:
        log.exception("pruning sample text older than %d days failed", days)
        return 0
    if n or n_vectors:
        log.info(
            "retention: removed the text of %d sample(s) and %d stored embedding(s) older than %d days",
            n,
            n_vectors,
            days,
        )
    return n


@dataclass
class Collector:
    """One collector process's parts, built from its config by ``build``."""

    config: Config
    store: Store
    embedder: Embedder
    runner: Runner
    leases: Leases | None = None  # PostgreSQL: several replicas share the database (docs/replicas.md)

    @classmethod
    def build(
        cls,
        cfg: Config,
        *,
        embedder: Embedder | None = None,
        on_verdict: OnVerdict | None = None,
        store: Store | None = None,
    ) -> Collector:
        """Open and migrate the store, build the embedder and the runner with its after-run hook."""
        from collector.runner import Runner

        store = store or open_store(cfg.database_url)
        embedder = embedder or build_embedder(
            cfg.embedding_model, cfg.embedding_server, store, cfg.embedding_backend
        )
        from collector.credentials import config_secrets

        runner = Runner(
            store,
            embedder,
            on_finished=after_run_hook(store, embedder, on_verdict),
            secrets=config_secrets(cfg),
        )
        return cls(cfg, store, embedder, runner, Leases.for_url(cfg.database_url))

    def mark_interrupted(self) -> int:
        """Close runs left 'running' by a dead owner process (gone, or no heartbeat for ``STALE_RUN``)."""
        marked = self.store.reclaim_orphaned_runs(STALE_RUN)
        if marked:
            log.warning("marked %d run(s) left running by a previous process as interrupted", marked)
        return marked

    def retry_closes(self) -> threading.Thread | None:
        """Retry, in a daemon thread, the closes a database outage refused (a connect to a
        database that does not answer can block for minutes; the caller must stay responsive)."""
        if not self.runner.pending_closes():
            return None
        t = threading.Thread(target=self.runner.close_pending, name="close-runs", daemon=True)
        t.start()
        return t

    def settle_runs(self) -> None:
        """Close the runs a database outage left open, once more before exiting (waiting at most
        ``shutdown_grace_seconds``); what still cannot be closed is named, and marked
        ``interrupted`` at the next start (``mark_interrupted``)."""
        if (t := self.retry_closes()) is not None:
            t.join(self.config.shutdown_grace_seconds)
        if left := self.runner.pending_closes():
            log.warning(
                "run(s) %s could not be closed (database unreachable); the next start marks them interrupted",
                ", ".join(map(str, left)),
            )

    def collect(self, name: str, progress: Progress | None = None) -> list[RunReport]:
        """One run of model ``name`` now (pull sources: one per version seen).

        With leases it first waits until no replica is running the model, so it never overlaps one.
        """
        if self.leases is None:
            return self.runner.run(self.config.model(name), progress=progress)
        with self.leases.hold(name):
            return self.runner.run(self.config.model(name), progress=progress)

    def start_metrics_server(
        self,
        host: str | None = None,
        port: int | None = None,
        scheduler: SchedulerProbe | None = None,
        web_config_file: str | None = None,
    ) -> Any:
        return start_metrics_server(
            self.store,
            self.config,
            host=host,
            port=port,
            scheduler=scheduler,
            web_config_file=web_config_file,
        )

    def prune(self) -> int:
        """Run the retention job if the config asks for one."""
        days = self.config.retention_days
        return prune(self.store, days) if days else 0

    def serve(
        self,
        stopped: threading.Event,
        *,
        metrics_port: int | None = None,
        web_config_file: str | None = None,
        job: RunModel | None = None,
        on_started: Callable[[list[str], Any], None] | None = None,
        server: Any = None,
        probe: SchedulerProbe | None = None,
    ) -> bool:
        """``collapse-watch run``: schedule every model, serve /metrics, prune hourly, until ``stopped``.

        On SQLite it first takes the file's run lock (``AlreadyCollecting`` if another process
        holds it); on PostgreSQL every scheduled run goes through the model's lease.

        ``job`` replaces the plain scheduled run (the demo's deployments); ``on_started(models,
        server)`` is called once the scheduler and the server are up. ``server`` and ``probe``: a
        metrics server already started (``run`` starts one first when the database was down at
        start, so the probes answer meanwhile) and the scheduler probe its ``/readyz`` checks.

        Once ``stopped`` is set, runs in flight get ``shutdown_grace_seconds`` to finish; a run
        still blocked then is marked interrupted and ``False`` is returned: the caller should end
        the process without waiting for the blocked thread (``True``: everything stopped cleanly).
        """
        from collector.scheduler import CollectorScheduler
        from collector.store.run_lock import single_collector

        with single_collector(self.config.database_url):  # SQLite: one collector per file
            self.mark_interrupted()
            run_model = job or (lambda m, stop: self.runner.run(m, stop))
            if self.leases is not None:
                run_model = leased(self.leases, run_model, on_claimed=lambda _m: self.mark_interrupted())
            if server is None or probe is None:
                probe = SchedulerProbe()  # /readyz: not ready until the scheduler runs
                server = self.start_metrics_server(
                    port=metrics_port, scheduler=probe, web_config_file=web_config_file
                )
            sched = CollectorScheduler(self.config, run_model, aligned=self.leases is not None)
            try:
                sched.start()
                probe.attach(sched)
                log.info(
                    "collecting %s%s; /metrics on %s",
                    ", ".join(sched.model_names) or "nothing (no model has a schedule)",
                    f" under leases as replica {self.leases.holder}" if self.leases else "",
                    server.url("/metrics", self.config.metrics_host),
                )
                if on_started is not None:
                    on_started(sched.model_names, server)
                next_prune = time.monotonic() + RETENTION_EVERY_SECONDS
                while not stopped.wait(CLOSE_RETRY_SECONDS):
                    self.retry_closes()  # runs a database outage left open
                    if time.monotonic() >= next_prune:
                        self.prune()
                        next_prune = time.monotonic() + RETENTION_EVERY_SECONDS
                grace = self.config.shutdown_grace_seconds
                clean = sched.stop_within(grace)
                self.settle_runs()
                if not clean:  # a run still blocked: mark it, and let the caller exit without it
                    n = self.runner.abandon_active(
                        f"collector stopped: the run did not finish within the {grace:g}s grace"
                    )
                    log.warning("stopped after %gs grace; %d run(s) in progress marked interrupted", grace, n)
            finally:
                sched.stop(wait=False)
                server.shutdown()
        log.info("stopped")
        return clean
