"""`db upgrade` / `db downgrade` / `db current`: create and migrate the history database (Alembic)."""

from __future__ import annotations

from typing import Annotated

import typer

from collector.cli.app import fail, out, usage_errors
from collector.cli.options import DatabaseUrl
from collector.gate import redact, refuse_missing_file, resolve_url

db_app = typer.Typer(help="Create and migrate the history database (Alembic).", no_args_is_help=True)


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
@usage_errors
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target, e.g. -1 (one step down) or base.")],
    database_url: DatabaseUrl = None,
) -> None:
    """Migrate the database down to REVISION."""
    from collector.store.cli_commands import db_downgrade as downgrade

    refuse_missing_file(database_url)  # reading a revision must not create the SQLite file it names
    url = resolve_url(database_url)
    try:
        downgrade(url, revision)
    except Exception as exc:
        raise fail(f"downgrade of {redact(url)} failed: {exc}") from None
    out.print(f"{redact(url)}: at revision {current_revision(url)}", highlight=False, markup=False)


@db_app.command("current")
@usage_errors
def db_current(database_url: DatabaseUrl = None) -> None:
    """Print the database's current revision ('none' when it was never migrated)."""
    refuse_missing_file(database_url)  # a wrong path would read 'none' and leave an empty file behind
    out.print(current_revision(resolve_url(database_url)), highlight=False, markup=False)


def current_revision(url: str) -> str:
    from collector.store.cli_commands import db_current as current

    try:
        return current(url)
    except Exception as exc:
        raise fail(f"cannot read the revision of {redact(url)}: {exc}") from None
