"""Retention: prune raw sample text older than N days, and the stored embeddings nothing can use
any more; metric values are kept forever."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, exists, update

from collector.store import models as m
from collector.store.api import Store


def prune_sample_text(store: Store, days: int, now: datetime | None = None) -> int:
    """Blank the bodies of texts used only by samples older than ``days``; returns texts pruned.

    Sample rows (hash, tokens, latency, error), runs and metric values stay; a text still used by a
    newer sample keeps its body. Duplicate detection keeps working on the hash.
    """
    if days < 1:
        raise ValueError(f"retention days must be >= 1, got {days}")
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    s = m.SampleRow
    recent = exists().where(s.text_id == m.TextBody.id, s.created_at >= cutoff)
    old = exists().where(s.text_id == m.TextBody.id, s.created_at < cutoff)
    with store.engine.begin() as conn:
        res = conn.execute(
            update(m.TextBody)
            .where(old, ~recent, (m.TextBody.body.is_not(None)) | (m.TextBody.raw.is_not(None)))
            .values(body=None, raw=None)
        )
        return res.rowcount


def prune_embeddings(store: Store, days: int, now: datetime | None = None) -> int:
    """Delete stored embeddings that no assessment can read any more; returns vectors deleted.

    A vector goes when its text was pruned (a run without its texts cannot be rescored), or when it
    is older than ``days`` and belongs to no stored text at all (an output of a file given to
    ``compare`` beside a stored version).
    """
    if days < 1:
        raise ValueError(f"retention days must be >= 1, got {days}")
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    v, t = m.EmbeddingVector, m.TextBody
    pruned = exists().where(t.sha256 == v.text_sha256, t.body.is_(None), t.raw.is_(None))
    orphan = ~exists().where(t.sha256 == v.text_sha256) & (v.created_at < cutoff)
    with store.engine.begin() as conn:
        return conn.execute(delete(v).where(pruned | orphan)).rowcount


__all__ = ["prune_embeddings", "prune_sample_text"]
