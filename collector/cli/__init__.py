"""The `collapse-watch` command line: parses arguments, calls services, renders results.

Exit codes: 0 success; 1 the check failed (e.g. collapse suspected); 2 usage or input error;
`compare` also 3 watch and 4 inconclusive (the data cannot support a decision).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from collector.comparison import ScoredBatch
from collector.inputs import InputError, Record, read_records
from collector.metrics.registry import metric_names, needs_embeddings
from collector.metrics.result import SuiteResult
from collector.metrics.suite import DEFAULT_BOOTSTRAP, DEFAULT_SEED
from collector.render import SafeConsole, cell
from collector.render.progress import progress_bar
from collector.render.tables import (
    VERDICT_STYLE,
    comparison_json,
    comparison_table,
    suite_json,
    suite_table,
)
from collector.scoring import EmbedFn, score_batch

if TYPE_CHECKING:
    import threading

    from collector.config import Config
    from collector.embeddings import Embedder, EmbeddingIdentity
    from collector.service import Collector
    from collector.store import Store
    from collector.trends import Verdict

app = typer.Typer(
    name="collapse-watch",
    help="Watch deployed language models for model collapse: loss of output diversity across versions.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)
# Off a terminal (CI logs, pipes) tables get room instead of being cut at 80-120 columns.
# SafeConsole: outside text never reaches the terminal with a raw control character (render/__init__).
out = SafeConsole(width=None if sys.stdout.isatty() else int(os.environ.get("COLUMNS") or 200))
err = SafeConsole(stderr=True, soft_wrap=True)

EXIT_USAGE = 2


# The store (SQLAlchemy) is imported by the commands that use a database, not at start-up: a
# file-only `score` / `compare --no-embeddings` never pays for it.
def resolve_url(explicit: str | None = None) -> str:
    from collector.store.engine import resolve_url as resolve

    return resolve(explicit)


def redact(url: str) -> str:
    from collector.store.engine import redact_url

    return redact_url(url)


EmbeddingBackend = Annotated[
    str,
    typer.Option(
        help="Local embedding engine and precision: auto (OpenVINO bf16 where installed and native, "
        "else torch bf16/fp32), openvino, bf16 (torch) or fp32 (plain sentence-transformers)."
    ),
]
NoCache = Annotated[
    bool,
    typer.Option(
        "--no-cache",
        help="Do not read or write the local vector cache (vectors.sqlite in the user's cache dir).",
    ),
]
DatabaseUrl = Annotated[
    Optional[str],
    typer.Option(
        "--database-url",
        help="SQLAlchemy URL; else COLLAPSE_WATCH_DATABASE_URL, else sqlite:///collapse-watch.db.",
        show_default=False,
    ),
]


def show_version(value: bool) -> None:
    if value:
        from collector import __version__

        out.print(f"collapse-watch {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=show_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Watch deployed language models for model collapse: loss of output diversity across versions."""


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    err.print(Text.assemble(("error:", "bold red"), " ", message), highlight=False)
    return typer.Exit(code)


def parse_metric_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [n.strip() for n in value.split(",") if n.strip()]
    known = set(metric_names())
    unknown = [n for n in names if n not in known]
    if unknown:
        raise fail(f"unknown metric(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return names


@app.command()
def score(
    file: Annotated[Path, typer.Argument(help="JSONL or CSV file with 'prompt' and 'output' per record.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    metrics: Annotated[
        Optional[str], typer.Option(help="Comma-separated metric names (default: the whole suite).")
    ] = None,
    no_embeddings: Annotated[
        bool, typer.Option("--no-embeddings", help="Skip the embedding model and its metrics.")
    ] = False,
    embedding_model: Annotated[
        str, typer.Option(help="sentence-transformers model name or path; 'default' is the packaged MiniLM.")
    ] = "default",
    embedding_backend: EmbeddingBackend = "auto",
    no_cache: NoCache = False,
    bootstrap: Annotated[int, typer.Option(min=10, help="Bootstrap replicates for the 95% intervals.")] = (
        DEFAULT_BOOTSTRAP
    ),
    seed: Annotated[int, typer.Option(help="Bootstrap seed (reproducible).")] = DEFAULT_SEED,
    store: Annotated[
        bool, typer.Option("--store", help="Record the file as a run of --model/--version in the database.")
    ] = False,
    model: Annotated[
        Optional[str], typer.Option(help="Model name for --store (else the file's 'model').")
    ] = None,
    version: Annotated[
        Optional[str], typer.Option(help="Version for --store (else the file's 'version').")
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Score a file of model outputs: every diversity metric, within prompts and across them."""
    selected = parse_metric_list(metrics)
    if no_embeddings and selected is not None and needs_embeddings(selected):
        raise fail("--no-embeddings conflicts with the embedding metrics selected in --metrics")
    records = load_records(file)
    samples = [r.sample for r in records]
    target = store_target(records, model, version) if store else None
    history = open_store(database_url) if target is not None else None
    if target is not None and history is not None:
        from collector.store.errors import VersionExists

        try:
            history.refuse_recorded(*target)  # before scoring: nothing stored, nothing wasted
        except VersionExists as exc:
            raise fail(f"--store: {exc}") from None
    embed = (
        None
        if no_embeddings
        else cli_embedder(embedding_model, embedding_backend, as_json, history, no_cache)
    )
    result = score_batch(
        str(file), samples, metrics=selected, embed=embed, n_boot=bootstrap, seed=seed
    ).result
    if target is not None and history is not None:
        run_id = store_file_run(history, target, records, result, embed)
        err.print(f"stored as run {run_id} of {target[0]}@{target[1]}", highlight=False, markup=False)
    if as_json:
        out.print_json(json.dumps(suite_json(result)))
        return
    title = f"{file}: {result.n_samples} outputs, {result.n_prompts} prompts"  # plain text (render.tables)
    out.print(suite_table(result, title=title))
    if result.n_blank:
        out.print(f"[yellow]{result.n_blank} blank output(s)[/] were scored as empty text.")
    out.print(
        f"[dim]95% intervals, seed {seed}: within from {bootstrap} bootstrap resamples of the prompts, "
        f"across from {bootstrap} random halves of the prompts (delete-half jackknife).[/]"
    )


def store_target(records: list[Record], model: str | None, version: str | None) -> tuple[str, str]:
    """(model, version) for --store: the options win, else the file's own fields (must be one each);
    each checked by the store's rule for labels (check_label) before anything is written."""
    from collector.store.text import check_label

    resolved = []
    for field, given in (("model", model), ("version", version)):
        where = f"--{field}"
        if not given:
            values = {getattr(r, field) for r in records} - {None}
            if len(values) != 1:
                found = ", ".join(sorted(values)) if values else "none"
                raise fail(f"--store needs --{field}: the file names {len(values)} {field}(s) ({found})")
            given, where = values.pop(), f"the file's {field!r} field"
        try:
            resolved.append(check_label(given, f"--{field}" if where.startswith("--") else field))
        except ValueError as exc:
            shown = given if len(given) <= 60 else given[:60] + "…"
            raise fail(
                f"cannot store {field} {shown!r} ({len(given)} characters) from {where}: {exc}"
            ) from None
    return resolved[0], resolved[1]


def open_store(database_url: str | None, *, must_exist: bool = False) -> Store:
    """The store at the resolved URL, migrated to the latest schema.

    ``must_exist`` (read-only commands): a SQLite file that does not exist is a usage error naming
    the path, rather than a new empty database reported on as if it were the real one.
    """
    from collector import service

    if must_exist:
        refuse_missing_file(database_url)
    try:
        return service.open_store(database_url)
    except Exception as exc:
        raise fail(f"cannot open the database {redact(resolve_url(database_url))}: {exc}") from None


def refuse_missing_file(database_url: str | None) -> None:
    """Exit 2 when the URL names a SQLite file that does not exist (read-only commands)."""
    from collector.store.engine import missing_database_file

    missing = missing_database_file(resolve_url(database_url))
    if missing is not None:
        raise fail(
            f"no database at {missing} (a wrong path or working directory? give --database-url or set "
            "COLLAPSE_WATCH_DATABASE_URL; `collapse-watch db upgrade` creates one)"
        )


def store_file_run(
    store: Store,
    target: tuple[str, str],
    records: list[Record],
    result: SuiteResult,
    embed: EmbedFn | None,
) -> int:
    from collector.scoring import scored_identity
    from collector.store.cli_commands import record_scored_file, sample_records

    samples = sample_records([r.sample for r in records])
    try:
        run_id = record_scored_file(
            store, target[0], target[1], samples, result, embedding_identity=scored_identity(embed, result)
        )
    except Exception as exc:
        raise fail(f"could not store {len(samples)} samples: {exc}") from None
    from collector.service import assess_after_run

    assess_after_run(store, target[0], embed, on_verdict=print_verdict)
    return run_id


def print_verdict(model: str, verdict: Verdict) -> None:
    err.print(Text.assemble(f"{model}: ", (verdict.status, VERDICT_STYLE[verdict.status])))


def stored_name(text: str) -> str:
    """A name from the command line as the store keeps names (NUL and lone surrogates replaced)."""
    from collector.store.text import safe_label

    return safe_label(text)


def is_stored_spec(spec: str) -> bool:
    """Whether a `compare` side names MODEL@VERSION in the database rather than a file."""
    try:
        exists = Path(spec).exists()
    except (OSError, ValueError):  # too long, or NUL: no file by that name
        exists = False
    return not exists and "@" in spec


def load_side(
    spec: str, metrics: list[str] | None, embed: EmbedFn | None, seed: int, store: Store | None
) -> ScoredBatch:
    """Score one side of `compare`: a file if it exists, else MODEL@VERSION from the database.

    The comparison resamples per-prompt values itself, so the side's own intervals are not computed
    (``SCORE_BOOT`` replicates, as for stored runs).
    """
    from collector.assessment import SCORE_BOOT, AssessmentError, load_batch

    if store is None or not is_stored_spec(spec):
        samples = [r.sample for r in load_records(Path(spec))]
        return score_batch(spec, samples, metrics=metrics, embed=embed, n_boot=SCORE_BOOT, seed=seed)

    spec = stored_name(spec)  # shown in titles and errors: text any stream can take
    model, _, version = spec.rpartition("@")
    try:
        known = set(store.model_names())
        splits = [(spec[:i], spec[i + 1 :]) for i, c in enumerate(spec) if c == "@"]  # '@' may be in either
        found = [
            (m, v, run)
            for m, v in splits
            if m in known and (run := store.latest_completed_run(m, v)) is not None
        ]
    except Exception as exc:
        raise fail(f"{spec}: {exc}") from None
    if not found:
        raise fail(f"{spec}: no completed run of version {version!r} of model {model!r} in the database")
    if len(found) > 1:
        readings = "; ".join(f"model {m!r} version {v!r}" for m, v, _ in found)
        raise fail(f"{spec} is ambiguous, it names runs of {len(found)} model@version pairs: {readings}")
    model, version, run_id = found[0]
    try:
        return load_batch(store, run_id, spec, metrics=metrics, embed=embed, seed=seed)
    except AssessmentError as exc:
        raise fail(f"{spec}: {exc}") from None


def load_records(path: Path) -> list[Record]:
    try:
        return read_records(path)
    except InputError as exc:
        raise fail(str(exc)) from None


class ProgressEmbedder:
    """The CLI's embedder: built on first use (so --help or a lexical-only run never loads a model),
    drawing a progress bar on stderr (hidden with --json or off a terminal). With ``store`` the
    vectors go to (and come from) the history database; else, with ``local_cache``, to the local
    vector cache (``collector.store.vector_cache``), so a second run on the same texts embeds none
    and loads no model."""

    def __init__(
        self,
        model: str,
        *,
        quiet: bool,
        store: Store | None = None,
        backend: str = "auto",
        local_cache: bool = False,
    ) -> None:
        self.model, self.quiet, self.store = model, quiet, store
        self.backend, self.local_cache = backend, local_cache

    @cached_property
    def embedder(self) -> Embedder:
        from collector.service import build_embedder

        embedder = build_embedder(self.model, store=self.store, backend=self.backend)  # type: ignore[arg-type]
        embedder.warn = warn
        if self.store is not None and hasattr(embedder.cache, "warn"):
            embedder.cache.warn = warn  # type: ignore[attr-defined]
        if self.store is None:
            from collector.embeddings import EmbeddingCache
            from collector.store.embeddings import VECTOR_DTYPE
            from collector.store.vector_cache import open_local_cache

            cache = None
            if self.local_cache:
                cache = open_local_cache(embedder.backend_kind, embedder.model_id, warn=warn)
            # float16 as every SQL store keeps them: a verdict never depends on the cache being there
            embedder.cache = (
                cache if cache is not None else EmbeddingCache(embedder.backend_kind, round_to=VECTOR_DTYPE)
            )
        return embedder

    @property
    def identity(self) -> EmbeddingIdentity:
        return self.embedder.identity

    def __call__(self, texts: list[str]) -> object:
        before = self.embedder.n_encoded
        with progress_bar("embedding outputs", console=err, disable=self.quiet) as update:
            vectors = self.embedder.embed(texts, progress=update)
        if not self.quiet:
            done = self.embedder.n_encoded - before
            err.print(
                f"embeddings: {len(texts)} outputs, {done} embedded with {self.embedder.identity.label()}",
                highlight=False,
                markup=False,
            )
        return vectors


def warn(message: str) -> None:
    err.print(f"warning: {message}", highlight=False, markup=False)


def cli_embedder(
    model: str, backend: str, quiet: bool, store: Store | None, no_cache: bool
) -> ProgressEmbedder:
    """The embedder of `score` / `compare`, after checking its options (a usage error names them)."""
    from collector.embeddings import BACKENDS

    if backend not in BACKENDS:
        raise fail(f"--embedding-backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if not no_cache:
        from collector.store.vector_cache import max_vectors_from_env

        try:
            max_vectors_from_env()
        except ValueError as exc:
            raise fail(str(exc)) from None
    return ProgressEmbedder(model, quiet=quiet, store=store, backend=backend, local_cache=not no_cache)


EXIT_CODES = {"ok": 0, "collapse_suspected": 1, "watch": 3, "inconclusive": 4}
EXIT_SOFTWARE = 70  # EX_SOFTWARE: an unexpected internal error, never read as a verdict (1 is one)


@app.command()
def compare(
    baseline: Annotated[
        str, typer.Argument(help="Baseline: a JSONL/CSV file, or MODEL@VERSION from the database.")
    ],
    candidate: Annotated[str, typer.Argument(help="Candidate: a JSONL/CSV file, or MODEL@VERSION.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    metrics: Annotated[
        Optional[str], typer.Option(help="Comma-separated metric names (default: the whole suite).")
    ] = None,
    no_embeddings: Annotated[
        bool, typer.Option("--no-embeddings", help="Skip the embedding model and its metrics.")
    ] = False,
    embedding_model: Annotated[
        str, typer.Option(help="sentence-transformers model name or path.")
    ] = "default",
    embedding_backend: EmbeddingBackend = "auto",
    no_cache: NoCache = False,
    seed: Annotated[int, typer.Option(help="Bootstrap seed (reproducible).")] = DEFAULT_SEED,
    database_url: DatabaseUrl = None,
) -> None:
    """Compare a candidate version with a baseline; the release gate.

    A side is a file of outputs, or MODEL@VERSION: the latest completed run of that version in
    the database. Exit status: 0 ok, 1 collapse suspected, 3 watch (a decline short of
    collapse), 4 inconclusive (too few shared prompts or outputs per prompt for the test to reach
    significance), 2 usage or input error.
    """
    from collector.comparison import compare_batches
    from collector.metrics.registry import select_metrics

    selected = parse_metric_list(metrics)
    specs = (baseline, candidate)
    history = open_store(database_url, must_exist=True) if any(map(is_stored_spec, specs)) else None
    embed = (
        None
        if no_embeddings
        else cli_embedder(embedding_model, embedding_backend, as_json, history, no_cache)
    )
    sides = [load_side(spec, selected, embed, seed, history) for spec in specs]
    try:
        result = compare_batches(sides[0], sides[1], select_metrics(selected), seed=seed, embed=embed)
    except ValueError as exc:
        raise fail(str(exc)) from None
    if as_json:
        out.print_json(json.dumps(comparison_json(result)))
    else:
        out.print(comparison_table(result))
        status = result.verdict.status
        out.print(Text.assemble("verdict: ", (status, VERDICT_STYLE[status])))
        for reason in result.verdict.reasons:
            out.print(f"  • {reason}", highlight=False, markup=False)
    raise typer.Exit(EXIT_CODES[result.verdict.status])


db_app = typer.Typer(help="Create and migrate the history database (Alembic).", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head", database_url: DatabaseUrl = None) -> None:
    """Migrate the database to REVISION (default: the latest)."""
    from collector.store.cli_commands import db_upgrade as upgrade

    url = resolve_url(database_url)
    before = current_revision(url)
    try:
        upgrade(url, revision)
    except Exception as exc:
        raise fail(f"upgrade of {redact(url)} failed: {exc}") from None
    after = current_revision(url)
    # the migration Job's log says what it did, not just where the database ended up
    done = (
        f"already at revision {after}" if after == before else f"upgraded from revision {before} to {after}"
    )
    out.print(f"{redact(url)}: {done}", highlight=False, markup=False)


@db_app.command("downgrade", context_settings={"ignore_unknown_options": True})
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target, e.g. -1 (one step down) or base.")],
    database_url: DatabaseUrl = None,
) -> None:
    """Migrate the database down to REVISION."""
    from collector.store.cli_commands import db_downgrade as downgrade

    url = resolve_url(database_url)
    try:
        downgrade(url, revision)
    except Exception as exc:
        raise fail(f"downgrade of {redact(url)} failed: {exc}") from None
    out.print(f"{redact(url)}: at revision {current_revision(url)}", highlight=False, markup=False)


@db_app.command("current")
def db_current(database_url: DatabaseUrl = None) -> None:
    """Print the database's current revision ('none' when it was never migrated)."""
    out.print(current_revision(resolve_url(database_url)), highlight=False, markup=False)


def current_revision(url: str) -> str:
    from collector.store.cli_commands import db_current as current

    try:
        return current(url)
    except Exception as exc:
        raise fail(f"cannot read the revision of {redact(url)}: {exc}") from None


@app.command()
def history(
    model: Annotated[str, typer.Argument(help="Model name as stored.")],
    scope: Annotated[str, typer.Option(help="within or across.")] = "within",
    database_url: DatabaseUrl = None,
) -> None:
    """Print a metric-by-version table of a model's stored values, the change of each version vs the
    baseline (pp for rates, × for other metrics) and the trend over the last versions."""
    from collector.store.cli_commands import history_table

    if scope not in ("within", "across"):
        raise fail(f"--scope must be 'within' or 'across', got {scope!r}")
    model = stored_name(model)
    from collector.store.errors import StoreError

    store = open_store(database_url, must_exist=True)
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
    from collector.store.cli_commands import collapsed_prompts
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


ConfigFile = Annotated[Path, typer.Option("--config", "-c", help="The collector's YAML configuration.")]
WebConfigFile = Annotated[
    Optional[Path],
    typer.Option(
        "--web.config.file",
        "--web-config-file",
        help="Exporter-toolkit web config (TLS, basic_auth_users); overrides the config's web_config_file.",
        show_default=False,
    ),
]


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

    store = store or open_store(cfg.database_url)
    try:
        return Collector.build(cfg, store=store, on_verdict=print_verdict)
    except EmbeddingError as exc:  # e.g. the embedding server's key variable is unset
        raise fail(str(exc)) from None


@app.command()
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
    raise typer.Exit(1 if any(r.status in ("failed", "interrupted", "no_data") for r in reports) else 0)


@app.command()
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
    """``run``'s store, migrated. On a database server the HTTP server starts first, so /healthz
    answers 200 and /readyz 503 ("database": "connecting ..." / "unreachable: ...") however long
    the database takes; a server that does not answer is waited for (``service.wait_for_database``:
    backoff, each connect bounded, SIGTERM honoured mid-try). Then ``(store or None if stopped,
    server, probe)`` for ``Collector.serve``. Anything else that stops the store from opening: exit 2."""
    from collector import service
    from collector.health import SchedulerProbe
    from collector.store import Store
    from collector.store.errors import first_line

    url = cfg.database_url
    if resolve_url(url).startswith("sqlite"):  # a file: nothing to wait for, no listener needed yet
        return open_store(url), None, None
    probe = SchedulerProbe()
    try:
        server = service.start_metrics_server(
            Store(url), cfg, port=metrics_port, scheduler=probe, web_config_file=web
        )
    except service.MetricsPortError as exc:
        raise fail(str(exc)) from None
    try:
        try:
            return service.open_store_interruptibly(url, stopped), server, probe
        except Exception as exc:
            if not service.database_down(exc, url):
                raise
            log.warning(
                "database %s not usable at start (%s): waiting for it; %s answers 503 until it is",
                redact(resolve_url(url)),
                first_line(exc),
                server.url("/readyz", cfg.metrics_host),
            )
        return service.wait_for_database(url, stopped), server, probe
    except Exception as exc:
        server.shutdown()
        raise fail(f"cannot open the database {redact(resolve_url(url))}: {exc}") from None


@app.command("serve-metrics")
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

    store = open_store(url) if local else Store(url)
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
    from collector.store.errors import first_line

    try:
        try:
            if service.open_store_interruptibly(url, stopped) is not None:
                log.info("database open and migrated")
            return
        except Exception as exc:
            if not service.database_down(exc, url):
                raise
            log.warning(
                "database not usable at start (%s): waiting for it; /readyz answers 503 until it is",
                first_line(exc),
            )
        if service.wait_for_database(url, stopped) is not None:
            log.info("database open and migrated")
    except Exception as exc:
        err.print(Text(f"error: cannot open the database {redact(resolve_url(url))}: {exc}"), highlight=False)
        logging.shutdown()
        os._exit(EXIT_USAGE)


log = logging.getLogger("collapse_watch")


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


@app.command()
def report(
    model: Annotated[str, typer.Argument(help="Model name as stored.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for <model>.html.")] = Path("report"),
    database_url: DatabaseUrl = None,
) -> None:
    """Write a self-contained HTML report: metrics across versions with intervals, verdict, samples."""
    from collector.report.load import ReportError, write_report

    model = stored_name(model)
    store = open_store(database_url, must_exist=True)
    try:
        path = write_report(store, model, out_dir)
    except ReportError as exc:
        raise fail(str(exc)) from None
    out.print(f"wrote {path}", highlight=False, markup=False)


@app.command()
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
    import time
    from contextlib import contextmanager

    from rich.live import Live

    from collector.demo import COLLAPSING, CONTROL, DemoOptions, run_demo
    from collector.render.tables import fleet_table

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
        last = {"key": None}

        def on_update(snapshot: Any, status: str) -> None:
            table = fleet_table(snapshot, title=f"collapse-watch demo — {status}")
            live.update(table)
            key = tuple((v.model, v.version, v.verdict) for v in snapshot.versions)
            if not out.is_terminal and key != last["key"]:  # plain logs: print each change once
                last["key"] = key
                live.refresh()

        try:
            result = run_demo(opts, timer=timer, on_update=on_update)
        except Exception as exc:
            raise fail(f"the demo failed: {type(exc).__name__}: {exc}", code=1) from None
    total = time.monotonic() - started
    out.print()
    out.rule("result")
    for model in (COLLAPSING, CONTROL):
        status = result.verdicts.get(model, "unknown")
        out.print(Text.assemble((model, "bold"), ": ", (status, VERDICT_STYLE.get(status, ""))))
        for reason in result.reasons.get(model, [])[:6]:
            out.print(f"  • {reason}", highlight=False, markup=False)
    db = result.database
    out.print(f"\nHistory (SQLite): {db}", highlight=False, markup=False)
    out.print("  Try:", highlight=False, markup=False)
    out.print(
        f'    sqlite3 {db} "SELECT model, version, metric, scope, value FROM v_latest_metrics '
        "WHERE metric='distinct_2' ORDER BY model, version_ordinal\"",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    out.print(
        f'    sqlite3 {db} "SELECT model, version, metric, scope, change_ratio FROM v_metric_vs_baseline '
        'ORDER BY change_ratio LIMIT 10"',
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    out.print(
        f"/metrics was served at {result.metrics_url} while the demo ran; serve it again with:",
        highlight=False,
        markup=False,
    )
    out.print(
        f"    collapse-watch serve-metrics --database-url sqlite:///{db} --port {port}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    out.print(
        "Point the bundled stack at it: run serve-metrics as above on port 9108, add "
        '"host.docker.internal:9108" to the targets of the collapse-watch job in '
        "dashboards/prometheus/prometheus.yml, and `docker compose up -d prometheus alertmanager grafana` "
        "(Grafana on http://localhost:3000; see README).",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    if result.report:
        out.print(f"Report: {result.report}", highlight=False, markup=False)
    timings = ", ".join(f"{k} {v:.1f}s" for k, v in phases.items())
    out.print(f"\nTook {total:.0f}s: {timings}.", highlight=False, markup=False, soft_wrap=True)
    if result.verdicts.get(COLLAPSING) != "collapse_suspected" or result.verdicts.get(CONTROL) != "ok":
        raise typer.Exit(1)


dashboards_app = typer.Typer(help="Grafana dashboards shipped with collapse-watch.", no_args_is_help=True)
app.add_typer(dashboards_app, name="dashboards")


@dashboards_app.command("push")
def dashboards_push(
    grafana_url: Annotated[str, typer.Option(help="Grafana base URL, e.g. http://localhost:3000.")],
    folder: Annotated[str, typer.Option(help="Folder to create or reuse.")] = "collapse-watch",
    token_env: Annotated[
        str, typer.Option(help="Environment variable holding a service-account token.")
    ] = "GRAFANA_TOKEN",
    user_env: Annotated[
        str, typer.Option(help="Variable with a user name (basic auth, if no token).")
    ] = "GRAFANA_USER",
    password_env: Annotated[
        str, typer.Option(help="Variable with the password (basic auth).")
    ] = "GRAFANA_PASSWORD",
) -> None:
    """Upload (create or overwrite) the dashboards through Grafana's HTTP API, for teams without provisioning."""
    from collector.grafana.push import grafana_base_url, push_dashboards

    try:
        grafana_url = grafana_base_url(grafana_url)
    except ValueError as exc:
        raise fail(str(exc)) from None
    token = os.environ.get(token_env)
    user, password = os.environ.get(user_env), os.environ.get(password_env)
    if not token and not (user and password):
        raise fail(f"set {token_env} (a service-account token) or {user_env} and {password_env}")
    try:
        results = push_dashboards(
            grafana_url,
            token=token or None,
            basic_auth=None if token else (user, password),  # type: ignore[arg-type]
            folder=folder,
        )
    except Exception as exc:
        raise fail(
            f"pushing dashboards to {grafana_url} failed: {type(exc).__name__}: {exc}", code=1
        ) from None
    for r in results:
        out.print(
            f"{r.get('uid')}: {r.get('status', 'ok')} {r.get('url', '')}", highlight=False, markup=False
        )


config_app = typer.Typer(help="Validate collector configuration files.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("check")
def config_check(
    file: Annotated[Path, typer.Argument(help="The collector's YAML configuration.")],
    connect: Annotated[
        bool,
        typer.Option("--connect", help="Also connect to the database and read one row of every SQL source."),
    ] = False,
) -> None:
    """Validate a config file: every problem at once, with its path and line in the file (and what
    `run` would refuse or `collect` fail on: key variables, probe files, the listen address)."""
    from collector.config import check_config

    warnings: list[str] = []
    problems = check_config(file, connect=connect, warnings=warnings)
    for w in warnings:
        err.print(Text(f"{file}: warning: {w}", style="bold yellow"), highlight=False, markup=False)
    if problems:
        err.print(
            Text(f"{file}: {len(problems)} problem(s)", style="bold red"), highlight=False, markup=False
        )
        for p in problems:
            err.print(f"  {p}", highlight=False, markup=False)
        raise typer.Exit(EXIT_USAGE)
    out.print(f"{file}: OK", highlight=False, markup=False)


def main() -> None:
    for stream in (sys.stdout, sys.stderr):  # a lone surrogate (undecodable file name) never kills a print
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # a bug or an unforeseen failure: exit 70, never 1 (= collapse suspected)
        if os.environ.get("COLLAPSE_WATCH_DEBUG") == "1":
            import traceback

            err.print(Text("".join(traceback.format_exception(exc))), highlight=False)
        first = str(exc).splitlines()[0] if str(exc).strip() else ""
        message = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
        err.print(
            Text.assemble(
                ("error:", "bold red"), " ", message, " (COLLAPSE_WATCH_DEBUG=1 shows the traceback)"
            ),
            highlight=False,
        )
        sys.exit(EXIT_SOFTWARE)


if __name__ == "__main__":
    main()
