"""Embeddings stored in the history database: one float16 vector per distinct text and embedder.

An :class:`collector.embeddings.Embedder` built with ``StoredEmbeddings`` as its cache looks every
text up here (by the SHA-256 of its UTF-8 bytes, the ``texts.sha256`` of the history schema) before
it runs the model, and writes what it had to compute. So a run's outputs are embedded once, when
the run is scored, and every later assessment, comparison or replica reads them back: the cost of
a run is one embedding of its own new texts.

Vectors are keyed by their *embedding identity* (backend, model, dimension, normalisation; table
``embedding_identities``): a different embedder never reads another's vectors. They are stored as
float16 (2 bytes a dimension: 768 B for MiniLM), and the embedder rounds the vectors it computes
the same way, so a value never depends on whether its vectors came from the model or from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import Connection, Engine, delete, func, select

from collector.embeddings import Embedder, EmbeddingIdentity
from collector.store import models as m
from collector.store.engine import insert_ignore
from collector.store.vector_rows import VectorRows, to_blob

CHUNK = 500  # keys per IN (...) lookup and rows per insert


def ensure_identity(conn: Connection, identity: EmbeddingIdentity) -> int:
    """The id of ``identity``'s row, created on first use (safe against a racing replica)."""
    label = identity.label()
    row = {
        "label": label,
        "backend": identity.backend,
        "model": identity.model,
        "dimension": identity.dimension,
        "normalised": identity.normalised,
        "created_at": datetime.now(UTC),
    }
    insert_ignore(conn, m.EmbeddingIdentityRow.__table__, [row], ["label"])
    return int(conn.scalar(select(m.EmbeddingIdentityRow.id).where(m.EmbeddingIdentityRow.label == label)))


class StoredEmbeddings(VectorRows):
    """The embedder cache backed by SQL (``get_many`` / ``put_many`` / ``quantise``).

    ``backend`` and ``model`` name the embedder; its dimension is learnt from the first vectors it
    writes, or from the newest stored identity of that backend and model when it only reads.
    """

    def __init__(self, engine: Engine, backend: str, model: str, *, normalised: bool = True) -> None:
        super().__init__(backend, model, normalised=normalised)
        self.engine = engine

    @classmethod
    def of(cls, embedder: Embedder, engine: Engine) -> StoredEmbeddings:
        """The store of ``embedder``'s vectors in ``engine``'s database, keyed by its identity: the
        engine and precision of a local model, else the server's."""
        return cls(engine, embedder.backend_kind, embedder.model_id)

    def _find_identity(self, conn: Connection) -> int | None:
        if self._identity_id is not None:
            return self._identity_id
        r = m.EmbeddingIdentityRow
        q = select(r.id, r.dimension).where(
            r.backend == self.backend, r.model == self.model, r.normalised == self.normalised
        )
        if self.dimension is not None:
            q = q.where(r.dimension == self.dimension)
        row = conn.execute(q.order_by(r.id.desc()).limit(1)).one_or_none()
        if row is not None:
            self._identity_id, self.dimension = int(row.id), int(row.dimension)
        return self._identity_id

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored vectors of the given text keys (absent keys are simply missing from the result)."""
        if not keys:
            return {}
        v = m.EmbeddingVector
        rows: list[tuple[str, bytes]] = []
        with self.engine.connect() as conn:
            ident = self._find_identity(conn)
            if ident is None:
                return {}
            for start in range(0, len(keys), CHUNK):
                chunk = list(keys[start : start + CHUNK])
                q = select(v.text_sha256, v.vector).where(v.identity_id == ident, v.text_sha256.in_(chunk))
                rows.extend((k, b) for k, b in conn.execute(q))
        return self._accept(rows)

    def put_many(self, items: dict[str, np.ndarray]) -> None:
        """Store vectors (a text already stored under this identity, e.g. by a replica, is kept)."""
        if not items:
            return
        dim = int(next(iter(items.values())).shape[0])
        if self.dimension not in (None, dim):
            self._identity_id = None  # the model behind the name changed: a new identity
        self.dimension = dim
        now = datetime.now(UTC)
        identity = EmbeddingIdentity(self.backend, self.model, dim, self.normalised)
        with self.engine.begin() as conn:
            self._identity_id = ensure_identity(conn, identity)
            rows = [
                {
                    "identity_id": self._identity_id,
                    "text_sha256": k,
                    "vector": to_blob(vec),
                    "created_at": now,
                }
                for k, vec in items.items()
            ]
            broken = [k for k in items if k in self._invalid]
            v = m.EmbeddingVector
            for start in range(0, len(broken), CHUNK):  # replaced, not kept by the insert-ignore below
                conn.execute(
                    delete(v).where(
                        v.identity_id == self._identity_id, v.text_sha256.in_(broken[start : start + CHUNK])
                    )
                )
            self._invalid.difference_update(broken)
            for start in range(0, len(rows), CHUNK):
                insert_ignore(
                    conn,
                    m.EmbeddingVector.__table__,
                    rows[start : start + CHUNK],
                    ["identity_id", "text_sha256"],
                )
        self.n_written += len(items)

    def close(self) -> None:
        """Nothing to close: the engine belongs to the store."""

    def __len__(self) -> int:
        with self.engine.connect() as conn:
            ident = self._find_identity(conn)
            if ident is None:
                return 0
            q = (
                select(func.count())
                .select_from(m.EmbeddingVector)
                .where(m.EmbeddingVector.identity_id == ident)
            )
            return int(conn.scalar(q) or 0)


def run_identities(engine: Engine, run_ids: Sequence[int]) -> dict[int, str | None]:
    """The embedding identity label each run was scored with (None: not recorded)."""
    r, e = m.Run, m.EmbeddingIdentityRow
    out: dict[int, str | None] = {}
    with engine.connect() as conn:
        for start in range(0, len(run_ids), CHUNK):
            chunk = list(run_ids[start : start + CHUNK])
            q = select(r.id, e.label).outerjoin(e, e.id == r.embedding_identity_id).where(r.id.in_(chunk))
            out.update({int(rid): label for rid, label in conn.execute(q)})
    return out


__all__ = ["CHUNK", "StoredEmbeddings", "ensure_identity", "run_identities"]
