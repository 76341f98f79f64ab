"""One collection run of one model: sample -> store (in batches, as they arrive) -> score -> close.

Guarantees (issue #4 and #3):

* A run row exists from the first stored sample on, in status ``running``; samples are appended
  in batches while sampling goes on, so a killed process keeps what it sampled, and the run only
  counts as complete once ``finish_run`` commits its status together with its metric values.
  On the next start ``Store.mark_interrupted_runs`` turns a leftover ``running`` run into
  ``interrupted``.
* A request that fails is stored as a sample with its error; metrics are computed only when at
  least ``min_samples`` outputs arrived (status ``partial`` when some failed), otherwise the run is
  ``failed`` with the reason.  A source that cannot work at all fails its run, never the process.
* ``stop`` (the scheduler's shutdown event) is polled between samples: the run stores what it has
  and is closed as ``interrupted``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from collector.config import ModelConfig, config_hash
from collector.metrics.base import Sample
from collector.probes import Probe, load_probes, probe_set_hash
from collector.scoring import EmbedFn, score_batch
from collector.sources import is_pull, make_source
from collector.sources.base import SampleOutcome, SampleRequest
from collector.store.api import SampleRecord, Store

log = logging.getLogger("collapse_watch.runner")

FLUSH_EVERY = 16  # samples; a run is also flushed every FLUSH_SECONDS so a kill loses little
FLUSH_SECONDS = 5.0
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
    """The stop event was set while sampling."""


def sample_requests(probes: Iterable[Probe], k: int) -> list[SampleRequest]:
    """k requests per probe prompt, interleaved by sample index so an early stop covers every prompt."""
    probes = list(probes)
    return [SampleRequest(p.id, p.text, i) for i in range(k) for p in probes]


def to_record(o: SampleOutcome) -> SampleRecord:
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
    """The version this outcome belongs to: the configured one, or what the source reported."""
    if model.version_from == "config":
        return model.version or outcome.version
    return outcome.version


class Runner:
    """Runs collections for configured models into one store (thread-safe: no shared mutable state)."""

    def __init__(
        self,
        store: Store,
        embed: EmbedFn | None,
        *,
        n_boot: int = 200,
        seed: int = 0,
        on_finished: Callable[[ModelConfig, RunReport], None] | None = None,
    ) -> None:
        self.store = store
        self.embed = embed
        self.n_boot = n_boot
        self.seed = seed
        self.on_finished = on_finished

    # -- the job ---------------------------------------------------------------------------------
    def run(
        self, model: ModelConfig, stop: threading.Event | None = None, progress: Progress | None = None
    ) -> list[RunReport]:
        """Collect once. Sampling sources give one run; pull sources one run per version seen."""
        stop = stop or threading.Event()
        source = make_source(model)
        try:
            if is_pull(source):
                reports = self._pull(model, source, stop)  # type: ignore[arg-type]
            else:
                reports = [self._sample(model, source, stop, progress)]  # type: ignore[arg-type]
        finally:
            source.close()
        for report in reports:
            log.info(
                "run model=%s version=%s run_id=%s status=%s samples=%d errors=%d duration=%.1fs%s",
                report.model,
                report.version,
                report.run_id,
                report.status,
                report.n_samples,
                report.n_errors,
                report.duration_seconds,
                f" error={report.error!r}" if report.error else "",
            )
            if self.on_finished is not None and report.run_id is not None:
                self.on_finished(model, report)
        return reports

    def _sample(
        self, model: ModelConfig, source: object, stop: threading.Event, progress: Progress | None
    ) -> RunReport:
        start = time.monotonic()
        probes = load_probes(model.probes)
        probe_set = self.store.ensure_probe_set(
            f"{model.name}:{probe_set_hash(probes)[:12]}", [(p.id, p.text) for p in probes]
        )
        requests = sample_requests(probes, model.samples_per_prompt)
        run = _OpenRun(self.store, model, probe_set, source_kind=getattr(source, "kind", "unknown"))
        try:
            for outcome in source.sample(requests, model.decoding, progress):  # type: ignore[attr-defined]
                run.add(outcome)
                if stop.is_set():
                    raise RunInterrupted
            run.flush()
        except RunInterrupted:
            return run.close("interrupted", "collector stopped before the run finished", start)
        except Exception as exc:  # the source broke: record it on the run, never kill the process
            return run.close("failed", f"{type(exc).__name__}: {exc}", start)
        return self._score_and_close(model, run, len(probes), start)

    def _pull(self, model: ModelConfig, source: object, stop: threading.Event) -> list[RunReport]:
        start = time.monotonic()
        outcomes = list(source.pull())  # type: ignore[attr-defined]
        by_version: dict[str | None, list[SampleOutcome]] = {}
        for o in outcomes:
            by_version.setdefault(resolve_version(model, o), []).append(o)
        # A malformed record has no version: record its error on the run of the most common version
        # instead of opening a run of a made-up version "unknown" (which would take an ordinal).
        stray = [o for o in by_version.get(None, []) if not o.ok]
        if stray and len(by_version) > 1:
            by_version[None] = [o for o in by_version[None] if o.ok]
            if not by_version[None]:
                del by_version[None]
            main = max((v for v in by_version if v is not None), key=lambda v: len(by_version[v]))
            by_version[main] += stray
        reports = []
        for version, group in by_version.items():
            run = _OpenRun(
                self.store, model, None, source_kind=getattr(source, "kind", "pull"), version=version
            )
            for o in group:
                run.add(o)
            run.flush()
            n_prompts = len({o.prompt_id for o in group if o.ok})
            reports.append(self._score_and_close(model, run, n_prompts, start))
        source.commit()  # type: ignore[attr-defined]  # only after every sample is stored
        return reports

    def _score_and_close(self, model: ModelConfig, run: _OpenRun, n_prompts: int, start: float) -> RunReport:
        ok = run.ok_samples
        if run.run_id is None:
            return run.close("failed", run.first_error or "no samples", start)
        needed = model.effective_min_samples(n_prompts)
        if len(ok) < needed:
            reason = f"only {len(ok)} of {run.n_total} samples succeeded (need {needed})"
            if run.first_error:
                reason += f"; first error: {run.first_error}"
            return run.close("failed", reason, start)
        try:
            metrics = None if model.metrics == "default" else list(model.metrics)
            scored = score_batch(
                run.version or "", ok, metrics=metrics, embed=self.embed, n_boot=self.n_boot, seed=self.seed
            )
        except Exception as exc:
            return run.close("failed", f"scoring failed: {type(exc).__name__}: {exc}", start)
        status = "partial" if run.n_errors else "succeeded"
        return run.close(status, None, start, result=scored.result)


class _OpenRun:
    """Buffers outcomes of one run and appends them to the store in batches."""

    def __init__(
        self,
        store: Store,
        model: ModelConfig,
        probe_set_id: int | None,
        *,
        source_kind: str,
        version: str | None = None,
    ) -> None:
        self.store = store
        self.model = model
        self.probe_set_id = probe_set_id
        self.source_kind = source_kind
        self.version = version
        self.run_id: int | None = None
        self.pending: list[SampleOutcome] = []
        self.ok_samples: list[Sample] = []
        self.n_total = 0
        self.n_errors = 0
        self.first_error: str | None = None
        self.versions_seen: Counter[str] = Counter()
        self.last_flush = time.monotonic()

    def add(self, o: SampleOutcome) -> None:
        self.n_total += 1
        if o.ok:
            self.ok_samples.append(Sample(prompt_id=o.prompt_id, output=o.output or "", prompt=o.prompt))
        else:
            self.n_errors += 1
            self.first_error = self.first_error or o.error
        reported = resolve_version(self.model, o)
        if reported:
            self.versions_seen[reported] += 1
        self.pending.append(o)
        if len(self.pending) >= FLUSH_EVERY or time.monotonic() - self.last_flush >= FLUSH_SECONDS:
            self.flush()

    def _begin(self) -> None:
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
        )

    def flush(self) -> None:
        if self.run_id is None:
            self._begin()
        if self.run_id is None or not self.pending:
            return
        self.store.add_samples(self.run_id, [to_record(o) for o in self.pending])
        self.pending = []
        self.last_flush = time.monotonic()

    def close(self, status: str, error: str | None, start: float, result: object = None) -> RunReport:
        if self.run_id is None and self.pending:
            # Every call failed before any version was known: store the failures under "unknown".
            self.version = self.version or self.model.version or "unknown"
            self.flush()
        elif self.pending and self.run_id is not None:
            self.flush()
        if self.run_id is not None:
            self.store.finish_run(self.run_id, status, error, result)  # type: ignore[arg-type]
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
