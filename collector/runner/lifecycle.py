"""The run lifecycle: ``Runner.run`` opens the source, runs it as a sampling run or a pull pass,
records a run that produced nothing, scores and closes; then logs and assesses each run."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from collector.config import ModelConfig, config_hash
from collector.credentials import model_secrets, unique
from collector.owner import current_owner
from collector.redaction import redact
from collector.runner.closes import RunBook
from collector.runner.open_run import _OpenRun
from collector.runner.pulled import PullRuns
from collector.runner.report import Progress, RunReport, _Close, _describe
from collector.runner.sampled import SampledRuns
from collector.scoring import EmbedFn, score_batch, scored_identity
from collector.sources import is_pull, make_source
from collector.store.api import Store

log = logging.getLogger("collapse_watch.runner")


class Runner(RunBook, SampledRuns, PullRuns):
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
