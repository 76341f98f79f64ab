"""The alerts' own false alarms, through real Prometheus and Alertmanager (reduced; the full
measurement is ``scripts/measure_alert_false_alarms.py``, figures in docs/metrics.md).

Two healthy series (6 versions each, disjoint real outputs of the same SmolLM2) and the real
self-training collapse series (v1..v4) are released version by version into a real store, exported
by the collector's server, evaluated by ``prometheus`` with the shipped rules (``for:`` 1 s) and
routed by ``prometheus-alertmanager`` with the shipped routes back to the collector's webhook.
One truth from the gate to the pager:

* the collapse alert fires for exactly the version at which the stored verdict (what ``compare``
  says) first is ``collapse_suspected``, never for an earlier one;
* a healthy series is alerted if and only if one of its verdicts was not ``ok``, and then only
  for such a version;
* the delivered links are absolute (prometheus.yml's external labels).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from file_module import load_module
from ops_config import PROMETHEUS_YML
from ops_stack import binaries

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "measure_alert_false_alarms.py"


def test_alerts_follow_the_verdict_from_the_gate_to_the_webhook(tmp_path: Path) -> None:
    bins = binaries("prometheus", "alertmanager")
    proof = load_module(SCRIPT)
    m = proof.measure(
        2, 6, workdir=tmp_path, bins=bins, collapse_versions=4, settle=4.0, n_boot=300, n_halves=10
    )
    collapse = m.verdicts[proof.COLLAPSING]
    assert m.collapse_first_verdict is not None, f"the collapse series was never suspected: {collapse}"
    assert m.collapse_alert_versions and m.collapse_alert_versions[0] == m.collapse_first_verdict, (
        collapse,
        m.alerted.get(proof.COLLAPSING),
    )
    for model, verdicts in m.verdicts.items():
        if model == proof.COLLAPSING:
            continue
        not_ok = {f"v{i + 1}" for i, s in enumerate(verdicts) if s != "ok"}
        alerted = {tag.split("@", 1)[1] for tag in m.alerted.get(model, [])}
        assert alerted <= not_ok, (model, verdicts, m.alerted.get(model))
        assert bool(alerted) == bool(not_ok), (model, verdicts, m.alerted.get(model))
    labels = yaml.safe_load(PROMETHEUS_YML.read_text())["global"]["external_labels"]
    runbook, dashboard = m.links
    assert runbook == f"{labels['collapse_watch_docs_url']}/runbook.md#collapsewatchcollapsesuspected"
    assert dashboard.startswith(f"{labels['collapse_watch_grafana_url']}/d/collapse-watch-model?var-model=")
