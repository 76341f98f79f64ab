"""Assessments on real SmolLM2 outputs, stored and read back on SQLite and PostgreSQL.

The series v1..v4 is one model sampled at temperatures 1.0, 0.7, 0.4, 0.2 (a simulated collapse);
control_b is an independent sample at 1.0.  What the data gives (lexical metrics only, the
lexical-only verdict): every lower temperature is ``collapse_suspected``, most lexical metrics down
at p < 0.01; with the real embedder v4 is ``collapse_suspected``, and the control stays ``ok``.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from assessment_data import FAST, embed, store_file
from store_helpers import migrated_store

from collector.assessment import assess_all, assess_model
from collector.render.history import history_table
from collector.store import SampleRecord, Store, StoreError
from collector.store.assessments import VerdictRecord
from collector.store.cli_commands import record_scored_file
from collector.vocabulary import ChangeRow, TrendRow

SERIES = [("v1", "series_v1"), ("v2", "series_v2"), ("v3", "series_v3"), ("v4", "series_v4")]


def _by(store: Store, run_id: int, reference: str, scope: str = "within") -> dict[str, ChangeRow]:
    return {
        c.metric: c for c in store.comparisons_of(run_id) if c.reference == reference and c.scope == scope
    }


def test_lexical_series_watches_and_trends_down(db_url: str) -> None:
    store = migrated_store(db_url)
    runs, statuses = {}, []
    for version, name in SERIES:
        runs[version] = store_file(store, "smol", version, name)
        v = assess_model(store, "smol", **FAST)
        assert v is not None
        statuses.append(v.status)
    # Without an embedder the verdict is lexical-only, and it can fail: the lexical family alone
    # must decline at p < 0.01 (a gate that cannot fail is no gate).
    assert statuses == ["ok", "collapse_suspected", "collapse_suspected", "collapse_suspected"]
    final = store.verdict_of(runs["v4"])
    assert final is not None and final.status == "collapse_suspected" and final.baseline_version == "v1"
    assert "lexical-only verdict" in final.reasons[0]
    assert final.details["n_metrics"]["embedding"] == 0
    assert store.verdict_of(runs["v1"]).reasons == ["baseline version v1: nothing to compare"]  # type: ignore[union-attr]
    # `collapse-watch history` ends its metric-by-version table with the stored verdicts
    columns, rows = history_table(store, "smol")
    assert columns == ["metric", "v1 (baseline)", "v2", "v3", "v4", "trend (diversity)"]
    assert rows[-1] == ["verdict", *statuses, ""]

    base = _by(store, runs["v4"], "baseline")
    d2 = base["distinct_2"]
    assert d2.reference_run_id == runs["v1"] and d2.n_pairs == 16
    assert d2.significant_decline and d2.relative < -0.1 and d2.relative_ci_high < 0
    assert d2.change < 0 and d2.ci_high < 0  # the change unit: percentage points, diversity-oriented
    sb = base["self_bleu"]  # lower is more diverse: its own change rises, its diversity change falls
    assert not sb.higher_is_diverse and sb.relative < 0 and sb.change < 0 and sb.significant_decline
    prev = _by(store, runs["v4"], "previous")
    assert {c.reference_run_id for c in prev.values()} == {runs["v3"]}
    assert set(prev) == set(base)
    across = _by(store, runs["v4"], "baseline", "across")
    # the pooled scope also holds the tail-coverage family, computed against the baseline (lexical only here)
    assert set(across) == set(base) | {"tail_ngram_retention_1", "tail_ngram_retention_2"}
    # v3 -> v4 is a smaller step than v1 -> v4
    assert prev["distinct_2"].relative > d2.relative and prev["distinct_2"].change > d2.change

    trends = {(t.metric, t.scope): t for t in store.trends_of("smol")}
    t = trends[("distinct_2", "within")]
    assert t.n_versions == 4 and t.last_version == "v4" and t.slope < 0
    assert ("distinct_2", "across") in trends
    # four strictly falling values: Mann-Kendall's smallest p at n=4, not below 0.05
    assert 0.05 < t.p_value < 0.1


def test_independent_sample_is_ok(db_url: str) -> None:
    store = migrated_store(db_url)
    store_file(store, "ctrl", "v1", "series_v1")
    rid = store_file(store, "ctrl", "b", "control_b")
    v = assess_model(store, "ctrl", **FAST)
    assert v is not None and v.status == "ok"
    within = _by(store, rid, "baseline")
    assert within and not any(c.significant_decline for c in within.values())
    previous = {k: replace(c, reference="baseline") for k, c in _by(store, rid, "previous").items()}
    assert previous == within  # the previous version is the baseline here: the same comparison


@pytest.mark.slow
def test_real_embedder_gives_collapse_suspected_and_control_ok(db_url: str) -> None:
    store = migrated_store(db_url)
    store_file(store, "smol", "v1", "series_v1", embedded=True)
    rid = store_file(store, "smol", "v4", "series_v4", embedded=True)
    v = assess_model(store, "smol", embed=embed, **FAST)
    assert v is not None and v.status == "collapse_suspected", v.reasons
    assert v.details["declined"]["embedding"]  # the embedding family agrees
    stored = _by(store, rid, "baseline")
    assert stored["vendi_score"].change < 0 and stored["vendi_score"].significant_decline

    store_file(store, "ctrl", "v1", "series_v1", embedded=True)
    store_file(store, "ctrl", "b", "control_b", embedded=True)
    c = assess_model(store, "ctrl", embed=embed, **FAST)
    assert c is not None and c.status == "ok", c.reasons


def test_baseline_choice_reassessment_and_failed_samples(db_url: str) -> None:
    store = migrated_store(db_url)
    r1 = store_file(store, "m", "v1", "series_v1")
    r2 = store_file(store, "m", "v2", "series_v3")
    store.set_baseline("m", "v2")
    v = assess_model(store, "m", **FAST)
    assert v is not None and v.status == "ok" and v.reasons == ["baseline version v2: nothing to compare"]
    assert store.comparisons_of(r2) == []

    # a newer run of v2 with one failed call: 'partial', its failed sample skipped, still assessed
    from assessment_data import rows, scored

    data = rows("series_v3")
    recs = [
        SampleRecord(r["prompt_id"], r["prompt"], r["output"], sample_index=i) for i, r in enumerate(data)
    ]
    recs.append(SampleRecord(data[0]["prompt_id"], data[0]["prompt"], None, sample_index=99, error="timeout"))
    r3 = record_scored_file(store, "m", "v3", recs, scored("series_v3", False))
    assert store.run_status(r3)[0] == "partial"
    store.set_baseline("m", "v1")
    first = assess_model(store, "m", **FAST)
    n = len(store.comparisons_of(r3))
    again = assess_model(store, "m", **FAST)  # replaces, never duplicates
    assert first == again and len(store.comparisons_of(r3)) == n > 0
    base = _by(store, r3, "baseline")
    assert {c.reference_run_id for c in base.values()} == {r1}
    assert {c.reference_run_id for c in _by(store, r3, "previous").values()} == {r2}
    assert base["distinct_2"].n_pairs == 16

    verdicts = assess_all(store, **FAST)
    assert set(verdicts) == {"m"} and verdicts["m"] == again


def test_no_completed_run_gives_none(db_url: str) -> None:
    store = migrated_store(db_url)
    rid = store.begin_run("m", "v1")
    assert assess_model(store, "m") is None
    store.finish_run(rid, "failed", "boom")
    assert assess_model(store, "m") is None
    assert store.latest_completed_run("m") is None and store.latest_completed_run("m", "v1") is None
    with pytest.raises(StoreError, match="unknown model"):
        assess_model(store, "nobody")


def _cmp(ref_run: int, **kw: object) -> ChangeRow:
    vals = dict(
        model="m",
        version="v2",
        reference="baseline",
        reference_run_id=ref_run,
        metric="distinct_2",
        scope="within",
        change=-0.05,
        ci_low=-0.07,
        ci_high=math.nan,
        relative=-0.2,
        relative_ci_low=-0.3,
        relative_ci_high=-0.1,
        p_value=0.01,
        n_pairs=16,
        significant_decline=True,
    )
    vals.update(kw)
    return ChangeRow(**vals)  # type: ignore[arg-type]


def test_store_api_checks_and_round_trips(db_url: str) -> None:
    store = migrated_store(db_url)
    r1 = store_file(store, "m", "v1", "series_v1")
    r2 = store_file(store, "m", "v2", "series_v2")
    other = store_file(store, "other", "v1", "series_v1")
    running = store.begin_run("m", "v3")
    assert store.version_order("m") == [("v1", 1), ("v2", 2), ("v3", 3)]
    assert store.baseline_version("m") == "v1"
    assert store.latest_completed_run("m") == r2 and store.latest_completed_run("m", "v1") == r1
    assert store.run_info(r2).version == "v2" and store.run_info(r2).version_ordinal == 2

    verdict = VerdictRecord("watch", ["why"], {"p": float("nan"), "fams": ("a",)}, "v1")
    store.save_assessment(r2, [_cmp(r1)], verdict)
    (back,) = store.comparisons_of(r2)
    assert back == _cmp(r1)  # NaN stored as NULL and read back as NaN
    assert back.relative == -0.2 and math.isnan(back.ci_high)
    assert store.verdict_of(r2) == VerdictRecord("watch", ["why"], {"p": None, "fams": ["a"]}, "v1")

    bad = [
        (running, [], verdict, "only completed runs"),
        (r2, [_cmp(other)], verdict, "completed run of the same model"),
        (r2, [_cmp(r1, reference="parent")], verdict, "reference must be one of"),
        (r2, [_cmp(r1, version="v1")], verdict, "a change row names m@v1"),
        (r2, [], VerdictRecord("alarm", []), "verdict status"),
        (r2, [], VerdictRecord("ok", [], {}, "v9"), "unknown baseline version"),
        (r2, [_cmp(r1), _cmp(r1, metric="x"), _cmp(r1)], verdict, None),  # duplicate: the DB refuses
    ]
    for run_id, comps, ver, message in bad:
        with pytest.raises(Exception, match=message):
            store.save_assessment(run_id, comps, ver)
        # nothing of a refused assessment is kept: the previous one is intact
        assert store.verdict_of(r2) is not None and len(store.comparisons_of(r2)) == 1

    store.save_trends("m", [TrendRow("m", "distinct_2", "within", -0.1, 0.04, 4, -0.2, 0.0, "v2")])
    store.save_trends("m", [TrendRow("m", "self_bleu", "across", 0.1, 0.5, 3, 0.0, 0.2, None)])
    assert [t.metric for t in store.trends_of("m")] == ["self_bleu"]  # replaced, not appended
    with pytest.raises(StoreError, match="unknown version"):
        store.save_trends("m", [TrendRow("m", "distinct_2", "within", 0, 1, 3, 0, 0, "v9")])
    with pytest.raises(StoreError, match="duplicates"):
        store.save_trends("m", [TrendRow("m", "a", "within", 0, 1, 3, 0, 0)] * 2)
