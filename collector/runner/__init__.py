"""One collection run of one model: sample -> store (in batches, as they arrive) -> score -> close.

Guarantees (issues #4, #3 and #11):

* A run row exists from the first stored sample on, in status ``running``, with its owner process
  (``collector.owner``); samples are appended in batches while sampling goes on, so a killed
  process keeps what it sampled, and the run only counts as complete once ``finish_run`` commits
  its status together with its metric values.  On the next start
  ``Store.reclaim_orphaned_runs`` turns a run whose owner is gone into ``interrupted``.
* Every run ends in a terminal state whatever is raised: a source that cannot even be built or
  opened (unreachable database, missing key) is a ``failed`` run with the reason; a glob matching
  no file is a ``no_data`` run.  A request that fails is stored as a sample with its error; metrics
  are computed only when at least ``min_samples`` outputs arrived (status ``partial`` when some
  failed or were quarantined), otherwise the run is ``failed`` with the reason.
* Pull sources are read in batches of ``PULL_BATCH``; each batch is stored and the source position
  advanced in one transaction (``Store.commit_pull``).  A record that cannot be stored (unparsable,
  label too long) is quarantined with its location and reason and the pass goes on.  Memory is
  bounded: a run scores a uniform sample of at most ``max_scored_samples`` outputs
  (``collector.scored_subset``: the same sample its assessment reloads).
* ``stop`` (the scheduler's shutdown event) and the model's ``run_timeout_seconds`` are checked
  between samples and batches: the run stores what it has and is closed as ``interrupted``.
* Every error text is redacted of the source's secrets before it is stored or logged.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DataError, IntegrityError, ProgrammingError

from collector.config import JsonlSourceConfig, ModelConfig, SqlSourceConfig, config_hash
from collector.credentials import model_secrets, unique
from collector.failfast import ConsecutiveFailures
from collector.metrics.base import Sample
from collector.owner import current_owner
from collector.probes import Probe, ProbeError, load_probes, probe_set_hash
from collector.redaction import redact
from collector.scored_subset import BottomK
from collector.scoring import EmbedFn, score_batch, scored_identity
from collector.sources import is_pull, make_source
from collector.sources.base import SampleOutcome, SampleRequest
from collector.store.api import SampleRecord, Store
from collector.store.errors import StoreError, first_line
from collector.store.pulls import OffsetConflict, PullBatch, Quarantined
from collector.store.text import label_problem
from collector.vetting import Rejected, excerpt, safe_label, vet

if TYPE_CHECKING:
    from collector.embeddings import EmbeddingIdentity

log = logging.getLogger("collapse_watch.runner")

FLUSH_EVERY = 16  # samples; a run is also flushed every FLUSH_SECONDS so a kill loses little
FLUSH_SECONDS = 5.0
PULL_BATCH = 1000  # records per pull transaction (memory per batch is bounded by this)
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
    """The stop event was set, or the run's deadline passed, while sampling."""


def source_id(model: ModelConfig) -> str:
    """The identity of a model's pull source in ``pull_offsets``/``source_records``/``quarantine``.

    It changes when the path or query changes, so a re-pointed source starts from the beginning.
    """
    src = model.source
    if isinstance(src, JsonlSourceConfig):
        what = src.path
    elif isinstance(src, SqlSourceConfig):
        what = f"{src.url}\x00{src.query}\x00{src.watermark_column}"
    else:
        what = ""
    return f"{model.name}:{src.type}:{hashlib.sha1(what.encode()).hexdigest()[:12]}"


def sample_requests(probes: Iterable[Probe], k: int) -> list[SampleRequest]:
    """k requests per probe prompt, interleaved by sample index so an early stop covers every prompt."""
    probes = list(probes)
    return [SampleRequest(p.id, p.text, i) for i in range(k) for p in probes]


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


def _no_version(model: ModelConfig) -> str:
    """The quarantine reason of a pulled record that carries no version when the config sets none."""
    src = model.source
    fields = getattr(src, "fields", None)
    field = getattr(fields, "version", None) if fields is not None else getattr(src, "version_column", None)
    carried = f"no {field!r} field" if field else "no version field (none is configured)"
    return (
        f"no version: the record has {carried} and model {model.name!r} sets no `version:` in the "
        "config (set one, or write the version into every record)"
    )


class Runner:
    """Runs collections for configured models into one store (thread-safe: no shared mutable state
    beyond the set of runs in progress, which ``abandon_active`` closes on a forced shutdown)."""

    def __init__(
        self,
        store: Store,
        embed: EmbedFn | None,
        *,
        n_boot: int = 200,
        seed: int = 0,
        on_finished: Callable[[ModelConfig, RunReport], None] | None = None,
        secrets: list[str] | None = None,
    ) -> None:
        self.store = store
        self.secrets = list(secrets or [])  # every credential the config names (collector.credentials)
        self.embed = embed
        self.n_boot = n_boot
        self.seed = seed
        self.on_finished = on_finished
        self.owner = current_owner()
        self._active: set[int] = set()
        self._unclosed: dict[int, _Close] = {}  # runs whose close the database refused (an outage)
        self._lock = threading.Lock()
        self._retrying = threading.Lock()  # one close_pending at a time: a run is closed once

    # -- runs in progress (for a bounded shutdown) -----------------------------------------------
    def _track(self, run_id: int, on: bool) -> None:
        with self._lock:
            (self._active.add if on else self._active.discard)(run_id)

    def active_runs(self) -> list[int]:
        with self._lock:
            return sorted(self._active)

    def finish(self, run_id: int, close: _Close) -> bool:
        """Close ``run_id``; if the database cannot take it now (an outage), keep the close to retry
        (``close_pending``), so the run never stays ``running`` while this process lives on."""
        try:
            self._store_close(run_id, close)
        except StoreError:  # already closed (e.g. reclaimed) or gone: nothing to retry
            log.warning("could not close run %s as %s", run_id, close.status, exc_info=True)
            return False
        except Exception as exc:
            with self._lock:
                self._unclosed[run_id] = close
            log.warning(
                "could not close run %s as %s (%s); it is closed once the database answers again",
                run_id,
                close.status,
                redact(_describe(exc), self.secrets),
            )
            return False
        with self._lock:
            self._unclosed.pop(run_id, None)
        return True

    def close_pending(self) -> int:
        """Retry the closes an outage refused (at every run and every few seconds in ``run``);
        returns how many runs were closed now (0 at once while another thread is retrying)."""
        if not self._retrying.acquire(blocking=False):
            return 0
        try:
            return self._close_pending()
        finally:
            self._retrying.release()

    def _close_pending(self) -> int:
        with self._lock:
            pending = dict(self._unclosed)
        n = 0
        for run_id, close in pending.items():
            try:
                self._store_close(run_id, close)
            except StoreError:  # closed meanwhile by someone else: nothing left to do
                with self._lock:
                    self._unclosed.pop(run_id, None)
                continue
            except Exception:
                continue  # still unreachable: the next call retries
            with self._lock:
                self._unclosed.pop(run_id, None)
            log.info("closed run %s as %s now that the database answers", run_id, close.status)
            n += 1
        return n

    def _store_close(self, run_id: int, close: _Close) -> None:
        self.store.finish_run(
            run_id,
            close.status,  # type: ignore[arg-type]
            close.error,
            close.result,
            embedding_identity=close.identity,
        )

    def pending_closes(self) -> list[int]:
        with self._lock:
            return sorted(self._unclosed)

    def abandon_active(self, reason: str) -> int:
        """Close every run still in progress as ``interrupted`` (the process is about to exit)."""
        self.close_pending()
        n = 0
        for run_id in self.active_runs():
            try:
                self.store.finish_run(run_id, "interrupted", reason)
                n += 1
            except Exception:  # already closed by its thread, or the database is gone
                log.warning("could not mark run %s interrupted", run_id, exc_info=True)
        return n

    # -- the job ---------------------------------------------------------------------------------
    def run(
        self, model: ModelConfig, stop: threading.Event | None = None, progress: Progress | None = None
    ) -> list[RunReport]:
        """Collect once. Sampling sources give one run; pull sources one run per version seen.

        Never raises for a source or store failure: it becomes a ``failed`` run with the reason.
        """
        stop = stop or threading.Event()
        self.close_pending()  # runs an earlier database outage left open
        start = time.monotonic()
        deadline = start + model.run_timeout_seconds if model.run_timeout_seconds else None
        secrets = unique([*self.secrets, *model_secrets(model)])
        try:
            source = make_source(model)
        except Exception as exc:
            reports = [self._failed_run(model, f"cannot open the source: {_describe(exc)}", start, secrets)]
        else:
            secrets = unique([*secrets, *getattr(source, "secrets", [])])
            try:
                if is_pull(source):
                    reports = self._pull(model, source, stop, deadline, secrets)  # type: ignore[arg-type]
                else:
                    reports = [self._sample(model, source, stop, progress, deadline, secrets)]  # type: ignore[arg-type]
            except Exception as exc:  # anything unforeseen still ends in a recorded run
                log.exception("run of %s failed", model.name)
                reports = [self._failed_run(model, _describe(exc), start, secrets)]
            finally:
                try:
                    source.close()
                except Exception:
                    log.warning("closing the source of %s failed", model.name, exc_info=True)
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
                f" error={redact(report.error, secrets)!r}" if report.error else "",
            )
            if self.on_finished is not None and report.run_id is not None:
                try:
                    self.on_finished(model, report)
                except Exception as exc:  # the run is stored; its assessment failing must not end the pass
                    log.warning(
                        "assessing %s after run %s failed: %s",
                        model.name,
                        report.run_id,
                        redact(_describe(exc), secrets),
                    )
        return reports

    def _fallback_version(self, model: ModelConfig) -> str | None:
        """The version a run without records is filed under: configured, else the latest known.

        None when the model has no version yet: a made-up label would take ordinal 1 and become the
        baseline, so such a failure is logged and reported but not stored as a run.
        """
        if model.version:
            return model.version
        try:
            known = self.store.version_order(model.name)
        except Exception:
            known = []
        return known[-1][0] if known else None

    def _failed_run(
        self, model: ModelConfig, reason: str, start: float, secrets: list[str], status: str = "failed"
    ) -> RunReport:
        """A run that produced nothing: recorded (begin + finish) so it is counted and alertable."""
        reason = redact(reason, secrets)
        version = self._fallback_version(model)
        run_id = None
        if version is None:
            log.warning("%s run of %s not stored (no version known yet): %s", status, model.name, reason)
            return RunReport(model.name, None, None, status, 0, 0, time.monotonic() - start, reason)
        try:
            run_id = self.store.begin_run(
                model.name,
                version,
                config_hash=config_hash(model),
                source_kind=model.source.type,
                owner=self.owner,
            )
            self.store.finish_run(run_id, status, reason)  # type: ignore[arg-type]
        except Exception:
            log.exception("could not record the %s run of %s (%s)", status, model.name, reason)
        return RunReport(model.name, version, run_id, status, 0, 0, time.monotonic() - start, reason)

    def _sample(
        self,
        model: ModelConfig,
        source: Any,
        stop: threading.Event,
        progress: Progress | None,
        deadline: float | None,
        secrets: list[str],
    ) -> RunReport:
        start = time.monotonic()
        try:
            probes = load_probes(model.probes)
        except (ProbeError, OSError, UnicodeDecodeError) as exc:  # `config check` names it too
            return self._failed_run(model, f"cannot load the probes: {exc}", start, secrets)
        probe_set = self.store.ensure_probe_set(
            f"{model.name}:{probe_set_hash(probes)[:12]}", [(p.id, p.text) for p in probes]
        )
        requests = sample_requests(probes, model.samples_per_prompt)
        run = _OpenRun(
            self, model, probe_set, source_kind=getattr(source, "kind", "unknown"), secrets=secrets
        )
        cancel = getattr(source, "cancel", None)
        watcher = _Watch(stop, deadline, cancel)
        failures = ConsecutiveFailures()
        try:
            if model.version_from == "config" and model.version:
                run.version = model.version
                run.begin()  # visible (and reclaimable) from the start, even if every request hangs
            for outcome in source.sample(requests, model.decoding, progress):
                run.add(outcome)
                if watcher.due():
                    raise RunInterrupted
                failures.check(outcome)  # a dead endpoint fails the run early (collector.failfast)
            run.flush()
        except RunInterrupted:
            watcher.close()
            return run.close("interrupted", watcher.reason(model), start)
        except Exception as exc:  # the source broke: record it on the run, never kill the process
            watcher.close()
            return run.close("failed", _describe(exc), start)
        watcher.close()
        return self._score_and_close(model, run, len(probes), start)

    def _pull(
        self,
        model: ModelConfig,
        source: Any,
        stop: threading.Event,
        deadline: float | None,
        secrets: list[str],
    ) -> list[RunReport]:
        """Read the source in batches; each batch stored with the position advance in one transaction."""
        start = time.monotonic()
        sid = source_id(model)
        position, generation = self.store.pull_position(sid)
        if position is not None:
            source.restore(position)  # the database is the truth; a legacy state file seeds it once
        runs: dict[str, _OpenRun] = {}
        watcher = _Watch(stop, deadline, None)
        outcome_seen = False
        try:
            while True:
                before = source.position()
                records = list(source.pull(limit=PULL_BATCH))
                if not records:
                    break
                outcome_seen = True
                generation = self._store_batch(model, source, sid, runs, records, generation, secrets, before)
                if watcher.due():
                    raise RunInterrupted
        except RunInterrupted:
            return [r.close("interrupted", watcher.reason(model), start) for r in runs.values()]
        except Exception as exc:
            reason = _describe(exc)
            if not runs:
                return [self._failed_run(model, reason, start, secrets)]
            return [r.close("failed", reason, start) for r in runs.values()]
        if not outcome_seen:
            why = getattr(source, "no_data_reason", lambda: None)()
            return [self._failed_run(model, why, start, secrets, status="no_data")] if why else []
        return [self._score_and_close(model, r, len(r.prompts), start) for r in runs.values()]

    def _store_batch(
        self,
        model: ModelConfig,
        source: Any,
        sid: str,
        runs: dict[str, _OpenRun],
        records: list[SampleOutcome],
        generation: int,
        secrets: list[str],
        before: dict[str, Any] | None,
    ) -> int:
        """Vet one batch, open runs for new versions, store it; returns the new position generation."""
        entries: list[_Entry] = []
        for o in records:
            version = resolve_version(model, o)
            where = o.location or sid
            try:
                if not o.ok:
                    raise Rejected(_reason(o.error or "no output", where))
                if version is None:
                    raise Rejected(_no_version(model))
                o = vet(o, version)
            except Rejected as exc:
                q = Quarantined(where, redact(str(exc), secrets), excerpt(o.excerpt), o.source_key)
                entries.append(_Entry(None, o, q, version))
                continue
            # the record's version (vetted), else the config's, names the run (issue #22); a record
            # with neither was quarantined above: an invented label would become the baseline
            label = safe_label(version)
            run = runs.get(label)
            if run is None:
                kind = getattr(source, "kind", "pull")
                run = runs[label] = _OpenRun(
                    self, model, None, source_kind=kind, version=label, secrets=secrets
                )
                run.begin()
            o.sample_index = run.next_index(o.prompt_id)
            entries.append(_Entry(run, o, None, label))
        return self._commit(model, sid, runs, entries, before, source.position(), generation, secrets)

    def _commit(
        self,
        model: ModelConfig,
        sid: str,
        runs: dict[str, _OpenRun],
        entries: list[_Entry],
        before: dict[str, Any] | None,
        after: dict[str, Any],
        generation: int,
        secrets: list[str],
    ) -> int:
        """Store entries and advance the position to ``after`` in one transaction.

        If the database refuses the batch (a value it cannot hold that vetting did not foresee), the
        batch is split in halves, the first stored without advancing the position, until the one
        record at fault is left: that one is quarantined with the database's reason.  Source keys make
        a re-delivered half harmless.  Lock and connection errors are not split: the pass fails and
        the next one retries from the stored position.
        """
        samples: dict[int, list[tuple[str | None, SampleRecord]]] = {}
        quarantined: list[tuple[int | None, Quarantined]] = []
        for e in entries:
            if e.quarantine is None:
                assert e.run is not None and e.run.run_id is not None
                samples.setdefault(e.run.run_id, []).append((e.outcome.source_key, to_record(e.outcome)))
            else:
                target = runs.get(e.version) if e.version is not None else None
                target = target or next(iter(runs.values()), None)
                quarantined.append((target.run_id if target else None, e.quarantine))
        position = after if after is not None else before
        try:
            generation, dupes = self.store.commit_pull(
                sid, model.name, PullBatch(samples, quarantined), position or {}, generation
            )
        except (StoreError, IntegrityError, DataError, ProgrammingError) as exc:
            if isinstance(exc, OffsetConflict):
                raise
            if len(entries) > 1:
                half = len(entries) // 2
                generation = self._commit(
                    model, sid, runs, entries[:half], before, before, generation, secrets
                )
                return self._commit(model, sid, runs, entries[half:], before, after, generation, secrets)
            e = entries[0]
            if e.quarantine is not None:
                raise
            reason = redact(f"the database refused it: {first_line(exc)}", secrets)
            where = e.outcome.location or sid
            q = Quarantined(where, reason, excerpt(e.outcome.prompt), e.outcome.source_key)
            return self._commit(
                model, sid, runs, [_Entry(None, e.outcome, q, e.version)], before, after, generation, secrets
            )
        if dupes:
            log.warning("%s: %d record(s) were already stored and were skipped", sid, dupes)
        for e in entries:
            if e.quarantine is None:
                assert e.run is not None
                e.run.note(e.outcome)
        for run_id, q in quarantined:
            log.warning("quarantined %s: %s", q.location, q.reason)
            for r in runs.values():
                if r.run_id == run_id:
                    r.n_quarantined += 1
        return generation

    def _score_and_close(self, model: ModelConfig, run: _OpenRun, n_prompts: int, start: float) -> RunReport:
        ok = run.scored.items()
        if run.run_id is None:
            return run.close("failed", run.first_error or "no samples", start)
        needed = model.effective_min_samples(n_prompts)
        if len(ok) < needed:
            reason = f"only {len(ok)} of {run.n_total} samples succeeded (need {needed})"
            if run.first_error:
                reason += f"; first error: {run.first_error}"
            return run.close("failed", reason, start)
        try:
            scored = score_batch(
                run.version or "",
                ok,
                metrics=model.metrics,
                embed=self.embed,
                n_boot=self.n_boot,
                seed=self.seed,
            )
            identity = scored_identity(self.embed, scored.result)
        except Exception as exc:
            return run.close("failed", f"scoring failed: {_describe(exc)}", start)
        status = "partial" if run.n_errors or run.n_quarantined else "succeeded"
        return run.close(status, None, start, result=scored.result, identity=identity)


@dataclass(frozen=True)
class _Close:
    """How a run ends: what ``Store.finish_run`` is given (kept to retry after an outage)."""

    status: str
    error: str | None
    result: object = None
    identity: EmbeddingIdentity | None = None


@dataclass
class _Entry:
    """One record of a pull batch: a sample of ``run``, or quarantined (``quarantine`` set)."""

    run: _OpenRun | None
    outcome: SampleOutcome
    quarantine: Quarantined | None
    version: str | None


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _reason(error: str, where: str) -> str:
    """The reason part of a source's error text (it starts with the location)."""
    prefix = f"{where}: "
    return error[len(prefix) :] if error.startswith(prefix) else error


class _Watch:
    """Stop conditions of a run: the stop event and the deadline; cancels the source's requests."""

    def __init__(self, stop: threading.Event, deadline: float | None, cancel: threading.Event | None) -> None:
        self.stop = stop
        self.deadline = deadline
        self.cancel = cancel
        self._timer: threading.Thread | None = None
        self._done = threading.Event()
        if cancel is not None:
            self._timer = threading.Thread(target=self._relay, daemon=True, name="run-watch")
            self._timer.start()

    def _relay(self) -> None:
        while not self._done.wait(0.2):
            if self.due():
                assert self.cancel is not None
                self.cancel.set()
                return

    def due(self) -> bool:
        return self.stop.is_set() or (self.deadline is not None and time.monotonic() > self.deadline)

    def reason(self, model: ModelConfig) -> str:
        if self.stop.is_set():
            return "collector stopped before the run finished"
        return f"run deadline of {model.run_timeout_seconds:g}s passed"

    def close(self) -> None:
        self._done.set()


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
