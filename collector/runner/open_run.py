"""One run being written: its outcomes buffered, stored in batches and counted; its close."""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING

from collector.config import ModelConfig, config_hash
from collector.metrics.base import Sample
from collector.redaction import redact
from collector.runner.report import RunReport, _Close, _describe
from collector.scored_subset import BottomK
from collector.sources.base import SampleOutcome
from collector.store.api import SampleRecord
from collector.store.text import label_problem
from collector.vetting import vet

if TYPE_CHECKING:
    from collector.embeddings import EmbeddingIdentity
    from collector.runner.lifecycle import Runner

FLUSH_EVERY = 16  # samples; a run is also flushed every FLUSH_SECONDS so a kill loses little
FLUSH_SECONDS = 5.0


def to_record(o: SampleOutcome) -> SampleRecord:
    """The stored form of an outcome (the caller ran it through ``vet`` first)."""
    return SampleRecord(
        prompt_key=o.prompt_id,
        prompt=o.prompt,
        output=o.output if o.error is None else None,
        sample_index=o.sample_index,
        created_at=o.created_at,
        prompt_tokens=o.prompt_tokens,
        completion_tokens=o.completion_tokens,
        decoding=o.decoding or None,
        latency_seconds=o.latency_seconds,
        finish_reason=o.finish_reason,
        error=o.error,
    )


def resolve_version(model: ModelConfig, outcome: SampleOutcome) -> str | None:
    """The version this outcome belongs to: the record's own (a pulled line's ``version`` field,
    what the server reported), else the configured one, which applies only to records without."""
    if model.version_from == "config":
        return outcome.version or model.version
    return outcome.version


class _OpenRun:
    """Buffers outcomes of one run and appends them to the store in batches (sampling), or follows
    the batches a pull pass stores (pull); keeps the bounded sample of outputs to score."""

    def __init__(
        self,
        runner: Runner,
        model: ModelConfig,
        probe_set_id: int | None,
        *,
        source_kind: str,
        version: str | None = None,
        secrets: list[str] | None = None,
    ) -> None:
        self.runner = runner
        self.store = runner.store
        self.model = model
        self.probe_set_id = probe_set_id
        self.source_kind = source_kind
        self.version = version
        self.secrets = secrets or []
        self.run_id: int | None = None
        self.pending: list[SampleOutcome] = []
        self.scored: BottomK[Sample] = BottomK(model.max_scored_samples)
        self.n_ok = 0
        self.n_total = 0
        self.n_errors = 0
        self.n_quarantined = 0
        self.first_error: str | None = None
        self.versions_seen: Counter[str] = Counter()
        self.prompts: set[str] = set()
        self.last_flush = time.monotonic()
        self._indexes: dict[str, int] = {}

    def next_index(self, prompt_id: str) -> int:
        """The next sample index of ``prompt_id`` in this run (unique per run, prompt)."""
        i = self._indexes.get(prompt_id, 0)
        self._indexes[prompt_id] = i + 1
        return i

    def note(self, o: SampleOutcome) -> None:
        """Count an outcome already stored, and offer it to the scored sample."""
        self.n_total += 1
        if not o.ok:
            self.n_errors += 1
            self.first_error = self.first_error or o.error
            return
        self.prompts.add(o.prompt_id)
        sample = Sample(prompt_id=o.prompt_id, output=o.output or "", prompt=o.prompt)
        self.n_ok += 1
        self.scored.offer(o.prompt_id, o.sample_index, sample)

    def add(self, o: SampleOutcome) -> None:
        reported = resolve_version(self.model, o)
        o.model_reported = None  # not stored for a sampled run: never a reason to refuse the sample
        problem = label_problem(reported) if reported else None
        if problem is not None:  # a server-reported label that would break tables and the exposition
            o.output, o.error, reported = None, f"reported version label {problem}", None
        o = vet(o, None)
        if o.error is not None:
            o.error = redact(o.error, self.secrets)
        self.note(o)
        if reported:
            self.versions_seen[reported[:200]] += 1
        self.pending.append(o)
        if len(self.pending) >= FLUSH_EVERY or time.monotonic() - self.last_flush >= FLUSH_SECONDS:
            self.flush()

    def begin(self) -> None:
        if self.version is None and self.versions_seen:
            self.version = self.versions_seen.most_common(1)[0][0]
        if self.version is None:
            return  # nothing told us the version yet (e.g. every call failed): keep buffering
        source = self.model.version_from if self.model.version_from != "config" else "config"
        self.run_id = self.store.begin_run(
            self.model.name,
            self.version,
            probe_set_id=self.probe_set_id,
            config_hash=config_hash(self.model),
            source_kind=self.source_kind,
            version_source=source.split(":")[0],
            owner=self.runner.owner,
        )
        self.runner._track(self.run_id, True)

    def flush(self) -> None:
        if self.run_id is None:
            self.begin()
        if self.run_id is None or not self.pending:
            return
        self.store.add_samples(self.run_id, [to_record(o) for o in self.pending])
        self.pending = []
        self.last_flush = time.monotonic()

    def close(
        self,
        status: str,
        error: str | None,
        start: float,
        result: object = None,
        identity: EmbeddingIdentity | None = None,
    ) -> RunReport:
        error = None if error is None else redact(error, self.secrets)
        try:
            if self.run_id is None and self.pending:
                # Every call failed before any version was known: store the failures under a fallback.
                self.version = self.version or self.runner._fallback_version(self.model) or "unknown"
                self.flush()
            elif self.pending and self.run_id is not None:
                self.flush()
        except Exception as exc:  # storing the last batch failed: the run still gets closed
            status, error = "failed", f"storing samples failed: {redact(_describe(exc), self.secrets)}"
            result = None
        if self.run_id is not None:
            self.runner.finish(self.run_id, _Close(status, error, result, identity))
            self.runner._track(self.run_id, False)
        elif status != "interrupted":
            return self.runner._failed_run(self.model, error or "no samples", start, self.secrets)
        return RunReport(
            model=self.model.name,
            version=self.version,
            run_id=self.run_id,
            status=status,
            n_samples=self.n_total,
            n_errors=self.n_errors,
            duration_seconds=time.monotonic() - start,
            error=error,
        )
