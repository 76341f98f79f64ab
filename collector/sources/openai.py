"""Sample probe prompts from an OpenAI-compatible endpoint (vLLM, llama.cpp, TGI, OpenAI).

One HTTP request per sample (``n`` is not used: several servers ignore it or share one seed),
sent from a thread pool of ``concurrency`` workers over one ``httpx.Client``.  Each attempt takes a
token from a token bucket when ``rate_limit_per_second`` is set.  429, 408, 5xx, timeouts and
connection errors are retried up to ``max_retries`` times with exponential backoff and full
jitter, or after the server's ``Retry-After`` (seconds or an HTTP date, capped).  What still fails
becomes an outcome with ``error`` set, e.g.
``HTTP 503 from http://127.0.0.1:8000/v1/chat/completions after 4 retries: overloaded``.

The API key is read from the environment variable named by ``api_key_env``, sent as
``Authorization: Bearer``, and scrubbed from every error text; it is never logged or stored.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import random
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import UTC, datetime
from typing import Any

import httpx

from collector.config import Decoding, OpenAISourceConfig
from collector.redaction import redact
from collector.sources.base import Progress, SampleOutcome, SampleRequest, SourceError, decoding_params

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 409, 425, 429}) | frozenset(range(500, 600))
SNIPPET = 300


class Cancelled(Exception):
    """The runner set ``cancel`` (SIGTERM, run deadline) while a response was arriving."""


class TokenBucket:
    """At most ``rate`` acquisitions per second on average, bursts of ``capacity``; thread-safe."""

    def __init__(self, rate: float, capacity: float = 1.0) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.rate = rate
        self.capacity = max(1.0, capacity)
        self._tokens = self.capacity
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Take one token, sleeping until it is available (reservations keep arrival order)."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1.0
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            time.sleep(wait)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date; None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def endpoint_url(base_url: str, endpoint: str) -> str:
    """``http://h:8000`` or ``http://h:8000/v1`` + chat -> ``http://h:8000/v1/chat/completions``."""
    base = base_url.rstrip("/")
    if not base.endswith("/v1"):
        base += "/v1"
    return f"{base}/chat/completions" if endpoint == "chat" else f"{base}/completions"


class OpenAISource:
    """A sampling source over an OpenAI-compatible HTTP API."""

    kind = "openai"

    def __init__(
        self,
        cfg: OpenAISourceConfig,
        *,
        version: str | None = None,
        version_from: str = "config",
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        retry_after_cap: float = 120.0,
    ) -> None:
        self.cfg = cfg
        self.url = endpoint_url(cfg.base_url, cfg.endpoint)
        self.version = version
        self.version_from = version_from
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.retry_after_cap = retry_after_cap
        self._secrets: list[str] = []
        headers = {"Content-Type": "application/json", **cfg.headers}
        self._secrets += [v for k, v in cfg.headers.items() if k.lower() in ("authorization", "api-key")]
        if cfg.api_key_env:
            from collector.credentials import KeyProblem, read_key

            self._secrets += [v for v in (os.environ.get(cfg.api_key_env) or "",) if v]
            try:
                key = read_key(cfg.api_key_env)  # stripped; inner whitespace refused
            except KeyProblem as exc:
                raise SourceError(f"openai source {self.url}: {exc} (api_key_env)") from None
            headers["Authorization"] = f"Bearer {key}"
            self._secrets.append(key)
        self.cancel = threading.Event()  # set by the runner to abandon requests (deadline, SIGTERM)
        self._bucket = TokenBucket(cfg.rate_limit_per_second) if cfg.rate_limit_per_second else None
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(cfg.timeout_seconds),
            limits=httpx.Limits(max_connections=cfg.concurrency, max_keepalive_connections=cfg.concurrency),
        )

    # -- public -----------------------------------------------------------------------------------

    def sample(
        self, requests: Sequence[SampleRequest], decoding: Decoding, progress: Progress | None = None
    ) -> Iterator[SampleOutcome]:
        """Yield one outcome per request, in completion order, at most ``concurrency`` in flight."""
        total = len(requests)
        if total == 0:
            return
        pool = ThreadPoolExecutor(max_workers=self.cfg.concurrency, thread_name_prefix="openai-source")
        try:
            futures = [pool.submit(self._guarded, r, decoding) for r in requests]
            for done, fut in enumerate(as_completed(futures), start=1):
                yield fut.result()
                if progress is not None:
                    progress(done, total)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> OpenAISource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one request ------------------------------------------------------------------------------

    def _body(self, req: SampleRequest, params: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.cfg.model, **params}
        if self.cfg.endpoint == "chat":
            body["messages"] = [{"role": "user", "content": req.prompt}]
        else:
            body["prompt"] = req.prompt
        return body

    @property
    def secrets(self) -> list[str]:
        """The values that must never appear in an error (the runner redacts with them too)."""
        return list(self._secrets)

    def _redact(self, text: str) -> str:
        return redact(text, self._secrets)

    def _post(self, body: dict[str, Any]) -> httpx.Response:
        """POST with a TOTAL deadline of ``timeout_seconds`` (connect, headers and body together).

        httpx's timeouts apply per read, so a server dripping a byte at a time would never time out;
        the body is read in raw chunks and the request abandoned once the deadline has passed.
        """
        limit = self.cfg.timeout_seconds
        end = time.monotonic() + limit
        with self._client.stream("POST", self.url, json=body, timeout=httpx.Timeout(limit)) as resp:
            chunks = []
            for chunk in resp.iter_raw():
                chunks.append(chunk)
                if self.cancel.is_set():
                    raise Cancelled
                if time.monotonic() > end:
                    raise httpx.ReadTimeout(f"response not complete within {limit:g}s", request=resp.request)
            return httpx.Response(
                resp.status_code,
                headers=resp.headers,
                content=b"".join(chunks),
                request=resp.request,
                extensions=resp.extensions,
            )

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.retry_after_cap)
        return random.uniform(0.0, min(self.backoff_cap, self.backoff_base * 2**attempt))

    def _guarded(self, req: SampleRequest, decoding: Decoding) -> SampleOutcome:
        """``_one``, with anything unexpected (and every error text) redacted into the outcome."""
        if self.cancel.is_set():
            return SampleOutcome(req.prompt_id, req.prompt, req.sample_index, error="cancelled")
        try:
            return self._one(req, decoding)
        except Exception as exc:  # e.g. an illegal header value: never let a key escape in a traceback
            out = SampleOutcome(req.prompt_id, req.prompt, req.sample_index)
            out.error = self._redact(f"request to {self.url} failed: {type(exc).__name__}: {exc}")
            return out

    def _one(self, req: SampleRequest, decoding: Decoding) -> SampleOutcome:
        params = decoding_params(decoding, req.sample_index)
        body = self._body(req, params)
        base = SampleOutcome(req.prompt_id, req.prompt, req.sample_index, decoding=params)
        what, detail, retryable = "", "", False
        retries = 0
        for attempt in range(self.cfg.max_retries + 1):
            retries = attempt
            if self._bucket is not None:
                self._bucket.acquire()
            t0 = time.monotonic()
            retry_after: float | None = None
            try:
                resp = self._post(body)
            except Cancelled:
                what, detail, retryable = "cancelled", "the run was stopped (shutdown or run deadline)", False
            except httpx.TimeoutException as e:
                what, detail, retryable = (
                    "timeout",
                    f"no complete response within {self.cfg.timeout_seconds:g}s ({type(e).__name__})",
                    True,
                )
            except httpx.TransportError as e:
                what, detail, retryable = "connection error", f"{type(e).__name__}: {e}", True
            else:
                latency = time.monotonic() - t0
                if resp.is_success:
                    return self._parse(base, resp, latency)
                what = f"HTTP {resp.status_code}"
                detail = self._redact(resp.text)[:SNIPPET].strip() or resp.reason_phrase  # redact, then cut
                retryable = resp.status_code in RETRYABLE_STATUS
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            if not retryable or attempt == self.cfg.max_retries or self.cancel.is_set():
                break
            delay = self._backoff(attempt, retry_after)
            log.debug("%s from %s; retry %d in %.2fs", what, self.url, attempt + 1, delay)
            self.cancel.wait(delay)
        tail = "(not retried)" if not retryable and not retries else f"after {retries} retries"
        base.error = self._redact(f"{what} from {self.url} {tail}: {detail}")
        return base

    def _parse(self, out: SampleOutcome, resp: httpx.Response, latency: float) -> SampleOutcome:
        out.latency_seconds = latency
        try:
            data = resp.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            snippet = self._redact(resp.text)[:120]
            out.error = self._redact(
                f"malformed JSON in response from {self.url}: {e}; body starts {snippet!r}"
            )
            return out
        choice = None
        if isinstance(data, dict) and isinstance(data.get("choices"), list) and data["choices"]:
            choice = data["choices"][0]
        if not isinstance(choice, dict):
            out.error = self._redact(
                f"response from {self.url} has no choices: {self._redact(resp.text)[:120]!r}"
            )
            return out
        if self.cfg.endpoint == "chat":
            message = choice.get("message")
            text = message.get("content") if isinstance(message, dict) else None
        else:
            text = choice.get("text")
        if not isinstance(text, str):
            reason = choice.get("finish_reason")
            out.error = f"response from {self.url} has no text in choices[0] (finish_reason {reason!r})"
            return out
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        out.output = text
        out.finish_reason = choice.get("finish_reason")
        out.prompt_tokens = _int(usage.get("prompt_tokens"))
        out.completion_tokens = _int(usage.get("completion_tokens"))
        out.model_reported = data.get("model") if isinstance(data.get("model"), str) else None
        out.version = self._version(resp, out.model_reported)
        return out

    def _version(self, resp: httpx.Response, model_reported: str | None) -> str | None:
        if self.version_from == "response_model":
            return model_reported
        if self.version_from.startswith("header:"):
            return resp.headers.get(self.version_from.split(":", 1)[1])
        return self.version


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None
