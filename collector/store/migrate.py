"""Programmatic Alembic: upgrade, downgrade and current, with no alembic.ini needed.

The migrations live in the repository's top-level ``migrations/`` folder (the design card fixes it
there). ``script_location`` is the absolute path of that folder resolved relative to this package,
which works from any working directory for a source checkout or an editable install. A wheel must
ship ``migrations/`` beside the ``collector`` package for this to resolve (see docs/sql.md).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from collector.store.engine import make_engine, resolve_url

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(url: str | None = None) -> Config:
    """An Alembic Config pointing at ``migrations/`` and the resolved database URL."""
    if not (MIGRATIONS_DIR / "env.py").is_file():
        raise FileNotFoundError(
            f"Alembic migrations not found at {MIGRATIONS_DIR}; is migrations/ installed?"
        )
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", resolve_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Upgrade the database at ``url`` to ``revision``."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str | None, revision: str) -> None:
    """Downgrade the database at ``url`` to ``revision`` ('base' empties it)."""
    command.downgrade(alembic_config(url), revision)


def current(url: str | None = None) -> str:
    """The database's revision, or 'none' for an unmigrated database."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rev = MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
    return rev or "none"
