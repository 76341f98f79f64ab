"""What every store of embedding vectors shares, without SQL: how a vector is kept (little-endian
float16 bytes), the check of a vector read back, and the state of one embedder's identity.

``StoredEmbeddings`` (the history database, through SQLAlchemy) and ``LocalVectorCache`` (the
gate's cache file, read with the standard library's ``sqlite3``) are both ``VectorRows``: the same
identity rules, counters and checks, whichever reads the rows.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable

import numpy as np

VECTOR_DTYPE = np.dtype("<f2")  # little-endian float16 on every platform
NORM_TOLERANCE = 1e-2  # a stored normalised vector's norm may be off 1 by float16 rounding, not more


def to_blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=VECTOR_DTYPE).tobytes()


def from_blob(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=VECTOR_DTYPE).astype(np.float32)


class VectorRows:
    """One embedder's vectors in a store: its identity (backend, model, dimension once known,
    normalisation), what was read, written and found broken, and the check of a stored row."""

    def __init__(self, backend: str, model: str, *, normalised: bool = True) -> None:
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

    def _accept(self, rows: Iterable[tuple[str, bytes]]) -> dict[str, np.ndarray]:
        """The valid vectors of ``(key, blob)`` rows read back; the broken ones are counted, kept for
        ``put_many`` to replace, and reported once (``warn``, else a RuntimeWarning)."""
        found: dict[str, np.ndarray] = {}
        bad: list[str] = []
        for key, blob in rows:
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
                warnings.warn(message, RuntimeWarning, stacklevel=3)
        return found

    def rekey(self, backend: str) -> None:
        """Read and write vectors under another backend from now on (an embedder fell back to torch)."""
        self.backend = backend
        self._identity_id = None
        self.dimension = None

    @staticmethod
    def quantise(vectors: np.ndarray) -> np.ndarray:
        """``vectors`` rounded to what is stored (float16), as float32."""
        return np.asarray(vectors, dtype=np.float32).astype(VECTOR_DTYPE).astype(np.float32)


__all__ = ["NORM_TOLERANCE", "VECTOR_DTYPE", "VectorRows", "from_blob", "to_blob"]
