"""Embeddings from an OpenAI-compatible ``/v1/embeddings`` server (the ``openai`` embedding backend).

text-embeddings-inference, vLLM, Infinity, Ollama and OpenAI all answer
``POST {base_url}/v1/embeddings`` with ``{"model": ..., "input": [texts]}`` by
``{"data": [{"index": i, "embedding": [...]}, ...]}``.  Texts go in batches of ``batch_size``,
at most ``concurrency`` batches in flight over one ``httpx.Client``; each attempt takes a token
from the same ``TokenBucket`` the ``openai`` source uses when ``rate_limit_per_second`` is set,
and 429 / 408 / 5xx / timeouts / connection errors are retried with the source's backoff and
``Retry-After`` handling (``collector.sources.openai``).  What still fails raises
``EmbeddingError`` naming the URL, the batch and the last error; a key read from ``api_key_env``
is scrubbed from it.  No torch, no sentence-transformers: a collector whose embeddings are remote
installs without the ``local`` extra.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np

from collector.config import EmbeddingServerConfig
from collector.embeddings import Backend, Embedder
from collector.redaction import redact
from collector.sources.openai import RETRYABLE_STATUS, SNIPPET, TokenBucket, parse_retry_after

if TYPE_CHECKING:
    from collector.store.api import Store


class EmbeddingError(RuntimeError):
    """An embedding request that failed for good (after its retries)."""


def embeddings_url(base_url: str) -> str:
    """``http://h:8000`` or ``http://h:8000/v1`` -> ``http://h:8000/v1/embeddings``."""
    base = base_url.rstrip("/")
    return f"{base if base.endswith('/v1') else base + '/v1'}/embeddings"


class RemoteEncoder:
    """Encodes texts through ``/v1/embeddings``; rows come back in input order, float32."""

    kind = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        batch_size: int = 64,
        concurrency: int = 4,
        max_retries: int = 4,
        rate_limit_per_second: float | None = None,
        timeout_seconds: float = 60.0,
        api_key_env: str | None = None,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        retry_after_cap: float = 120.0,
    ) -> None:
        if batch_size < 1 or concurrency < 1 or max_retries < 0:
            raise ValueError("remote embeddings: batch_size and concurrency must be >= 1, max_retries >= 0")
        self.url = embeddings_url(base_url)
        self.model = model
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.backoff = (backoff_base, backoff_cap, retry_after_cap)
        self.dimension: int | None = None
        headers = {"Content-Type": "application/json"}
        self._secrets: list[str] = []
        if api_key_env:
            from collector.credentials import KeyProblem, read_key

            self._secrets += [v for v in (os.environ.get(api_key_env) or "",) if v]
            try:
                key = read_key(api_key_env)  # the same strip/refuse rule as every key variable
            except KeyProblem as exc:
                raise EmbeddingError(f"embeddings {self.url}: {exc} (embedding_server.api_key_env)") from None
            headers["Authorization"] = f"Bearer {key}"
            self._secrets.append(key)
        self._bucket = TokenBucket(rate_limit_per_second) if rate_limit_per_second else None
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout_seconds),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts``, shape (N, d), as the server returns them (not normalised here)."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension or 0), dtype=np.float32)
        batches = [texts[i : i + self.batch_size] for i in range(0, len(texts), self.batch_size)]
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="embeddings") as pool:
            parts = list(pool.map(self._batch, range(len(batches)), batches))
        out = np.concatenate(parts).astype(np.float32, copy=False)
        if self.dimension is not None and out.shape[1] != self.dimension:
            raise EmbeddingError(
                f"embeddings from {self.url} changed dimension: {out.shape[1]}, was {self.dimension}"
            )
        self.dimension = int(out.shape[1])
        return out

    def close(self) -> None:
        self._client.close()

    def _batch(self, number: int, texts: list[str]) -> np.ndarray:
        body = {"model": self.model, "input": texts}
        what, detail = "", ""
        for attempt in range(self.max_retries + 1):
            if self._bucket is not None:
                self._bucket.acquire()
            retry_after: float | None = None
            try:
                resp = self._client.post(self.url, json=body)
            except httpx.TimeoutException as e:
                what, detail, retryable = "timeout", type(e).__name__, True
            except httpx.TransportError as e:
                what, detail, retryable = "connection error", f"{type(e).__name__}: {e}", True
            else:
                if resp.is_success:
                    return self._parse(resp, number, len(texts))
                snippet = redact(resp.text, self._secrets)[:SNIPPET].strip()  # redact, then cut
                what, detail = f"HTTP {resp.status_code}", snippet or resp.reason_phrase
                retryable = resp.status_code in RETRYABLE_STATUS
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            if not retryable or attempt == self.max_retries:
                break
            base, cap, after_cap = self.backoff
            delay = (
                min(retry_after, after_cap)
                if retry_after is not None
                else random.uniform(0, min(cap, base * 2**attempt))
            )
            time.sleep(delay)
        message = f"{what} from {self.url} for batch {number} ({len(texts)} texts) after {attempt} retries: {detail}"
        raise EmbeddingError(redact(message, self._secrets))

    def _parse(self, resp: httpx.Response, number: int, n_texts: int) -> np.ndarray:
        where = f"response from {self.url} for batch {number}"
        try:
            data: Any = resp.json()
        except ValueError as e:
            raise EmbeddingError(
                f"malformed JSON in {where}: {e}; body starts {redact(resp.text, self._secrets)[:120]!r}"
            ) from e
        rows = data.get("data") if isinstance(data, dict) else None
        if not isinstance(rows, list) or len(rows) != n_texts:
            got = len(rows) if isinstance(rows, list) else "no"
            raise EmbeddingError(f"{where}: expected {n_texts} embeddings in 'data', got {got}")
        try:
            ordered = sorted(rows, key=lambda r: int(r.get("index", 0)))
            out = np.asarray([r["embedding"] for r in ordered], dtype=np.float32)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise EmbeddingError(f"{where}: 'data' rows need an 'embedding' list of numbers ({e})") from e
        if out.ndim != 2 or out.shape[1] == 0 or not np.isfinite(out).all():
            raise EmbeddingError(
                f"{where}: embeddings are not one finite vector per text (shape {out.shape})"
            )
        return out


def make_embedder(
    embedding_model: str,
    server: EmbeddingServerConfig | None,
    store: Store | None = None,
    backend: Backend = "auto",
) -> Embedder:
    """The configured embedder: the local model, or the ``embedding_server`` when one is set.

    With ``store`` its vectors are kept in (and read from) the history database, so stored runs are
    never embedded again.
    """
    encoder = None
    if server is not None:
        encoder = RemoteEncoder(
            server.base_url,
            server.model,
            batch_size=server.batch_size,
            concurrency=server.concurrency,
            max_retries=server.max_retries,
            rate_limit_per_second=server.rate_limit_per_second,
            timeout_seconds=server.timeout_seconds,
            api_key_env=server.api_key_env,
        )
    embedder = Embedder(embedding_model, encoder=encoder, backend=backend)
    if store is not None:
        from collector.store.embeddings import StoredEmbeddings

        embedder.cache = StoredEmbeddings.of(embedder, store.engine)
    return embedder
