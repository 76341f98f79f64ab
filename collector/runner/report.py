"""What a run reports (``RunReport``) and how it ends (``_Close``, kept to retry after an outage)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collector.embeddings import EmbeddingIdentity

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class RunReport:
    """What one run did, for logs, the CLI and the demo."""

    model: str
    version: str | None
    run_id: int | None
    status: str
    n_samples: int
    n_errors: int
    duration_seconds: float
    error: str | None = None


class RunInterrupted(Exception):
    """The stop event was set, or the run's deadline passed, while sampling."""


@dataclass(frozen=True)
class _Close:
    """How a run ends: what ``Store.finish_run`` is given (kept to retry after an outage)."""

    status: str
    error: str | None
    result: object = None
    identity: EmbeddingIdentity | None = None


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
