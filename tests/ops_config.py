"""Render loopback variants of the shipped Prometheus / Alertmanager configs for end-to-end tests.

The committed files (``dashboards/prometheus/prometheus.yml``, ``dashboards/alertmanager/alertmanager.yml``)
address docker-compose service names (``collector:9108``, ``alertmanager:9093``). An end-to-end test
that starts real ``prometheus`` and ``alertmanager`` binaries on loopback ports calls these helpers to
write a copy with its own targets and short intervals, keeping everything else (rules, routes,
inhibitions) identical to what ships::

    cfg = render_prometheus_config(tmp_path, collector_target="127.0.0.1:19108",
                                   alertmanager_target="127.0.0.1:19093", interval="1s")
    subprocess.Popen(["prometheus", f"--config.file={cfg}", "--web.listen-address=127.0.0.1:19090",
                      f"--storage.tsdb.path={tmp_path / 'tsdb'}"])
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = REPO / "dashboards" / "prometheus"
PROMETHEUS_YML = PROMETHEUS_DIR / "prometheus.yml"
RULES_DIR = PROMETHEUS_DIR / "rules"
ALERTMANAGER_YML = REPO / "dashboards" / "alertmanager" / "alertmanager.yml"


def render_prometheus_config(
    out_dir: Path,
    collector_target: str,
    alertmanager_target: str | None = None,
    interval: str = "1s",
    extra_rules: dict[str, str] | None = None,
    alert_for: str | None = None,
) -> Path:
    """Write ``out_dir/prometheus.yml`` (+ ``out_dir/rules/``) scraping ``collector_target``.

    ``interval`` replaces every scrape and evaluation interval (and rule-group intervals, so the
    shipped rules evaluate at test speed); the self-scrape jobs are dropped; ``alertmanager_target``
    ``None`` removes the alerting section. ``extra_rules`` maps file names to extra rule-file texts
    (e.g. an always-firing alert). ``alert_for`` (e.g. ``"1s"``) replaces the ``for:`` duration of
    every alert that has one, so an end-to-end test sees alerts fire within seconds instead of after
    5-15 minutes; alerts without ``for:`` are left as shipped, and ``None`` keeps every duration.
    Returns the config path.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg: dict[str, Any] = yaml.safe_load(PROMETHEUS_YML.read_text())
    cfg["global"]["scrape_interval"] = interval
    cfg["global"]["evaluation_interval"] = interval
    jobs = [j for j in cfg["scrape_configs"] if j["job_name"] == "collapse-watch"]
    for job in jobs:
        job["scrape_interval"] = interval
        job.pop("scrape_timeout", None)
        job["static_configs"] = [{"targets": [collector_target]}]
    cfg["scrape_configs"] = jobs
    if alertmanager_target is None:
        cfg.pop("alerting", None)
    else:
        cfg["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [alertmanager_target]}]}]

    rules_out = out_dir / "rules"
    if rules_out.exists():
        shutil.rmtree(rules_out)
    rules_out.mkdir()
    for src in sorted(RULES_DIR.glob("*.rules.yml")):
        rules: dict[str, Any] = yaml.safe_load(src.read_text())
        for group in rules["groups"]:
            group["interval"] = interval
            for rule in group["rules"]:
                if alert_for is not None and "alert" in rule and "for" in rule:
                    rule["for"] = alert_for
        (rules_out / src.name).write_text(yaml.safe_dump(rules, sort_keys=False))
    for name, text in (extra_rules or {}).items():
        (rules_out / name).write_text(text)
    cfg["rule_files"] = [str(rules_out / "*.yml")]

    path = out_dir / "prometheus.yml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def render_alertmanager_config(
    out_dir: Path,
    webhook_url: str,
    group_wait: str = "1s",
    group_interval: str = "1s",
    token_file: Path | None = None,
) -> Path:
    """Write ``out_dir/alertmanager.yml`` with every webhook pointed at ``webhook_url``.

    Routes, inhibit rules and the webhooks' bearer-token ``http_config`` stay as shipped; only the
    timings shrink so a test sees notifications within seconds, and the token's path in the container
    becomes ``token_file`` (default: a file written beside the config, since Alertmanager refuses to
    send when the file is missing). Returns the config path.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg: dict[str, Any] = yaml.safe_load(ALERTMANAGER_YML.read_text())
    cfg["route"]["group_wait"] = group_wait
    cfg["route"]["group_interval"] = group_interval
    if token_file is None:  # the shipped path is the container's: a loopback run gets its own file
        token_file = out_dir / "collector_alerts_token"
        token_file.write_text("loopback-test-token\n")
    for receiver in cfg["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = webhook_url
            if "http_config" in hook:
                hook["http_config"]["authorization"]["credentials_file"] = str(token_file)
    path = out_dir / "alertmanager.yml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path
