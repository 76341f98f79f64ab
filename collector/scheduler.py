"""APScheduler 3 jobs that call the runner: one job per model, never two runs of a model at once.

Policy (see APScheduler's user guide, "Missed job executions and coalescing"):

* ``max_instances=1``: a run that outlasts its interval is not started twice; the next firing is
  skipped (and logged by APScheduler) instead.
* ``coalesce=True`` with a grace time of one interval: runs missed while the process was busy or
  suspended collapse into one run.
* every model gets its own worker thread (the pool is as large as the number of models), so a
  source that hangs until its timeout never delays the other models' jobs;
* each job catches and logs its own exceptions: a failing model never stops the scheduler.
* ``stop()`` sets a stop event that runs poll between samples (they store what they have and
  are marked ``interrupted``), then waits for jobs in flight to finish; ``stop_within(grace)``
  waits at most ``grace`` seconds (SIGTERM: ``shutdown_grace_seconds``, default 10).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.exc import OperationalError, PendingRollbackError

from collector.config import Config, ModelConfig
from collector.store.errors import first_line

log = logging.getLogger("collapse_watch.scheduler")

RunModel = Callable[[ModelConfig, threading.Event], object]
"""The job body: collect one run of a model; polls the event to stop early."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def trigger_for(model: ModelConfig, *, aligned: bool = False) -> BaseTrigger:
    """The APScheduler trigger of a model's schedule (UTC).

    ``aligned``: interval schedules fire at multiples of the interval since the Unix epoch, so
    replicas started at different moments fire the same ticks (cron schedules always do).
    """
    if model.schedule is None:
        raise ValueError(f"model {model.name!r} has no schedule")
    if model.schedule.cron is not None:
        return CronTrigger.from_crontab(model.schedule.cron, timezone=UTC)
    start = {"start_date": EPOCH} if aligned else {}
    return IntervalTrigger(seconds=model.schedule.every_seconds, timezone=UTC, **start)


def latest_tick(model: ModelConfig, now: datetime | None = None) -> datetime:
    """The model's latest scheduled firing at or before ``now``: the tick a job started now serves.

    The same on every replica (interval ticks count from the Unix epoch), as long as their clocks
    agree to well within one interval.
    """
    assert model.schedule is not None
    now = now or datetime.now(UTC)
    every = model.schedule.every_seconds
    if every is not None:
        return EPOCH + timedelta(seconds=math.floor((now - EPOCH).total_seconds() / every) * every)
    trigger = trigger_for(model)
    t = trigger.get_next_fire_time(None, now - timedelta(seconds=interval_seconds(model) + 1))
    latest = t
    while t is not None and t <= now:
        latest = t
        t = trigger.get_next_fire_time(t, t + timedelta(seconds=1))
    assert latest is not None and latest <= now, (model.schedule, now, latest)
    return latest


def grace_seconds(model: ModelConfig) -> int:
    """How late a missed run may still start: one interval (an hour for cron schedules)."""
    assert model.schedule is not None
    return model.schedule.every_seconds or 3600


class CollectorScheduler:
    """Owns the APScheduler instance and the stop event shared with running jobs."""

    def __init__(
        self, config: Config, run_model: RunModel, *, run_at_start: bool = True, aligned: bool = False
    ) -> None:
        self.config = config
        self.stop_event = threading.Event()
        self._in_flight = 0
        self._idle = threading.Condition()
        self._run_model = run_model
        scheduled = [m for m in config.models if m.schedule is not None]
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=max(1, len(scheduled)))},
            timezone=UTC,
        )
        now = datetime.now(UTC)
        for model in scheduled:
            self.scheduler.add_job(
                self._job,
                trigger_for(model, aligned=aligned),
                args=[model],
                id=model.name,
                name=f"collect {model.name}",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=grace_seconds(model),
                replace_existing=True,
                # omitted, APScheduler computes the first firing from the trigger
                # aligned, the first run serves the tick in progress, so later firings stay aligned
                **({"next_run_time": latest_tick(model, now) if aligned else now} if run_at_start else {}),
            )

    @property
    def model_names(self) -> list[str]:
        return [job.id for job in self.scheduler.get_jobs()]

    def _job(self, model: ModelConfig) -> None:
        if self.stop_event.is_set():
            return
        with self._idle:
            self._in_flight += 1
        try:
            self._run_model(model, self.stop_event)
        except (OperationalError, PendingRollbackError) as exc:  # the database is unreachable: one line
            log.error("run of model %s failed: database unreachable (%s)", model.name, first_line(exc))
        except Exception:  # one model's failure must never stop the scheduler
            log.exception("run of model %s failed", model.name)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def start(self) -> None:
        self.scheduler.start()

    @property
    def running(self) -> bool:
        """Started and not asked to stop (what ``/readyz`` reports as the scheduler's state)."""
        return bool(self.scheduler.running) and not self.stop_event.is_set()

    def stop_within(self, grace: float) -> bool:
        """Ask running jobs to stop and wait at most ``grace`` seconds; True if all of them ended.

        On False the caller marks the runs still in progress and exits without waiting for them
        (a container runtime kills after 10 s; a hung request must not hold the process).
        """
        self.stop_event.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout=grace)

    def stop(self, wait: bool = True) -> None:
        """Ask running jobs to stop early, then wait for them (``wait``) and shut down."""
        self.stop_event.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=wait)


def interval_seconds(model: ModelConfig, samples: int = 48) -> float:
    """The schedule's interval; for cron, the longest gap between consecutive firings (next ``samples``)."""
    assert model.schedule is not None
    if model.schedule.every_seconds is not None:
        return float(model.schedule.every_seconds)
    trigger = trigger_for(model)
    times = []
    previous = None
    now = datetime.now(UTC)
    for _ in range(samples):
        nxt = trigger.get_next_fire_time(previous, previous or now)
        if nxt is None:
            break
        times.append(nxt)
        previous = nxt
    gaps = [(b - a).total_seconds() for a, b in pairwise(times)]
    return max(gaps) if gaps else 3600.0
