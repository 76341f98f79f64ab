"""Programmatic Alembic: upgrade, downgrade and current, with no alembic.ini needed.

The migrations live in the repository's top-level ``migrations/`` folder (the design card fixes it
there). ``script_location`` is an absolute path, so any working directory works: an installed wheel
carries a copy as ``collector/_migrations`` (``setup.py`` puts it there), which is used when present;
otherwise the package runs from a checkout or an editable install and ``migrations/`` is the folder
beside ``collector/`` (see docs/sql.md).

On PostgreSQL, ``upgrade`` and ``downgrade`` hold a session-level advisory lock for the schema being
migrated, so several processes migrating one fresh database at once (replicas starting together,
``db upgrade`` run by each) take turns: the first migrates, the others then find it at head.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from collector.store.engine import make_engine, resolve_url

MIGRATION_LOCK_CLASS = (
    0x6377_6D67  # "cwmg": the first key of pg_advisory_lock(int, int); the second is the schema
)
PACKAGE_DIR = Path(__file__).resolve().parents[1]
# Where the migrations are looked for, in order: inside an installed wheel, then a source checkout.
CANDIDATES = (PACKAGE_DIR / "_migrations", PACKAGE_DIR.parent / "migrations")


def migrations_dir(candidates: tuple[Path, ...] = CANDIDATES) -> Path:
    """The first of ``candidates`` that holds an Alembic ``env.py``; an error naming all of them."""
    for folder in candidates:
        if (folder / "env.py").is_file():
            return folder
    looked = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"Alembic migrations not found (looked in {looked}); install collapse-watch from its wheel "
        "or run from a checkout that has migrations/"
    )


def alembic_config(url: str | None = None) -> Config:
    """An Alembic Config pointing at the migrations folder and the resolved database URL."""
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", resolve_url(url).replace("%", "%%"))
    return cfg


@contextmanager
def migration_lock(url: str | None = None) -> Iterator[None]:
    """Hold PostgreSQL's advisory lock for migrating the current schema (no-op on other databases).

    The lock is session-level on a connection of its own, so it is released when the block ends or
    the process dies; Alembic migrates on its own connection meanwhile.
    """
    engine = make_engine(url)
    try:
        if engine.dialect.name != "postgresql":
            yield
            return
        key = "CAST(:cls AS integer), hashtext(coalesce(current_schema(), 'public'))"
        with engine.connect() as conn:
            conn.execute(text(f"SELECT pg_advisory_lock({key})"), {"cls": MIGRATION_LOCK_CLASS})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text(f"SELECT pg_advisory_unlock({key})"), {"cls": MIGRATION_LOCK_CLASS})
                conn.commit()
    finally:
        engine.dispose()


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Upgrade the database at ``url`` to ``revision`` (one process at a time per schema)."""
    with migration_lock(url):
        command.upgrade(alembic_config(url), revision)


def downgrade(url: str | None, revision: str) -> None:
    """Downgrade the database at ``url`` to ``revision`` ('base' empties it)."""
    with migration_lock(url):
        command.downgrade(alembic_config(url), revision)


def head() -> str:
    """The newest revision of the shipped migrations."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head() or "none"


def current(url: str | None = None) -> str:
    """The database's revision, or 'none' for an unmigrated database."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rev = MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
    return rev or "none"
