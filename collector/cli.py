"""The `collapse-watch` command line: parses arguments, calls services, renders results.

Exit codes: 0 success; 1 the check failed (e.g. collapse suspected); 2 usage or input error.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from collector.inputs import InputError, Record, read_records
from collector.metrics.registry import metric_names, needs_embeddings
from collector.metrics.suite import DEFAULT_BOOTSTRAP, DEFAULT_SEED
from collector.render.progress import progress_bar
from collector.render.tables import (
    VERDICT_STYLE,
    comparison_json,
    comparison_table,
    suite_json,
    suite_table,
)
from collector.scoring import score_batch

app = typer.Typer(
    name="collapse-watch",
    help="Watch deployed language models for model collapse: loss of output diversity across versions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True, soft_wrap=True)

EXIT_USAGE = 2


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
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
    bootstrap: Annotated[int, typer.Option(min=10, help="Bootstrap replicates for the 95% intervals.")] = (
        DEFAULT_BOOTSTRAP
    ),
    seed: Annotated[int, typer.Option(help="Bootstrap seed (reproducible).")] = DEFAULT_SEED,
) -> None:
    """Score a file of model outputs: every diversity metric, within prompts and across them."""
    selected = parse_metric_list(metrics)
    if no_embeddings and selected is not None and needs_embeddings(selected):
        raise fail("--no-embeddings conflicts with the embedding metrics selected in --metrics")
    samples = [r.sample for r in load_records(file)]
    embed = None if no_embeddings else embedder_for(embedding_model, quiet=as_json)
    result = score_batch(
        str(file), samples, metrics=selected, embed=embed, n_boot=bootstrap, seed=seed
    ).result
    if as_json:
        out.print_json(json.dumps(suite_json(result)))
        return
    title = f"{file}: {result.n_samples} outputs, {result.n_prompts} prompts"
    out.print(suite_table(result, title=title))
    if result.n_blank:
        out.print(f"[yellow]{result.n_blank} blank output(s)[/] were scored as empty text.")
    out.print(
        f"[dim]95% intervals, seed {seed}: within from {bootstrap} bootstrap resamples of the prompts, "
        f"across from {bootstrap} random halves of the prompts (delete-half jackknife).[/]"
    )


def load_records(path: Path) -> list[Record]:
    try:
        return read_records(path)
    except InputError as exc:
        raise fail(str(exc)) from None


def embedder_for(model: str, *, quiet: bool) -> Callable[[list[str]], object]:
    """An embed function that draws a progress bar on stderr (hidden with --json or off a terminal)."""

    def embed(texts: list[str]) -> object:
        from collector.embeddings import Embedder

        embedder = Embedder(model)
        with progress_bar("embedding outputs", console=err, disable=quiet) as update:
            return embedder.embed(texts, progress=update)

    return embed


EXIT_CODES = {"ok": 0, "collapse_suspected": 1, "watch": 3}


@app.command()
def compare(
    baseline: Annotated[str, typer.Argument(help="Baseline: a JSONL/CSV file of outputs.")],
    candidate: Annotated[str, typer.Argument(help="Candidate: a JSONL/CSV file of outputs.")],
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
    seed: Annotated[int, typer.Option(help="Bootstrap seed (reproducible).")] = DEFAULT_SEED,
) -> None:
    """Compare a candidate version with a baseline; the release gate.

    Exit status: 0 ok, 1 collapse suspected, 3 watch (a decline short of collapse), 2 usage or
    input error.
    """
    from collector.comparison import compare_batches
    from collector.metrics.registry import select_metrics

    selected = parse_metric_list(metrics)
    embed = None if no_embeddings else embedder_for(embedding_model, quiet=as_json)
    sides = [
        score_batch(
            label, [r.sample for r in load_records(Path(label))], metrics=selected, embed=embed, seed=seed
        )
        for label in (baseline, candidate)
    ]
    try:
        result = compare_batches(sides[0], sides[1], select_metrics(selected), seed=seed)
    except ValueError as exc:
        raise fail(str(exc)) from None
    if as_json:
        out.print_json(json.dumps(comparison_json(result)))
    else:
        out.print(comparison_table(result))
        status = result.verdict.status
        out.print(f"verdict: [{VERDICT_STYLE[status]}]{status}[/]")
        for reason in result.verdict.reasons:
            out.print(f"  • {reason}", highlight=False)
    raise typer.Exit(EXIT_CODES[result.verdict.status])


config_app = typer.Typer(help="Validate collector configuration files.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("check")
def config_check(
    file: Annotated[Path, typer.Argument(help="The collector's YAML configuration.")],
) -> None:
    """Validate a config file: every problem at once, with its path and line in the file."""
    from collector.config import check_config

    problems = check_config(file)
    if problems:
        err.print(f"[bold red]{file}: {len(problems)} problem(s)[/]", highlight=False)
        for p in problems:
            err.print(f"  {p}", highlight=False, markup=False)
        raise typer.Exit(EXIT_USAGE)
    out.print(f"{file}: OK")


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
