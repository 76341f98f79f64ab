"""The `collapse-watch` command line: parses arguments, calls services, renders results.

Exit codes: 0 success; 1 the check failed (e.g. collapse suspected); 2 usage or input error.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from collector.inputs import InputError, read_records
from collector.metrics.registry import metric_names, needs_embeddings
from collector.metrics.suite import DEFAULT_BOOTSTRAP, DEFAULT_SEED, score_samples
from collector.render.progress import progress_bar
from collector.render.tables import suite_json, suite_table

app = typer.Typer(
    name="collapse-watch",
    help="Watch deployed language models for model collapse: loss of output diversity across versions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
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
    try:
        records = read_records(file)
    except InputError as exc:
        raise fail(str(exc)) from None
    samples = [r.sample for r in records]
    embeddings = None
    if not no_embeddings and needs_embeddings(selected):
        embeddings = embed_texts([s.output for s in samples], embedding_model, quiet=as_json)
    elif selected is not None and needs_embeddings(selected):
        raise fail("--no-embeddings conflicts with the embedding metrics selected in --metrics")
    result = score_samples(samples, embeddings, metrics=selected, n_boot=bootstrap, seed=seed)
    if as_json:
        out.print_json(json.dumps(suite_json(result)))
        return
    title = f"{file}: {result.n_samples} outputs, {result.n_prompts} prompts"
    out.print(suite_table(result, title=title))
    if result.n_blank:
        out.print(f"[yellow]{result.n_blank} blank output(s)[/] were scored as empty text.")
    out.print(f"[dim]95% intervals: {bootstrap} bootstrap replicates over prompts, seed {seed}.[/]")


def embed_texts(texts: list[str], model: str, *, quiet: bool) -> object:
    """Embed outputs with a progress bar on stderr (hidden with --json or when not a terminal)."""
    from collector.embeddings import Embedder

    embedder = Embedder(model)
    with progress_bar("embedding outputs", total=len(texts), console=err, disable=quiet) as advance:
        return embedder.embed(texts, progress=advance)


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
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
