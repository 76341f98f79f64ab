"""The scheduler really runs jobs on APScheduler: no overlap per model, isolation, clean stop."""

from __future__ import annotations

import threading
import time
from collections import defaultdict

from collector.config import config_from_dict
from collector.scheduler import CollectorScheduler


def make_config(every: str = "1s", names: tuple[str, ...] = ("a", "b")) -> object:
    return config_from_dict(
        {
            "models": [
                {
                    "name": n,
                    "source": {"type": "openai", "base_url": "http://127.0.0.1:9/v1", "model": n},
                    "version": "v1",
                    "schedule": {"every": every},
                }
                for n in names
            ]
        }
    )


def test_jobs_never_overlap_and_a_failing_model_does_not_stop_others() -> None:
    in_flight: dict[str, int] = defaultdict(int)
    max_in_flight: dict[str, int] = defaultdict(int)
    runs: dict[str, int] = defaultdict(int)
    lock = threading.Lock()

    def run_model(model, stop) -> None:
        with lock:
            in_flight[model.name] += 1
            max_in_flight[model.name] = max(max_in_flight[model.name], in_flight[model.name])
            runs[model.name] += 1
        try:
            if model.name == "a":
                time.sleep(2.5)  # longer than its 1 s interval
            else:
                raise RuntimeError("source down")
        finally:
            with lock:
                in_flight[model.name] -= 1

    sched = CollectorScheduler(make_config(), run_model)
    assert sorted(sched.model_names) == ["a", "b"]
    sched.start()
    time.sleep(4.2)
    sched.stop()
    assert max_in_flight["a"] == 1  # never two runs of one model at once
    assert 1 <= runs["a"] <= 2
    assert runs["b"] >= 3  # kept firing although every run raised


def test_stop_signals_running_jobs_and_waits_for_them() -> None:
    started = threading.Event()
    finished = threading.Event()

    def run_model(model, stop: threading.Event) -> None:
        started.set()
        while not stop.wait(0.05):
            pass
        finished.set()  # the runner stores what it has and marks the run interrupted

    sched = CollectorScheduler(make_config(every="1h", names=("a",)), run_model)
    sched.start()
    assert started.wait(5)
    sched.stop(wait=True)
    assert finished.is_set()


def test_without_run_at_start_first_run_waits_for_the_interval() -> None:
    calls: list[str] = []
    sched = CollectorScheduler(
        make_config(every="1h", names=("a",)), lambda m, s: calls.append(m.name), run_at_start=False
    )
    sched.start()
    time.sleep(0.5)
    job = sched.scheduler.get_job("a")
    assert job is not None and job.next_run_time is not None
    sched.stop()
    assert calls == []
