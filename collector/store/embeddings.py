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

import warnings
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import Connection, Engine, delete, func, select

from collector.embeddings import EmbeddingIdentity
from collector.store import models as m
from collector.store.engine import insert_ignore

VECTOR_DTYPE = np.dtype("<f2")  # little-endian float16 on every platform
CHUNK = 500  # keys per IN (...) lookup and rows per insert
NORM_TOLERANCE = 1e-2  # a stored normalised vector's norm may be off 1 by float16 rounding, not more


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


def to_blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=VECTOR_DTYPE).tobytes()


def from_blob(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=VECTOR_DTYPE).astype(np.float32)


class StoredEmbeddings:
    """The embedder cache backed by SQL (``get_many`` / ``put_many`` / ``quantise``).

    ``backend`` and ``model`` name the embedder; its dimension is learnt from the first vectors it
    writes, or from the newest stored identity of that backend and model when it only reads.
    """

    def __init__(self, engine: Engine, backend: str, model: str, *, normalised: bool = True) -> None:
        self.engine = engine
        self.backend = backend
        self.model = model
        self.normalised = normalised
        self.dimension: int | None = None
        self._identity_id: int | None = None
        self.n_read = 0  # vectors found here (texts the model did not have to embed again)
        self.n_written = 0
        self.n_invalid = 0  # stored vectors read back broken (re-embedded and replaced)
        self._invalid: set[str] = set()  # their keys: put_many replaces these rows
        self.warn: Callable[[str], None] | None = None  # where broken vectors are reported

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
        found: dict[str, np.ndarray] = {}
        bad: list[str] = []
        if not keys:
            return found
        v = m.EmbeddingVector
        with self.engine.connect() as conn:
            ident = self._find_identity(conn)
            if ident is None:
                return found
            for start in range(0, len(keys), CHUNK):
                chunk = list(keys[start : start + CHUNK])
                q = select(v.text_sha256, v.vector).where(v.identity_id == ident, v.text_sha256.in_(chunk))
                for key, blob in conn.execute(q):
                    vec = self._check(blob)
                    if vec is None:
                        bad.append(key)
                    else:
                        found[key] = vec
        self.n_read += len(found)
        if bad:
            self.n_invalid += len(bad)
            self._invalid.update(bad)
            message = (
                f"{len(bad)} stored vector(s) of {self.backend}:{self.model} were invalid (wrong length, "
                "not finite or not unit length): re-embedding them and replacing the stored rows"
            )
            if self.warn is not None:
                self.warn(message)
            else:
                warnings.warn(message, RuntimeWarning, stacklevel=2)
        return found

    def _check(self, blob: bytes) -> np.ndarray | None:
        """The vector in ``blob``, or None if it is not one this identity could have written: the
        wrong length, a NaN or infinity, all zeros, or (a local model, whose rows are stored
        L2-normalised) a norm off 1 by more than 1e-2. A remote encoder's rows are stored at its own
        scale (the embedder normalises them after reading), so only a zero norm is wrong there."""
        try:
            vec = from_blob(blob)
        except (ValueError, TypeError):  # a blob of an odd number of bytes
            return None
        if vec.shape[0] != self.dimension or not np.isfinite(vec).all():
            return None
        norm = float(np.linalg.norm(vec))
        if not np.isfinite(norm) or norm <= 1e-6:
            return None
        if self.normalised and self.backend.startswith("local-") and abs(norm - 1.0) > NORM_TOLERANCE:
            return None
        return vec

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

    def rekey(self, backend: str) -> None:
        """Read and write vectors under another backend from now on (an embedder fell back to torch)."""
        self.backend = backend
        self._identity_id = None
        self.dimension = None

    @staticmethod
    def quantise(vectors: np.ndarray) -> np.ndarray:
        """``vectors`` rounded to what is stored (float16), as float32."""
        return np.asarray(vectors, dtype=np.float32).astype(VECTOR_DTYPE).astype(np.float32)

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


__all__ = ["VECTOR_DTYPE", "StoredEmbeddings", "ensure_identity", "run_identities"]
