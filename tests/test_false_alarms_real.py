"""The verdict's false-alarm rate on REAL outputs of an unchanged model (issue #5's control).

``scripts/measure_false_alarms.py`` splits the base SmolLM2's 12 outputs per probe (three
independent draws, ``collector/demo_data/control_series.jsonl``) into two disjoint versions of 4 per
prompt, seed by seed, and runs the full default comparison with the packaged embedder. Both
versions come from one model: every verdict that is not ``ok`` is a false alarm. The recorded
200-repetition figure is in docs/metrics.md; this test runs 25 seeded repetitions (~40 s).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from file_module import load_module

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "measure_false_alarms.py"

pytestmark = pytest.mark.slow


def test_same_model_versions_are_ok_in_at_least_95_percent_of_seeded_repetitions() -> None:
    fa = load_module(SCRIPT)
    pool = fa.load_pool()
    assert len(pool) == 24 and all(len(rows) == 12 for rows in pool.values())
    results = fa.verdicts(pool, range(25), per_side=4, embed=fa.cached_embedder(pool))
    counts = Counter(status for _, status, _ in results)
    assert counts["collapse_suspected"] == 0, results
    assert counts["ok"] >= 0.95 * len(results), counts


def test_split_versions_are_disjoint_and_shaped_like_a_run() -> None:
    import numpy as np

    fa = load_module(SCRIPT)
    pool = fa.load_pool()
    a, b = fa.split(pool, 4, np.random.default_rng(3))
    assert len(a) == len(b) == 24 * 4
    assert not {(s.prompt_id, s.output) for s in a} & {(s.prompt_id, s.output) for s in b}
    assert Counter(s.prompt_id for s in a) == Counter(s.prompt_id for s in b)
