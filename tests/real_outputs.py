"""The pool of real SmolLM2 outputs this repository ships, grouped by prompt."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def distinct_outputs_by_prompt() -> dict[str, list[str]]:
    """Every distinct output of ``tests/data/*.jsonl`` and ``collector/demo_data/*.jsonl`` by its
    ``prompt_id``, in first-seen order (files sorted by name)."""
    groups: dict[str, dict[str, None]] = {}
    files = sorted((ROOT / "tests" / "data").glob("*.jsonl")) + sorted(
        (ROOT / "collector" / "demo_data").glob("*.jsonl")
    )
    for f in files:
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                groups.setdefault(row["prompt_id"], {})[row["output"]] = None
    return {k: list(v) for k, v in groups.items()}
