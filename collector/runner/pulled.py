"""A pull pass: a log or table read in batches, each stored with its position in one transaction,
one run per version seen; a record that cannot be stored is quarantined with its reason."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DataError, IntegrityError, ProgrammingError

from collector.config import JsonlSourceConfig, ModelConfig, SqlSourceConfig
from collector.redaction import redact
from collector.runner.open_run import _OpenRun, resolve_version, to_record
from collector.runner.report import RunInterrupted, RunReport, _describe
from collector.runner.watch import _Watch
from collector.sources.base import SampleOutcome
from collector.store.api import SampleRecord
from collector.store.errors import StoreError, first_line
from collector.store.pulls import OffsetConflict, PullBatch, Quarantined
from collector.vetting import Rejected, excerpt, safe_label, vet

if TYPE_CHECKING:
    from collector.store.api import Store

log = logging.getLogger("collapse_watch.runner")

PULL_BATCH = 1000  # records per pull transaction (memory per batch is bounded by this)


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


class PullRuns:
    """The part of ``Runner`` that runs a pull source (uses its ``_failed_run`` and
    ``_score_and_close``)."""

    store: Store

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


@dataclass
class _Entry:
    """One record of a pull batch: a sample of ``run``, or quarantined (``quarantine`` set)."""

    run: _OpenRun | None
    outcome: SampleOutcome
    quarantine: Quarantined | None
    version: str | None


def _reason(error: str, where: str) -> str:
    """The reason part of a source's error text (it starts with the location)."""
    prefix = f"{where}: "
    return error[len(prefix) :] if error.startswith(prefix) else error
