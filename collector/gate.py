"""The release gate's wiring, shared by `collapse-watch score` / `compare` and the Python API.

Loading a side (a file of outputs, or MODEL@VERSION: a stored run, bounded to the sample its
collector scored), choosing the embedder, recording a file as a run and assessing it, deciding the
exit status. Nothing here prints: a usage or input problem is a :class:`GateError` whose message
the caller shows (the CLI exits 2 with it, the API raises it, a ``ValueError``), and progress and
warnings go to the callbacks the caller gives.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from collector import environment
from collector.database_url import redact_url as redact
from collector.database_url import resolve_url
from collector.vocabulary import EXIT_CODES

if TYPE_CHECKING:
    from collector.comparison import BatchComparison, ScoredBatch
    from collector.embeddings import Embedder, EmbeddingIdentity
    from collector.inputs import Record
    from collector.metrics.base import Sample
    from collector.metrics.result import SuiteResult
    from collector.scoring import EmbedFn
    from collector.service import OnVerdict
    from collector.store import SampleRecord, Store
    from collector.trends import Verdict

Warn = Callable[[str], None]
DEFAULT_WORKERS = 2


class GateError(ValueError):
    """A usage or input problem: nothing was judged (the CLI's exit 2)."""


def exit_code(status: str) -> int:
    """The gate's exit status for a verdict (collector.vocabulary.EXIT_CODES)."""
    return EXIT_CODES[status]


# ---------------------------------------------------------------- arguments


def metric_names(value: str | None) -> list[str] | None:
    """The metrics of a comma-separated ``--metrics`` (None: the whole suite)."""
    if value is None:
        return None
    from collector.metrics.registry import metric_names as known_names

    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:  # an unset $METRICS in CI must not pass as a check of nothing
        raise GateError(f"--metrics {value!r} names no metric (leave it out for the whole suite)")
    known = set(known_names())
    unknown = [n for n in names if n not in known]
    if unknown:
        raise GateError(f"unknown metric(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise GateError(f"--metrics lists {', '.join(twice)} more than once")
    return names


def refuse_embedding_conflict(no_embeddings: bool, selected: list[str] | None) -> None:
    from collector.metrics.registry import needs_embeddings

    if no_embeddings and selected is not None and needs_embeddings(selected):
        raise GateError("--no-embeddings conflicts with the embedding metrics selected in --metrics")


def default_max_scored_samples() -> int:
    """A model's ``max_scored_samples`` when its config does not set it (the config schema's default)."""
    from collector.config import ModelConfig

    default = ModelConfig.model_fields["max_scored_samples"].default
    assert isinstance(default, int)
    return default


def read_file(path: Path) -> list[Record]:
    """The records of a JSONL/CSV file of outputs."""
    from collector.inputs import InputError, read_records

    try:
        return read_records(path)
    except InputError as exc:
        raise GateError(str(exc)) from None


# ---------------------------------------------------------------- the database


def open_history(database_url: str | None, *, must_exist: bool = False) -> Store:
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
        raise GateError(f"cannot open the database {redact(resolve_url(database_url))}: {exc}") from None


def refuse_missing_file(database_url: str | None) -> None:
    """A usage error when the URL names a SQLite file that does not exist (read-only commands)."""
    from collector.store.engine import missing_database_file

    missing = missing_database_file(resolve_url(database_url))
    if missing is not None:
        raise GateError(
            f"no database at {missing} (a wrong path or working directory? give --database-url or set "
            "COLLAPSE_WATCH_DATABASE_URL; `collapse-watch db upgrade` creates one)"
        )


def stored_name(text: str) -> str:
    """A name from the command line as the store keeps names (NUL and lone surrogates replaced)."""
    from collector.store.text import safe_label

    return safe_label(text)


# ---------------------------------------------------------------- the embedder


class GateEmbedder:
    """The gate's embedder: built on first use (so a lexical-only run never loads a model). With
    ``store`` the vectors go to (and come from) the history database; else, with ``local_cache``,
    to the local vector cache (``collector.store.vector_cache``), so a second run on the same texts
    embeds none and loads no model. ``warn`` receives what the caller should show."""

    def __init__(
        self,
        model: str,
        *,
        store: Store | None = None,
        backend: str = "auto",
        local_cache: bool = False,
        warn: Warn | None = None,
    ) -> None:
        self.model, self.store, self.backend, self.local_cache = model, store, backend, local_cache
        self.warn = warn

    @cached_property
    def embedder(self) -> Embedder:
        from collector.embeddings import Embedder  # the local model: no remote client, no store API

        embedder = Embedder(self.model, backend=self.backend)  # type: ignore[arg-type]
        if self.store is not None:
            from collector.store.embeddings import StoredEmbeddings

            embedder.cache = StoredEmbeddings.of(embedder, self.store.engine)
        if self.warn is not None:
            embedder.warn = self.warn
            if self.store is not None and hasattr(embedder.cache, "warn"):
                embedder.cache.warn = self.warn  # type: ignore[attr-defined]
        if self.store is None:
            from collector.embeddings import EmbeddingCache
            from collector.store.vector_cache import open_local_cache
            from collector.store.vector_rows import VECTOR_DTYPE

            cache = None
            if self.local_cache:
                cache = open_local_cache(embedder.backend_kind, embedder.model_id, warn=self.warn)
            # float16 as every SQL store keeps them: a verdict never depends on the cache being there
            embedder.cache = (
                cache if cache is not None else EmbeddingCache(embedder.backend_kind, round_to=VECTOR_DTYPE)
            )
        return embedder

    @property
    def identity(self) -> EmbeddingIdentity:
        return self.embedder.identity

    def __call__(self, texts: list[str]) -> object:
        return self.embedder.embed(texts)


def check_embedder_options(backend: str, no_cache: bool) -> None:
    """A usage error naming ``--embedding-backend`` or the cache size variable when they are wrong."""
    from collector.embeddings import BACKENDS

    if backend not in BACKENDS:
        raise GateError(f"--embedding-backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if not no_cache:
        from collector.store.vector_cache import max_vectors_from_env

        try:
            max_vectors_from_env()
        except ValueError as exc:
            raise GateError(str(exc)) from None


# ---------------------------------------------------------------- scoring and recording a file


def store_target(records: list[Record], model: str | None, version: str | None) -> tuple[str, str]:
    """(model, version) for --store: the options win, else the file's own fields (must be one each);
    each checked by the store's rule for labels (check_label) before anything is written."""
    from collector.store.text import check_label

    resolved = []
    for field, given in (("model", model), ("version", version)):
        where = f"--{field}"
        if given == "":
            raise GateError(f"--{field} is empty: give a label, or leave the option out to use the file's")
        if given is None:
            values = {getattr(r, field) for r in records} - {None}
            if len(values) != 1:
                found = ", ".join(sorted(values)) if values else "none"
                raise GateError(f"--store needs --{field}: the file names {len(values)} {field}(s) ({found})")
            given, where = values.pop(), f"the file's {field!r} field"
        try:
            resolved.append(check_label(given, f"--{field}" if where.startswith("--") else field))
        except ValueError as exc:
            shown = given if len(given) <= 60 else given[:60] + "…"
            raise GateError(
                f"cannot store {field} {shown!r} ({len(given)} characters) from {where}: {exc}"
            ) from None
    return resolved[0], resolved[1]


def refuse_recorded(store: Store, target: tuple[str, str]) -> None:
    """A usage error when the version already has a completed run (before anything is scored)."""
    from collector.store.errors import VersionExists

    try:
        store.refuse_recorded(*target)
    except VersionExists as exc:
        raise GateError(f"--store: {exc}") from None


@dataclass
class FileRun:
    """`score FILE --store`: where the file goes, its outputs as the run's samples (all stored),
    and ``cap``, how many of them its scored subset holds."""

    store: Store
    target: tuple[str, str]
    records: list[SampleRecord]
    cap: int
    metrics: list[str] | None = None  # the suite scored (None: the default); its assessment compares these

    def scored(self) -> list[Sample]:
        from collector.scored_subset import scored_samples

        return scored_samples(self.records, self.cap)


def plan_file_run(
    records: list[Record],
    model: str | None,
    version: str | None,
    database_url: str | None,
    max_samples: int | None,
    metrics: list[str] | None = None,
) -> FileRun:
    """The run a file will be stored as, checked before anything is scored: the labels, the
    database, and that the version has no completed run yet (nothing stored, nothing wasted)."""
    target = store_target(records, model, version)
    store = open_history(database_url)
    refuse_recorded(store, target)
    cap = max_samples or default_max_scored_samples()
    from collector.store.cli_commands import sample_records

    return FileRun(store, target, sample_records([r.sample for r in records]), cap, metrics)


def store_file_run(run: FileRun, result: SuiteResult, embed: EmbedFn | None, on_verdict: OnVerdict) -> int:
    """Store the scored file as its run and assess the model as the collector would; the run id."""
    try:
        run_id = record_run(run.store, run.target, run.records, result, embed)
    except Exception as exc:
        raise GateError(f"could not store {len(run.records)} samples: {exc}") from None
    assess_recorded(
        run.store, run.target[0], embed, max_samples=run.cap, metrics=run.metrics, on_verdict=on_verdict
    )
    return run_id


def record_run(
    store: Store,
    target: tuple[str, str],
    records: list[SampleRecord],
    result: SuiteResult,
    embed: EmbedFn | None,
    *,
    source_kind: str = "file",
    on_begun: Callable[[int], None] | None = None,
) -> int:
    """Store scored outputs as a completed run of ``target`` (model, version); the run id."""
    from collector.scoring import scored_identity
    from collector.store.cli_commands import record_scored_file

    return record_scored_file(
        store,
        target[0],
        target[1],
        records,
        result,
        source_kind=source_kind,
        version_source=source_kind,
        embedding_identity=scored_identity(embed, result),
        on_begun=on_begun,
    )


def assess_recorded(
    store: Store,
    model: str,
    embed: EmbedFn | None,
    *,
    max_samples: int | None,
    metrics: list[str] | None = None,
    on_verdict: OnVerdict | None = None,
    on_compared: Callable[[str, BatchComparison], None] | None = None,
) -> Verdict | None:
    """Assess ``model`` after a recorded run as the collector does after one of its own: each run
    bounded to the ``max_samples`` outputs its collector scored, on the ``metrics`` the run scored
    (``service.assess_after_run``)."""
    from collector.service import assess_after_run

    return assess_after_run(
        store, model, embed, on_verdict, max_samples, on_compared=on_compared, metrics=metrics
    )


# ---------------------------------------------------------------- the sides of a comparison


def is_stored_spec(spec: str) -> bool:
    """Whether a `compare` side names MODEL@VERSION in the database rather than a file."""
    try:
        exists = Path(spec).exists()
    except (OSError, ValueError):  # too long, or NUL: no file by that name
        exists = False
    return not exists and "@" in spec


def score_side(
    label: str, samples: list[Sample], metrics: list[str] | None, embed: EmbedFn | None, seed: int
) -> ScoredBatch:
    """One side of a comparison scored. The comparison resamples per-prompt values itself, so the
    side's own intervals are not computed (``SCORE_BOOT`` replicates, as for stored runs)."""
    from collector.scoring import SCORE_BOOT, score_batch

    return score_batch(label, samples, metrics=metrics, embed=embed, n_boot=SCORE_BOOT, seed=seed)


def stored_run(store: Store, spec: str) -> int:
    """The latest completed run MODEL@VERSION names (an '@' may be in either part, if unambiguous)."""
    model, _, version = spec.rpartition("@")
    try:
        known = set(store.model_names())
        splits = [(spec[:i], spec[i + 1 :]) for i, c in enumerate(spec) if c == "@"]
        found = [
            (m, v, run)
            for m, v in splits
            if m in known and (run := store.latest_completed_run(m, v)) is not None
        ]
    except Exception as exc:
        raise GateError(f"{spec}: {exc}") from None
    if not found:
        raise GateError(f"{spec}: no completed run of version {version!r} of model {model!r} in the database")
    if len(found) > 1:
        readings = "; ".join(f"model {m!r} version {v!r}" for m, v, _ in found)
        raise GateError(f"{spec} is ambiguous, it names runs of {len(found)} model@version pairs: {readings}")
    return found[0][2]


def load_side(
    spec: str,
    metrics: list[str] | None,
    embed: EmbedFn | None,
    seed: int,
    store: Store | None,
    max_samples: int | None,
) -> ScoredBatch:
    """Score one side of `compare`: a file if it exists, else MODEL@VERSION from the database,
    bounded to the ``max_samples`` outputs its collector scored (``assessment.load_batch``). A
    file's side imports neither the assessment nor the store (nor SQLAlchemy)."""
    if store is None or not is_stored_spec(spec):
        return score_side(spec, [r.sample for r in read_file(Path(spec))], metrics, embed, seed)
    from collector.assessment import AssessmentError, load_batch

    spec = stored_name(spec)  # shown in titles and errors: text any stream can take
    run_id = stored_run(store, spec)
    try:
        return load_batch(
            store, run_id, spec, metrics=metrics, embed=embed, seed=seed, max_samples=max_samples
        )
    except AssessmentError as exc:
        raise GateError(f"{spec}: {exc}") from None


def workers() -> int:
    """Processes `compare` may use: ``$COLLAPSE_WATCH_WORKERS`` (a whole number from 1), else 2,
    as many as a comparison keeps busy (``collector.parallel`` forks the second only on Linux with
    a second core to run it)."""
    raw = (environment.workers() or "").strip()
    if not raw:
        return DEFAULT_WORKERS
    count = environment.whole_number(raw, cap=10**9)
    if not count:
        raise GateError(
            f"COLLAPSE_WATCH_WORKERS must be a whole number of processes from 1, got {environment.shown(raw)}"
        )
    return count if count < 10**9 else DEFAULT_WORKERS  # a huge count asks for all there is


def one_blas_thread() -> None:
    """OpenBLAS on one thread per process, unless the user chose (``OPENBLAS_NUM_THREADS``): a
    comparison's matrix products are small, and a second BLAS thread only spins on the core the
    other process (or the gzip threads) computes on: measured, 0.6 CPU-s of a 2.5 s full-suite
    `compare` went to it, with the same wall time and the same values (products are split over
    output blocks, and ``metrics.blas`` fixes the long dot products' order). Read by numpy when it
    loads, so called before anything imports it."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def compare_sides(
    baseline: ScoredBatch,
    candidate: ScoredBatch,
    metrics: list[str] | None,
    seed: int,
    embed: EmbedFn | None,
    workers: int = 1,
) -> BatchComparison:
    """The comparison of two scored sides and its verdict (resampled on ``workers`` processes)."""
    from collector.comparison import compare_batches
    from collector.metrics.registry import select_metrics

    try:
        return compare_batches(
            baseline, candidate, select_metrics(metrics), seed=seed, embed=embed, workers=workers
        )
    except ValueError as exc:
        raise GateError(str(exc)) from None
