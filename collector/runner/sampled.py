"""A sampling run: the probe prompts sent to an endpoint, k samples each, stored as they arrive."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from collector.config import ModelConfig
from collector.failfast import ConsecutiveFailures
from collector.probes import Probe, ProbeError, load_probes, probe_set_hash
from collector.runner.open_run import _OpenRun
from collector.runner.report import Progress, RunInterrupted, RunReport, _describe
from collector.runner.watch import _Watch
from collector.sources.base import SampleRequest

if TYPE_CHECKING:
    from collector.store.api import Store


def sample_requests(probes: Iterable[Probe], k: int) -> list[SampleRequest]:
    """k requests per probe prompt, interleaved by sample index so an early stop covers every prompt."""
    probes = list(probes)
    return [SampleRequest(p.id, p.text, i) for i in range(k) for p in probes]


class SampledRuns:
    """The part of ``Runner`` that runs a sampling source (uses its ``_failed_run`` and
    ``_score_and_close``)."""

    store: Store

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
