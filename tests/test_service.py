"""The service layer: one config builds the whole collector; `collect` and `serve` work through it.

Real parts: a SQLite file and the real PostgreSQL (``db_url``), a JSONL log read by the real
``jsonl`` source, the real scheduler and the real /metrics server on a free loopback port.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from collector.config import config_from_dict
from collector.demo import scrape_collapse_gauges
from collector.service import Collector
from collector.store.run_lock import AlreadyCollecting

LEXICAL = ["distinct_1", "distinct_2", "length_mean"]


def write_log(path: Path, version: str, n: int = 8) -> None:
    with path.open("a", encoding="utf-8") as f:
        for i in range(n):
            row = {"prompt": f"prompt {i % 2}", "output": f"{version} answer {i}", "version": version}
            f.write(json.dumps(row) + "\n")


def config(db_url: str, tmp_path: Path, log: Path, every: str = "1h") -> Any:
    return config_from_dict(
        {
            "database_url": db_url,
            "metrics_host": "127.0.0.1",
            "models": [
                {
                    "name": "logged",
                    "source": {"type": "jsonl", "path": str(log)},
                    "schedule": {"every": every},
                    "min_samples": 1,
                    "metrics": LEXICAL,
                }
            ],
        },
        base_dir=tmp_path,
    )


def test_collect_stores_a_run_and_hands_its_verdict_over(db_url: str, tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    write_log(log, "v1")
    verdicts: list[tuple[str, str]] = []
    collector = Collector.build(
        config(db_url, tmp_path, log), on_verdict=lambda m, v: verdicts.append((m, v.status))
    )
    assert (collector.leases is not None) == db_url.startswith("postgresql")

    [report] = collector.collect("logged")
    assert report.status == "succeeded" and report.n_samples == 8
    assert [(v[0], v[1]) for v in collector.store.versions("logged")] == [("v1", 1)]
    assert verdicts == [("logged", "ok")]  # the after-run assessment ran, its verdict was handed over
    assert collector.collect("logged") == []  # nothing new in the log: nothing stored twice


def test_serve_collects_on_schedule_serves_metrics_and_stops(db_url: str, tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    write_log(log, "v1")
    collector = Collector.build(config(db_url, tmp_path, log))
    stopped = threading.Event()
    started: dict[str, Any] = {}
    up = threading.Event()

    def on_started(models: list[str], server: Any) -> None:
        started.update(models=models, port=server.server_port)
        up.set()

    result: list[bool] = []
    t = threading.Thread(
        target=lambda: result.append(collector.serve(stopped, metrics_port=0, on_started=on_started))
    )
    t.start()
    try:
        assert up.wait(60), "serve did not start"
        assert started["models"] == ["logged"]
        url = f"http://127.0.0.1:{started['port']}/metrics"
        gauges: dict[str, float] = {}
        for _ in range(600):  # the first run starts at once (run_at_start), then its verdict is exported
            gauges = scrape_collapse_gauges(url)
            if "logged" in gauges:
                break
            stopped.wait(0.1)
        assert gauges.get("logged") == 0.0, gauges
    finally:
        stopped.set()
        t.join(timeout=60)
    assert result == [True]  # stopped cleanly


def test_a_second_serve_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    write_log(log, "v1")
    cfg = config(f"sqlite:///{tmp_path / 'cw.db'}", tmp_path, log)
    first, second = Collector.build(cfg), Collector.build(cfg)
    stopped, up = threading.Event(), threading.Event()
    t = threading.Thread(
        target=lambda: first.serve(stopped, metrics_port=0, on_started=lambda m, s: up.set())
    )
    t.start()
    try:
        assert up.wait(60)
        with pytest.raises(AlreadyCollecting, match="already collecting"):
            second.serve(threading.Event(), metrics_port=0)
    finally:
        stopped.set()
        t.join(timeout=60)


def test_the_assessment_compares_the_metrics_the_model_scores(db_url: str, tmp_path: Path) -> None:
    """A model's ``metrics:`` reaches its assessment, not only its runs: a lexical-only model is judged
    on the metrics it scored, never on the whole suite (before, the verdict's comparisons covered every
    lexical metric of the default suite, which the runs had not scored)."""
    log = tmp_path / "requests.jsonl"
    write_log(log, "v1")
    collector = Collector.build(config(db_url, tmp_path, log))
    collector.collect("logged")
    write_log(log, "v2")
    [report] = collector.collect("logged")
    assert report.status == "succeeded"
    run = collector.store.latest_completed_run("logged", "v2")
    assert run is not None
    compared = {r.metric for r in collector.store.comparisons_of(run)}
    # the tail family (retention of the baseline's rare n-grams) is a comparison of its own, made for
    # every selection; the scored metrics compared are the model's, no more
    assert {m for m in compared if not m.startswith("tail_")} == set(LEXICAL)
