"""One meaning of samples_total from the store to the recording rule: a run in which half the
requests failed reads 0.5 in ``model:collapse_watch_sample_errors:ratio_rate1h`` (it read 0.33 when
samples_total counted attempts and the rule added the errors again).

The counters come from the real exporter over a real store; ``promtool test rules`` then evaluates
the shipped recording rule on those exact values, repeated once a minute (one such run a minute).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry
from store_helpers import migrated_store, result, samples

from collector.readout.exporter import StoreCollector
from collector.readout.snapshot import load_snapshot

RULES = (
    Path(__file__).resolve().parents[1] / "dashboards" / "prometheus" / "rules" / "collapse-watch.rules.yml"
)


def test_half_failed_requests_read_as_half_in_the_rule(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (apt-get install prometheus)")
    store = migrated_store(f"sqlite:///{tmp_path / 'x.db'}")
    rid = store.begin_run("bot", "v1")
    store.add_samples(rid, samples(["a", None, "b", None]))  # 4 requests, 2 failed
    store.finish_run(rid, "partial", None, result(0.8))
    _, _, n_requests, n_errors = store.run_status(rid)
    assert (n_requests, n_errors) == (4, 2)  # the store counts requests made, failed ones included
    reg = CollectorRegistry()
    reg.register(StoreCollector(lambda: load_snapshot(store)))
    stored = reg.get_sample_value("collapse_watch_samples_total", {"model": "bot"})
    failed = reg.get_sample_value("collapse_watch_sample_errors_total", {"model": "bot"})
    assert (stored, failed) == (2, 2)
    assert reg.get_sample_value("collapse_watch_runs_total", {"model": "bot", "status": "partial"}) == 1
    assert reg.get_sample_value("collapse_watch_runs_total", {"model": "bot", "status": "success"}) == 0
    base = 'job="collapse-watch",instance="collector:9108",model="bot"'
    test = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": f"collapse_watch_samples_total{{{base}}}", "values": f"0+{stored:g}x120"},
                    {
                        "series": f"collapse_watch_sample_errors_total{{{base}}}",
                        "values": f"0+{failed:g}x120",
                    },
                ],
                "promql_expr_test": [
                    {
                        "expr": "model:collapse_watch_sample_errors:ratio_rate1h",
                        "eval_time": "90m",
                        "exp_samples": [
                            {
                                "labels": f"model:collapse_watch_sample_errors:ratio_rate1h{{{base}}}",
                                "value": 0.5,
                            }
                        ],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "ratio.test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    res = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
