"""What identifies a configuration: ``config_hash``, stored with every run to say what produced it."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from collector.config.schema import Config, ModelConfig
from collector.database_url import redact_url

# Settings that only say where things are stored or served: moving them changes no run.
WHERE_KEYS = (
    "database_url",
    "metrics_port",
    "metrics_host",
    "retention_days",
    "state_dir",
    "web_config_file",
    "alert_receiver",
)


def config_hash(cfg: Config | ModelConfig) -> str:
    """A stable SHA-256 of the effective configuration, minus secrets and storage settings.

    Excluded: the database URL, passwords in SQL URLs, HTTP header *values*, state-file paths and
    everything that only says where things are stored or served (so moving the database does not
    change the hash, while a change of decoding parameters does).
    """
    data = cfg.model_dump(mode="json")
    if isinstance(cfg, Config):
        for key in WHERE_KEYS:
            data.pop(key, None)
        for m in data["models"]:
            _scrub_model(m)
    else:
        _scrub_model(data)
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _scrub_model(m: dict[str, Any]) -> None:
    """Drop a dumped model's state file, header values and SQL password (in place)."""
    src = m.get("source", {})
    src.pop("state_file", None)
    if "headers" in src:
        src["headers"] = sorted(src["headers"])
    if "url" in src:
        src["url"] = redact_url(src["url"])
