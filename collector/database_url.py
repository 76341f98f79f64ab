"""Where the database is: the URL a command uses, and the same URL safe to print.

Standard library only, so the config and every message that names the database can use it without
importing SQLAlchemy (``collector.store.engine`` re-exports both functions for its callers).
"""

from __future__ import annotations

import re

from collector import environment
from collector.vocabulary import DEFAULT_DATABASE_URL


def resolve_url(explicit: str | None = None) -> str:
    """Explicit URL > ``COLLAPSE_WATCH_DATABASE_URL`` > a SQLite file in the working directory."""
    return explicit or environment.database_url() or DEFAULT_DATABASE_URL


def redact_url(url: str) -> str:
    """The URL with any password removed, for messages and logs."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1@", url)
