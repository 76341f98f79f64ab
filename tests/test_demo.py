"""A shortened `collapse-watch demo`: the real collector, the real SmolLM2, the recorded self-training series."""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from collector.cli.demo import TRY_QUERIES
from collector.demo import COLLAPSING, CONTROL, DemoOptions, demo_series, publish_log, run_demo
from collector.store import Store
from collector.store import models as m


def test_a_version_is_published_whole_under_a_name_the_source_glob_matches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The collector must never see half a version: it is written aside, then renamed into place."""
    import glob
    import json
    import os

    import collector.demo

    pattern = str(tmp_path / f"{COLLAPSING}-*.jsonl")
    seen_before_rename: list[list[str]] = []
    real_replace = os.replace

    def replace(src: str | Path, dst: str | Path) -> None:  # records what the source's glob saw
        seen_before_rename.append(glob.glob(pattern))
        real_replace(src, dst)

    monkeypatch.setattr(collector.demo.os, "replace", replace)
    rows = demo_series()["v2"]
    path = publish_log(tmp_path, "v2", rows)
    assert seen_before_rename == [[]]  # fully written, yet invisible to the source until the rename
    assert glob.glob(pattern) == [str(path)]
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["output"] for line in lines] == [r["output"] for r in rows]


@pytest.mark.integration
@pytest.mark.slow
def test_shortened_demo_flags_the_collapsing_model_only(tmp_path: Path) -> None:
    phases: dict[str, int] = {}
    updates: list[Any] = []

    @contextmanager
    def timer(name: str):
        phases[name] = phases.get(name, 0) + 1
        yield

    # v4 (the third fine-tuned generation) is the first collapse_suspected version of the series
    series = dict(list(demo_series().items())[:4])
    opts = DemoOptions(
        directory=tmp_path / "demo",
        port=0,
        versions=4,
        control_prompts=6,
        control_samples=2,
        control_max_tokens=16,
    )
    result = run_demo(opts, timer=timer, on_update=lambda snap, status: updates.append(snap))

    assert result.verdicts[COLLAPSING] == "collapse_suspected"
    assert result.verdicts[CONTROL] == "ok"
    # /metrics served the verdict gauge while the demo ran
    assert result.scraped_verdict[COLLAPSING] == 1.0
    assert result.scraped_verdict[CONTROL] == 0.0
    assert result.report is not None and result.report.is_file()
    assert "collapse_suspected" in result.report.read_text(encoding="utf-8")
    assert any(snap.versions for snap in updates)  # the live table had something to show

    store = Store(f"sqlite:///{result.database}")
    with sqlite3.connect(result.database) as db:  # the queries the demo tells people to try answer
        assert all(db.execute(query).fetchall() for query in TRY_QUERIES)
    with store.engine.connect() as conn:
        runs = conn.execute(
            select(m.Model.name, m.ModelVersion.label, m.Run.status, m.Run.n_samples, m.Run.id)
            .join(m.Run, m.Run.model_id == m.Model.id)
            .join(m.ModelVersion, m.ModelVersion.id == m.Run.version_id)
        ).all()
        n_values = conn.scalar(select(func.count()).select_from(m.MetricValueRow))
    by_model: dict[str, list[Any]] = {}
    for r in runs:
        by_model.setdefault(r.name, []).append(r)
    # one completed run per deployed version, every sample stored
    assert sorted(r.label for r in by_model[COLLAPSING]) == sorted(series)
    assert sorted(r.label for r in by_model[CONTROL]) == sorted(series)
    assert all(r.status in ("succeeded", "partial") for r in runs)
    assert sum(r.n_samples for r in by_model[COLLAPSING]) == sum(len(rows) for rows in series.values())
    assert all(r.n_samples == 6 * 2 for r in by_model[CONTROL])
    assert n_values == len(runs) * 2 * 19  # every metric in both scopes for every run
    assert {"convert SmolLM2 (once, cached)", "collect, score and assess every deployed version"} <= set(
        phases
    )
