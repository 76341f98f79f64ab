"""`score` and `compare`: the release gate's commands. They parse, call ``collector.gate``, render."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.text import Text

from collector import gate
from collector.cli.app import err, out, print_json, print_verdict, usage_errors, warn
from collector.cli.options import (
    AsJson,
    DatabaseUrl,
    EmbeddingBackend,
    MaxScoredSamples,
    Metrics,
    NoCache,
    NoEmbeddings,
    Seed,
)
from collector.metrics.defaults import DEFAULT_BOOTSTRAP, DEFAULT_SEED

if TYPE_CHECKING:
    from collector.comparison import BatchComparison
    from collector.metrics.result import SuiteResult
    from collector.store import Store


EmbeddingModel = Annotated[
    str, typer.Option(help="sentence-transformers model name or path; 'default' is the packaged MiniLM.")
]


class ProgressEmbedder(gate.GateEmbedder):
    """The gate's embedder drawing a progress bar on stderr (hidden with --json or off a terminal)."""

    def __init__(
        self, model: str, *, quiet: bool, store: Store | None, backend: str, local_cache: bool
    ) -> None:
        super().__init__(model, store=store, backend=backend, local_cache=local_cache, warn=warn)
        self.quiet = quiet

    def __call__(self, texts: list[str]) -> object:
        from collector.render.progress import progress_bar

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


def cli_embedder(
    model: str, backend: str, quiet: bool, store: Store | None, no_cache: bool
) -> ProgressEmbedder:
    """The embedder of `score` / `compare`, after checking its options (a usage error names them)."""
    gate.check_embedder_options(backend, no_cache)
    return ProgressEmbedder(model, quiet=quiet, store=store, backend=backend, local_cache=not no_cache)


@usage_errors
def score(
    file: Annotated[Path, typer.Argument(help="JSONL or CSV file with 'prompt' and 'output' per record.")],
    as_json: AsJson = False,
    metrics: Metrics = None,
    no_embeddings: NoEmbeddings = False,
    embedding_model: EmbeddingModel = "default",
    embedding_backend: EmbeddingBackend = "auto",
    no_cache: NoCache = False,
    bootstrap: Annotated[int, typer.Option(min=10, help="Bootstrap replicates for the 95% intervals.")] = (
        DEFAULT_BOOTSTRAP
    ),
    seed: Seed = DEFAULT_SEED,
    store: Annotated[
        bool, typer.Option("--store", help="Record the file as a run of --model/--version in the database.")
    ] = False,
    model: Annotated[
        Optional[str], typer.Option(help="Model name for --store (else the file's 'model').")
    ] = None,
    version: Annotated[
        Optional[str], typer.Option(help="Version for --store (else the file's 'version').")
    ] = None,
    max_scored_samples: MaxScoredSamples = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Score a file of model outputs: every diversity metric, within prompts and across them.

    With --store every output is stored, and at most --max-scored-samples of them are scored, the
    uniform sample a collector would score of the run."""
    from collector.scoring import score_batch

    selected = gate.metric_names(metrics)
    gate.refuse_embedding_conflict(no_embeddings, selected)
    if max_scored_samples is not None and not store:
        raise gate.GateError("--max-scored-samples bounds the run --store records: give --store too")
    records = gate.read_file(file)
    run = (
        gate.plan_file_run(records, model, version, database_url, max_scored_samples, selected)
        if store
        else None
    )
    history = run.store if run is not None else None
    embed = (
        None
        if no_embeddings
        else cli_embedder(embedding_model, embedding_backend, as_json, history, no_cache)
    )
    samples = run.scored() if run is not None else [r.sample for r in records]
    result = score_batch(
        str(file), samples, metrics=selected, embed=embed, n_boot=bootstrap, seed=seed
    ).result
    if run is not None:
        run_id = gate.store_file_run(run, result, embed, on_verdict=print_verdict)
        err.print(f"stored as run {run_id} of {run.target[0]}@{run.target[1]}", highlight=False, markup=False)
    render_scores(file, result, as_json, bootstrap, seed)


def render_scores(file: Path, result: SuiteResult, as_json: bool, bootstrap: int, seed: int) -> None:
    from collector.render.tables import suite_json, suite_table

    if as_json:
        print_json(suite_json(result))
        return
    title = f"{file}: {result.n_samples} outputs, {result.n_prompts} prompts"
    out.print(suite_table(result, title=title))
    if result.n_blank:
        out.print(f"[yellow]{result.n_blank} blank output(s)[/] were scored as empty text.")
    out.print(
        f"[dim]95% intervals, seed {seed}: within from {bootstrap} bootstrap resamples of the prompts, "
        f"across from {bootstrap} random halves of the prompts (delete-half jackknife).[/]"
    )


@usage_errors
def compare(
    baseline: Annotated[
        str, typer.Argument(help="Baseline: a JSONL/CSV file, or MODEL@VERSION from the database.")
    ],
    candidate: Annotated[str, typer.Argument(help="Candidate: a JSONL/CSV file, or MODEL@VERSION.")],
    as_json: AsJson = False,
    metrics: Metrics = None,
    no_embeddings: NoEmbeddings = False,
    embedding_model: Annotated[
        str, typer.Option(help="sentence-transformers model name or path.")
    ] = "default",
    embedding_backend: EmbeddingBackend = "auto",
    no_cache: NoCache = False,
    seed: Seed = DEFAULT_SEED,
    max_scored_samples: MaxScoredSamples = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Compare a candidate version with a baseline; the release gate.

    A side is a file of outputs, or MODEL@VERSION: the latest completed run of that version in
    the database, scored on the outputs its collector scored (at most --max-scored-samples).
    Exit status: 0 ok, 1 collapse suspected, 3 watch (a decline short of collapse), 4
    inconclusive (too few shared prompts or outputs per prompt for the test to reach
    significance), 2 usage or input error.
    """
    gate.one_blas_thread()  # before numpy loads
    workers = gate.workers()
    selected = gate.metric_names(metrics)
    gate.refuse_embedding_conflict(no_embeddings, selected)
    specs = (baseline, candidate)
    stored = any(map(gate.is_stored_spec, specs))
    if max_scored_samples is not None and not stored:
        raise gate.GateError(
            "--max-scored-samples bounds a stored side (MODEL@VERSION); both sides are files"
        )
    history = gate.open_history(database_url, must_exist=True) if stored else None
    embed = (
        None
        if no_embeddings
        else cli_embedder(embedding_model, embedding_backend, as_json, history, no_cache)
    )
    cap = (max_scored_samples or gate.default_max_scored_samples()) if stored else None
    sides = [gate.load_side(spec, selected, embed, seed, history, cap) for spec in specs]
    result = gate.compare_sides(sides[0], sides[1], selected, seed, embed, workers)
    render_comparison(result, as_json)
    raise typer.Exit(gate.exit_code(result.verdict.status))


def render_comparison(result: BatchComparison, as_json: bool) -> None:
    from collector.render.tables import VERDICT_STYLE, comparison_json, comparison_table

    if as_json:
        print_json(comparison_json(result))
        return
    out.print(comparison_table(result))
    status = result.verdict.status
    out.print(Text.assemble("verdict: ", (status, VERDICT_STYLE[status])))
    for reason in result.verdict.reasons:
        out.print(f"  • {reason}", highlight=False, markup=False)
