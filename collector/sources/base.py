"""The source plugin interface: where model outputs come from.

Two kinds of source:

* **sampling** sources (``openai``, ``transformers``) actively sample the probe prompts:
  ``sample(requests, decoding, progress)`` yields one ``SampleOutcome`` per ``SampleRequest``, in
  completion order.  A failed request is an outcome with ``error`` set, never an exception: one bad
  request must not kill a run.  Exceptions are reserved for mistakes in the configuration (e.g. the
  API-key variable is unset), raised as ``SourceError`` before any request is made.
* **pull** sources (``jsonl``, ``sql``) read outputs that a deployment already logged:
  ``pull(limit)`` yields the records after the *committed* position; ``commit()`` persists the
  position of everything yielded so far to the state file.  The collector instead keeps the
  position in the database: ``position()`` is the JSON-safe position of everything yielded so far,
  ``restore(position)`` resumes from one, and the store advances it with the samples in one
  transaction (``collector.store.pulls``).  The contract for callers::

      outcomes = list(source.pull(limit=1000))
      store.save(outcomes)          # in one transaction
      source.commit()               # only after the store committed

  A crash between reading and storing therefore never skips a record, but a crash between storing
  and ``commit()`` re-delivers it: every pulled outcome carries a stable ``source_key`` (the same
  record always gets the same key) so the store can ignore duplicates.  Within one process a second
  ``pull()`` continues where the previous one stopped, committed or not.  Malformed records are
  yielded as outcomes with ``error`` set (naming file and line) and also listed in ``malformed``.

Sources know nothing of the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from collector.config import Decoding

Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` after each outcome."""


class SourceError(Exception):
    """A source cannot work at all (bad configuration, unreachable database, missing columns)."""


@dataclass(frozen=True)
class SampleRequest:
    """Ask for sample number ``sample_index`` of one probe prompt."""

    prompt_id: str
    prompt: str
    sample_index: int


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class SampleOutcome:
    """One sampled (or logged) output, or the error that prevented it."""

    prompt_id: str
    prompt: str
    sample_index: int
    output: str | None = None
    error: str | None = None
    latency_seconds: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    version: str | None = None  # the model version as reported by the source, if any
    model_reported: str | None = None  # the model name the server/log reports
    decoding: dict[str, Any] = field(default_factory=dict)
    created_at: datetime = field(default_factory=_now)
    source_key: str | None = None  # pull sources: a stable identity of the record, for dedup
    location: str | None = None  # pull sources: where the record is (file:line, or the SQL row)
    excerpt: str | None = None  # pull sources, malformed records: the start of the raw record

    @property
    def ok(self) -> bool:
        return self.error is None and self.output is not None


@runtime_checkable
class SamplingSource(Protocol):
    """A source that samples prompts on demand."""

    kind: str

    def sample(
        self, requests: Sequence[SampleRequest], decoding: Decoding, progress: Progress | None = None
    ) -> Iterator[SampleOutcome]: ...

    def close(self) -> None: ...


@runtime_checkable
class PullSource(Protocol):
    """A source that reads already-logged outputs incrementally."""

    kind: str
    malformed: list[str]

    def pull(self, limit: int | None = None) -> Iterator[SampleOutcome]: ...

    def commit(self) -> None: ...

    def position(self) -> dict[str, Any]: ...

    def restore(self, position: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


Source = SamplingSource | PullSource


def decoding_params(decoding: Decoding, sample_index: int) -> dict[str, Any]:
    """The parameters for one sample; a fixed ``seed`` becomes ``seed + sample_index``.

    (Sending one seed with every sample would make the k samples identical, i.e. fake collapse.)
    """
    params: dict[str, Any] = {
        "temperature": decoding.temperature,
        "top_p": decoding.top_p,
        "max_tokens": decoding.max_tokens,
    }
    if decoding.seed is not None:
        params["seed"] = decoding.seed + sample_index
    if decoding.stop:
        params["stop"] = list(decoding.stop)
    return params
