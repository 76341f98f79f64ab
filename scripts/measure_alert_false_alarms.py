"""False-alarm rate of the ALERTS themselves, measured through real Prometheus and Alertmanager.

What a user runs, end to end, with the shipped rules and routes (only the group intervals and every
``for:`` shortened to 1 s, by ``tests/ops_config.py``):

    healthy / collapsing series -> Store (record + assess, as ``score --store`` does) -> the
    collector's HTTP server (GET /metrics, POST /alerts) -> prometheus (shipped rules) ->
    prometheus-alertmanager (shipped routes) -> the collector's webhook -> alert history (SQL)

* Healthy series: ``--series`` models, each ``--versions`` versions of ONE unchanged model. The pool
  is ``collector/demo_data/control_series.jsonl`` (base SmolLM2-135M-Instruct, 24 probes, 12 real
  outputs per probe); series s shuffles each probe's 12 outputs with seed s and gives version k the
  outputs ``2k, 2k+1`` of that order, so the versions of a series are disjoint real samples of the
  same model (2 outputs per probe each; 6 versions use all 12).
* The collapsing series: ``collector/demo_data/selftrain_series.jsonl`` (SmolLM2 fine-tuned on its
  own outputs, v1..v7, 4 outputs per probe).

Versions are released one step at a time for every series at once; after each step the script
waits until Prometheus has scraped the new latest versions and the alerts had time to fire and be
delivered.  At the end the alert history (what Alertmanager delivered to the collector) is read:

* false alarms: healthy series with ANY warning or critical notification (goal <= 5%);
* the collapsing series must have fired ``CollapseWatchCollapseSuspected`` for the version at which
  its stored verdict (the same as ``collapse-watch compare``) first says ``collapse_suspected``,
  and not before.

    python scripts/measure_alert_false_alarms.py --series 20 --versions 6   # ~15 min on 2 shared cores

Needs ``prometheus`` and ``prometheus-alertmanager`` (apt-get install prometheus prometheus-alertmanager).
tests/test_alert_proof.py runs a reduced version in CI.  Figures and method: docs/metrics.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts"), str(ROOT / "tests")]

from measure_false_alarms import load_pool, wilson  # noqa: E402
from ops_config import render_alertmanager_config, render_prometheus_config  # noqa: E402
from ops_stack import binaries_or_none, free_port, get, start_alertmanager, start_prometheus, stop  # noqa: E402

from collector.assessment import assess_model  # noqa: E402
from collector.metrics.base import Sample  # noqa: E402
from collector.readout.server import serve_store_metrics  # noqa: E402
from collector.scoring import score_batch  # noqa: E402
from collector.store import SampleRecord, Store, migrate  # noqa: E402
from collector.store.alerts import AlertHistory  # noqa: E402
from collector.store.cli_commands import record_scored_file  # noqa: E402

SELFTRAIN = ROOT / "collector" / "demo_data" / "selftrain_series.jsonl"
COLLAPSING = "selftrained"
COLLAPSE_ALERT = "CollapseWatchCollapseSuspected"
Rows = list[dict[str, Any]]


@dataclass
class Measurement:
    """What one measurement saw; ``main`` prints it and tests assert on it."""

    n_series: int
    n_versions: int
    verdicts: dict[str, list[str]] = field(default_factory=dict)  # model -> stored verdict per version
    alerted: dict[str, list[str]] = field(default_factory=dict)  # model -> "alertname@version" firing
    false_alarms: list[str] = field(default_factory=list)  # healthy models with any alert
    collapse_first_verdict: str | None = None  # first version the verdict says collapse_suspected
    collapse_alert_versions: list[str] = field(default_factory=list)  # versions the alert fired for
    notifications: int = 0
    links: list[str] = field(default_factory=list)  # runbook_url / dashboard of one collapse alert
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.false_alarms) / self.n_series if self.n_series else float("nan")


def healthy_series(
    pool: dict[str, Rows], n_series: int, n_versions: int, per_version: int = 2
) -> dict[str, list[Rows]]:
    """``healthy-XX`` -> versions (disjoint real outputs of the same model), see the module doc."""
    need = n_versions * per_version
    small = min(len(rows) for rows in pool.values())
    if need > small:
        raise SystemExit(
            f"{n_versions} versions x {per_version} outputs need {need} outputs per probe; the pool has {small}"
        )
    series: dict[str, list[Rows]] = {}
    for s in range(n_series):
        rng = np.random.default_rng(s)
        versions: list[Rows] = [[] for _ in range(n_versions)]
        for pid in sorted(pool):
            order = rng.permutation(len(pool[pid]))
            for k in range(n_versions):
                versions[k].extend(pool[pid][i] for i in order[k * per_version : (k + 1) * per_version])
        series[f"healthy-{s:02d}"] = versions
    return series


def collapsing_series(n_versions: int | None = None) -> list[Rows]:
    by_version: dict[str, Rows] = {}
    for line in SELFTRAIN.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            by_version.setdefault(row["version"], []).append(row)
    ordered = [by_version[v] for v in sorted(by_version, key=lambda v: int(v.lstrip("v")))]
    return ordered[:n_versions] if n_versions else ordered


def cached_embedder(texts: set[str]) -> Callable[[list[str]], np.ndarray]:
    """The packaged embedder, each distinct text embedded once."""
    from collector.embeddings import Embedder

    ordered = sorted(texts)
    vectors = dict(zip(ordered, Embedder("default").embed(ordered), strict=True))
    return lambda batch: np.stack([vectors[t] for t in batch])


def store_version(store: Store, model: str, version: str, rows: Rows, embed: Callable[..., Any]) -> None:
    """``score FILE --store`` in process: score the version's outputs and record them as one run."""
    samples = [Sample(r["prompt_id"], r["output"], r["prompt"]) for r in rows]
    result = score_batch(f"{model}@{version}", samples, embed=embed, n_boot=50).result
    records = [
        SampleRecord(r["prompt_id"], r["prompt"], r["output"], sample_index=i) for i, r in enumerate(rows)
    ]
    record_scored_file(store, model, version, records, result)


class Stack:
    """The collector's server, Prometheus and Alertmanager on loopback ports (``close()`` stops them)."""

    def __init__(self, store: Store, workdir: Path, bins: dict[str, str]) -> None:
        self.server = serve_store_metrics(store, host="127.0.0.1", port=0)
        port = self.server.server_port
        prom_port, am_port = free_port(), free_port()
        am_cfg = render_alertmanager_config(workdir / "am", f"http://127.0.0.1:{port}/alerts")
        prom_cfg = render_prometheus_config(
            workdir / "prom",
            collector_target=f"127.0.0.1:{port}",
            alertmanager_target=f"127.0.0.1:{am_port}",
            interval="1s",
            alert_for="1s",
        )
        self.procs = [
            start_alertmanager(bins["alertmanager"], am_cfg, am_port, workdir),
            start_prometheus(bins["prometheus"], prom_cfg, prom_port, workdir),
        ]
        self.api = f"http://127.0.0.1:{prom_port}/api/v1"

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = json.loads(get(f"{self.api}/query?{urllib.parse.urlencode({'query': expr})}"))
        return list(data["data"]["result"])

    def wait_until(self, what: str, check: Callable[[], bool], timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")

    def close(self) -> None:
        stop(self.procs)
        self.server.shutdown()
        self.server.server_close()


def measure(
    n_series: int,
    n_versions: int,
    *,
    workdir: Path,
    bins: dict[str, str],
    collapse_versions: int | None = None,
    settle: float = 6.0,
    n_boot: int = 2000,
    n_halves: int = 100,
    log: Callable[[str], None] = lambda _: None,
) -> Measurement:
    """Run the whole measurement (see the module doc) in ``workdir``."""
    t0 = time.perf_counter()
    pool = load_pool()
    series = healthy_series(pool, n_series, n_versions)
    series[COLLAPSING] = collapsing_series(collapse_versions)
    embed = cached_embedder({r["output"] for versions in series.values() for rows in versions for r in rows})
    url = f"sqlite:///{workdir / 'alerts-proof.db'}"
    migrate.upgrade(url)
    store = Store(url)
    out = Measurement(n_series, n_versions)
    stack = Stack(store, workdir, bins)
    try:
        steps = max(len(v) for v in series.values())
        for k in range(steps):
            for model, versions in series.items():
                if k >= len(versions):
                    continue
                version = f"v{k + 1}"
                store_version(store, model, version, versions[k], embed)
                verdict = assess_model(store, model, embed=embed, n_boot=n_boot, n_halves=n_halves)
                out.verdicts.setdefault(model, []).append(verdict.status if verdict else "none")
            released = sum(1 for v in series.values() if k < len(v))
            stack.wait_until(
                f"Prometheus to scrape version v{k + 1}",
                lambda k=k, released=released: (
                    len(stack.query(f"collapse_watch_latest_version_ordinal == {k}")) == released
                ),
            )
            time.sleep(settle)  # for: 1s, rule evaluation 1s, Alertmanager group_wait/interval 1s
            log(
                f"v{k + 1}: {sum(1 for m, v in out.verdicts.items() if m != COLLAPSING and v[-1] != 'ok')} healthy not ok"
            )
        time.sleep(settle)
    finally:
        stack.close()
    events = AlertHistory(store.engine).recent(limit=1_000_000)
    out.notifications = len(events)
    for e in events:
        if e.status == "firing" and e.model and e.severity in ("warning", "critical"):
            tag = f"{e.alertname}@{e.version}"
            if tag not in out.alerted.setdefault(e.model, []):
                out.alerted[e.model].append(tag)
    out.false_alarms = sorted(m for m in out.alerted if m != COLLAPSING)
    first = next((i for i, s in enumerate(out.verdicts[COLLAPSING]) if s == "collapse_suspected"), None)
    out.collapse_first_verdict = None if first is None else f"v{first + 1}"
    out.collapse_alert_versions = sorted(
        {t.split("@", 1)[1] for t in out.alerted.get(COLLAPSING, []) if t.startswith(COLLAPSE_ALERT + "@")},
        key=lambda v: int(v.lstrip("v")),
    )
    with store.engine.connect() as conn:
        from sqlalchemy import text

        row = conn.execute(
            text("SELECT annotations FROM alert_notifications WHERE alertname = :a LIMIT 1"),
            {"a": COLLAPSE_ALERT},
        ).first()
    if row is not None:
        ann = row[0] if isinstance(row[0], dict) else json.loads(row[0])
        out.links = [ann.get("runbook_url", ""), ann.get("dashboard", "")]
    out.seconds = time.perf_counter() - t0
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series", type=int, default=20, help="healthy series (default 20)")
    ap.add_argument(
        "--versions", type=int, default=6, help="versions per healthy series (default 6, at most 6)"
    )
    ap.add_argument(
        "--n-boot", type=int, default=2000, help="comparison bootstrap (the collector's default 2000)"
    )
    ap.add_argument("--n-halves", type=int, default=100, help="across-scope half-samples (default 100)")
    ap.add_argument("--out", type=Path, default=None, help="also write the result as JSON here")
    args = ap.parse_args(argv)
    bins = binaries_or_none("prometheus", "alertmanager")
    if bins is None:
        print("needs prometheus and prometheus-alertmanager on PATH", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="alert-proof-") as tmp:
        m = measure(
            args.series, args.versions, workdir=Path(tmp), bins=bins, log=lambda s: print(s, file=sys.stderr)
        )
    k, n = len(m.false_alarms), m.n_series
    lo, hi = wilson(k, n)
    print(f"healthy series: {n} x {m.n_versions} versions (2 real outputs per probe per version, disjoint)")
    print(f"comparisons: n_boot {args.n_boot}, n_halves {args.n_halves}")
    print(f"series with any warning/critical alert: {k}/{n} = {m.rate:.1%} [95% CI {lo:.1%}, {hi:.1%}]")
    for model in m.false_alarms:
        print(f"  {model}: {', '.join(m.alerted[model])}; verdicts {' '.join(m.verdicts[model])}")
    print(f"collapsing series verdicts: {' '.join(m.verdicts[COLLAPSING])}")
    print(
        f"first collapse_suspected verdict: {m.collapse_first_verdict}; {COLLAPSE_ALERT} fired for: {m.collapse_alert_versions}"
    )
    print(f"notifications stored: {m.notifications}; links: {m.links}; took {m.seconds:.0f}s")
    if args.out:
        args.out.write_text(json.dumps(asdict(m), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
