"""`config check`: validate a collector configuration file, every problem at once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from collector.cli.app import err, out
from collector.vocabulary import EXIT_USAGE

config_app = typer.Typer(help="Validate collector configuration files.", no_args_is_help=True)


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
