"""Collapse on a few prompts (issue #26), on REAL SmolLM2 outputs: the per-prompt rule, its names in
the verdict, compare --json, the store, history, the report and /metrics, and the shared opening.

Data (see ``scripts/measure_per_prompt.py``): 24 prompts, 12 healthy outputs each at temperature 1.0
(``collector/demo_data/control_series.jsonl``) and 6 collapsed ones at 0.2
(``tests/data/per_prompt/t02.jsonl``).  The baseline is the first 6 healthy outputs; a candidate
with K collapsed prompts answers K prompts with their T 0.2 outputs and the others with the other
6 healthy ones.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from store_helpers import migrated_store

from collector.metrics.affix import shared_affix, strip_affix
from collector.metrics.base import Sample, build_corpus
from collector.metrics.prompt_test import prompt_tests, splits
from collector.metrics.registry import select_metrics
from collector.scoring import score_batch
from collector.store import SampleRecord
from collector.store.assessments import PromptFindingRecord, VerdictRecord
from collector.trends import Thresholds
from collector.trends.prompts import bh_adjust

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import measure_per_prompt as mpp  # noqa: E402

LEXICAL = [m.name for m in select_metrics(None) if not m.needs_embeddings]
OPENING = "Certainly! Here is my answer:"
K = 5  # collapsed prompts of the main candidate: the mean has not moved yet (measured: ok up to 6)
N = 24


@pytest.fixture(scope="module")
def data() -> tuple[dict, dict, list[str]]:
    healthy, cold = mpp.grouped(mpp.HEALTHY), mpp.grouped(mpp.COLLAPSED)
    order = [str(p) for p in np.random.default_rng(26).permutation(sorted(healthy))]
    return healthy, cold, order


def judge(base_rows, cand_rows, th: Thresholds | None = None, names=LEXICAL):
    return mpp.judge(base_rows, cand_rows, names, None, th or Thresholds())


@pytest.fixture(scope="module")
def k5(data):  # type: ignore[no-untyped-def]
    healthy, cold, order = data
    b, c = mpp.sides(K, healthy, cold, order)
    return b, c, order[:K], judge(b, c), judge(b, c, Thresholds(min_collapsed_prompts=0))


def test_data_is_real_and_shaped(data) -> None:  # type: ignore[no-untyped-def]
    healthy, cold, _ = data
    assert len(healthy) == 24 and set(cold) == set(healthy)
    assert all(len(v) == 12 for v in healthy.values()) and all(len(v) == 6 for v in cold.values())
    assert {r["temperature"] for v in cold.values() for r in v} == {0.2}
    assert {r["model"] for v in cold.values() for r in v} == {"smollm2-135m-instruct"}


def test_five_of_24_collapsed_prompts_give_watch_and_are_named(k5) -> None:  # type: ignore[no-untyped-def]
    _, _, collapsed, on, _ = k5
    assert on.verdict.status == "watch"
    first = on.verdict.reasons[0]
    assert first.startswith(f"{K} of {N} prompts collapsed"), first
    assert on.prompts is not None
    assert {f.prompt_id for f in on.prompts.collapsed} == set(collapsed)
    # the worst first: each named prompt's decline is at least the next one's
    sev = [f.severity for f in on.prompts.collapsed]
    assert sev == sorted(sev)
    assert on.verdict.details["prompts"]["n_collapsed"] == K


def test_without_the_per_prompt_rule_the_same_candidate_is_ok(k5) -> None:  # type: ignore[no-untyped-def]
    _, _, _, on, off = k5
    assert off.verdict.status == "ok"  # the mean over 24 prompts has not moved enough
    assert on.verdict.status == "watch"
    # the findings are still reported when the rule is off
    assert any(r.startswith(f"{K} of {N} prompts collapsed") for r in off.verdict.reasons)


def test_healthy_split_names_no_prompt_and_is_ok(data) -> None:  # type: ignore[no-untyped-def]
    healthy, cold, order = data
    b, c = mpp.sides(0, healthy, cold, order)
    v = judge(b, c)
    assert v.verdict.status == "ok", v.verdict.reasons
    assert v.prompts is not None and v.prompts.collapsed == [] and v.prompts.n_prompts == N
    assert not any("prompts collapsed" in r for r in v.verdict.reasons)


def test_one_collapsed_prompt_is_named_but_short_of_the_rule(data) -> None:  # type: ignore[no-untyped-def]
    healthy, cold, order = data
    b, c = mpp.sides(1, healthy, cold, order)
    # 6 + 6 outputs: 924 splits, enumerated exactly; the collapsed prompt's p is 2/924 (one other
    # split as extreme), adjusted 24 · 2/924 = 0.052: one prompt alone just misses FDR 0.05, so
    # the test names it at FDR 0.1 (random draws used to give it about 1/1000 and name it at 0.05)
    assert not judge(b, c).prompts.collapsed  # type: ignore[union-attr]
    v = judge(b, c, Thresholds(prompt_fdr=0.1))
    assert v.prompts is not None and [f.prompt_id for f in v.prompts.collapsed] == order[:1]
    assert v.prompts.collapsed[0].metrics["distinct_2"].p_value == pytest.approx(2 / 924)
    assert v.verdict.status == "ok"
    assert any(r.startswith(f"1 of {N} prompts collapsed") for r in v.verdict.reasons)
    # with a count of 1 one prompt gives watch; a share of 5% on top needs 2 of 24
    assert judge(b, c, Thresholds(prompt_fdr=0.1, min_collapsed_prompts=1)).verdict.status == "watch"
    th = Thresholds(prompt_fdr=0.1, min_collapsed_prompts=1, min_collapsed_share=0.05)
    assert judge(b, c, th).verdict.status == "ok"


def test_shared_opening_is_named_with_and_without_verdicts(data) -> None:  # type: ignore[no-untyped-def]
    healthy, _, _ = data
    base, plain = mpp.sides(0, healthy, {}, [])
    forced = [dict(r, output=f"{OPENING} {r['output']}") for r in plain]
    v = judge(base, forced)
    assert v.affix is not None and v.affix.kind == "opening" and v.affix.text == OPENING
    assert v.without_affix is not None
    assert v.verdict.reasons[0].startswith(f'shared opening "{OPENING}" in 100% of the candidate')
    assert f"with it: {v.verdict.status}; without it: {v.without_affix.status}" in v.verdict.reasons[0]
    assert v.without_affix.status == judge(base, plain).verdict.status == "ok"
    assert v.verdict.status != "ok"  # the opening alone moves the lexical metrics


def test_affix_detection_and_stripping_on_real_outputs(data) -> None:  # type: ignore[no-untyped-def]
    healthy, _, _ = data
    groups = [[r["output"] for r in v[:6]] for v in healthy.values()]
    outs = [t for g in groups for t in g]
    assert shared_affix(groups, outs) is None  # healthy outputs share no opening
    forced = [[f"{OPENING} {t}" for t in g] for g in groups]
    found = shared_affix(forced, outs)
    assert found is not None and found.text == OPENING and found.share == 1.0
    assert [strip_affix(t, found) for g in forced for t in g] == [t.strip() for t in outs]
    closing = [[f"{t} Let me know if you need anything else." for t in g] for g in groups]
    c = shared_affix(closing, outs)
    assert c is not None and c.kind == "closing" and c.text == "Let me know if you need anything else."
    assert shared_affix(forced, [t for g in forced for t in g]) is None  # the baseline had it too: not new
    assert shared_affix([["same words here"] * 6] * 5, outs) is None  # identical outputs: duplication
    # one prompt's answers that all begin alike (a collapse on that prompt) are not a template
    alike = [f"The train was a {t}" for t in groups[0]]
    assert shared_affix([alike], groups[0]) is None
    assert shared_affix([alike, *forced[1:3]], outs) is None  # 3 prompts, only 2 with the opening


def test_benjamini_hochberg_matches_the_step_up_definition() -> None:
    p = [0.01, 0.04, 0.03, 0.005, float("nan"), 0.5]
    adj = bh_adjust(p)
    # m = 5 finite: sorted 0.005, 0.01, 0.03, 0.04, 0.5 -> ×5/rank, then running minimum from the top
    expect = {0: 0.025, 1: 0.05, 2: 0.05, 3: 0.025, 5: 0.5}
    for i, e in expect.items():
        assert adj[i] == pytest.approx(e)
    assert math.isnan(adj[4])


def test_permutation_p_values_are_exact_for_small_samples(data) -> None:  # type: ignore[no-untyped-def]
    healthy, cold, _ = data
    d2 = select_metrics(["distinct_2"])[0]

    def drop(pid: str) -> float:
        return d2.fn([r["output"] for r in cold[pid][:4]]) - d2.fn([r["output"] for r in healthy[pid][:4]])

    pid = min(healthy, key=drop)  # the prompt that collapsed most
    assert splits(4, 4, 999, np.random.default_rng(0)).shape == (70, 8)  # every split, enumerated
    base = build_corpus([Sample(pid, r["output"]) for r in healthy[pid][:4]])
    cand = build_corpus([Sample(pid, r["output"]) for r in cold[pid][:4]])
    (t,) = prompt_tests(select_metrics(["distinct_2"])[0], base, cand)
    assert t.min_p == pytest.approx(1 / 70)
    assert t.p_value <= 2 / 70  # the collapsed side is the most extreme split (or its tie)
    assert t.cand_value < t.base_value


def test_compare_json_has_a_prompts_section(tmp_path, data) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from collector.cli import app

    healthy, cold, order = data
    b, c = mpp.sides(K, healthy, cold, order)
    for name, rows in (("a", b), ("b", c)):
        with (tmp_path / f"{name}.jsonl").open("w", encoding="utf-8") as f:
            for r in rows:
                f.write(
                    json.dumps({"prompt_id": r["prompt_id"], "prompt": r["prompt"], "output": r["output"]})
                    + "\n"
                )
    res = CliRunner().invoke(
        app,
        ["compare", str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl"), "--json", "--no-embeddings"],
    )
    assert res.exit_code == 3, res.output  # watch
    out = json.loads(res.stdout)
    assert out["verdict"] == "watch"
    p = out["prompts"]
    assert p["n_prompts"] == N and p["n_collapsed"] == K and p["rule_reached"] is True
    assert set(p["collapsed"]) == set(order[:K])
    first = p["findings"][0]
    assert first["collapsed"] is True and first["prompt"] == healthy[first["prompt_id"]][0]["prompt"]
    assert first["metrics"]["distinct_2"]["change"] < -0.1
    assert out["shared_affix"] is None


HOSTILE = '[bold red]x[/] "quoted" <script>alert(1)</script>\nsecond line\x00 ' + "y" * 10_000
STORED_HOSTILE = HOSTILE.replace("\x00", "\ufffd")  # the collector's vetting: the store takes plain text


def test_hostile_prompt_text_is_truncated_in_reasons(data) -> None:  # type: ignore[no-untyped-def]
    healthy, cold, order = data
    b, c = mpp.sides(K, healthy, cold, order)
    target = set(order[:K])  # every named prompt has the hostile text
    b = [dict(r, prompt=HOSTILE) if r["prompt_id"] in target else r for r in b]
    c = [dict(r, prompt=HOSTILE) if r["prompt_id"] in target else r for r in c]
    v = judge(b, c)
    line = v.verdict.reasons[0]
    assert "\n" not in line and "\x00" not in line and len(line) < 1000
    # one line, cut at 60 characters with a marker; NUL and newline as spaces
    assert '"[bold red]x[/] "quoted" <script>alert(1)</script> second li…"' in line
    assert "yyyy" not in line


def _store_two_runs(store, healthy, cold, order, k: int, prompt_of=lambda r: r["prompt"]):  # type: ignore[no-untyped-def]
    from collector.store.cli_commands import record_scored_file

    b, c = mpp.sides(k, healthy, cold, order)
    ids = []
    for version, rows in (("v1", b), ("v2", c)):
        recs = [
            SampleRecord(r["prompt_id"], prompt_of(r), r["output"], sample_index=i)
            for i, r in enumerate(rows)
        ]
        scored = score_batch(
            version, [Sample(r["prompt_id"], r["output"]) for r in rows], metrics=LEXICAL, n_boot=2
        )
        ids.append(record_scored_file(store, "bot", version, recs, scored.result))
    return ids


def test_findings_round_trip_in_the_store_and_view(db_url: str, data) -> None:  # type: ignore[no-untyped-def]
    healthy, cold, order = data
    store = migrated_store(db_url)
    r1, r2 = _store_two_runs(
        store,
        healthy,
        cold,
        order,
        0,
        lambda r: STORED_HOSTILE if r["prompt_id"] == order[0] else r["prompt"],
    )
    rows = [
        PromptFindingRecord(r1, order[0], "distinct_2", 0.8, 0.4, -0.4, 0.001, 0.02, True),
        PromptFindingRecord(r1, order[1], "distinct_2", 0.8, 0.79, -0.01, 0.6, float("nan"), False),
    ]
    store.save_assessment(r2, [], VerdictRecord("watch", ["x"], {"prompts": {"n_collapsed": 1}}, "v1"), rows)
    back = store.prompt_findings_of(r2)
    assert back[0] == rows[0]
    assert math.isnan(back[1].adjusted_p) and back[1].prompt_key == order[1]
    with store.engine.connect() as conn:
        got = conn.execute(
            text(
                "SELECT model, version, baseline_version, prompt_key, prompt, metric, change, collapsed "
                "FROM v_prompt_findings WHERE collapsed ORDER BY change"
            )
        ).all()
    assert [tuple(g) for g in got] == [
        ("bot", "v2", "v1", order[0], STORED_HOSTILE, "distinct_2", -0.4, True)
    ]
    # a second assessment replaces the findings, never duplicates them
    store.save_assessment(r2, [], VerdictRecord("ok", ["y"], {}, "v1"), rows[1:])
    assert [f.prompt_key for f in store.prompt_findings_of(r2)] == [order[1]]
    assert store.prompts_collapsed([r2]) == {r2: (0, 1)}


@pytest.fixture(scope="module")
def assessed(tmp_path_factory, data):  # type: ignore[no-untyped-def]
    """A SQLite history with v1 (healthy) and v2 (K of 24 prompts collapsed), assessed as the
    collector does (lexical-only)."""
    from collector.assessment import assess_model

    healthy, cold, order = data
    url = f"sqlite:///{tmp_path_factory.mktemp('pp') / 'h.db'}"
    store = migrated_store(url)
    _store_two_runs(
        store,
        healthy,
        cold,
        order,
        K,
        lambda r: "[red]<b>\x1b[31m\x07\u202e" + r["prompt"] if r["prompt_id"] == order[0] else r["prompt"],
    )
    v = assess_model(store, "bot", metrics=LEXICAL, n_boot=200, n_halves=20)
    return url, store, order, v


def test_collector_assessment_stores_and_names_collapsed_prompts(assessed) -> None:  # type: ignore[no-untyped-def]
    _, store, order, v = assessed
    assert v is not None and v.status == "watch"
    run = store.latest_completed_run("bot", "v2")
    found = store.prompt_findings_of(run)
    assert {f.prompt_key for f in found if f.collapsed} == set(order[:K])
    assert len({f.prompt_key for f in found}) == N


def test_history_says_prompts_collapsed(assessed) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from collector.cli import app

    url, _, _, _ = assessed
    res = CliRunner().invoke(app, ["history", "bot", "--database-url", url], env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.output
    row = next(line for line in res.output.splitlines() if line.strip().startswith("prompts collapsed"))
    assert f"{K} of {N}" in row
    assert "collapsed prompts in v2" in res.output
    assert '"[red]<b>' in res.output  # prompt text printed as text, never as markup


def test_history_lists_collapsed_prompts_worst_first(assessed) -> None:  # type: ignore[no-untyped-def]
    from collector.render.history import collapsed_prompts

    _, store, _, _ = assessed
    version, rows = collapsed_prompts(store, "bot")
    run = store.latest_completed_run("bot", version)
    change = {
        f.prompt_key: f.change
        for f in store.prompt_findings_of(run)
        if f.collapsed and f.metric == "distinct_2"
    }
    assert len(rows) == K and len(set(change.values())) > 1
    assert [k for k, _, _ in rows] == sorted(change, key=lambda k: change[k])


def test_report_has_the_per_prompt_view_escaped(assessed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from collector.report.load import write_report

    _, store, order, _ = assessed
    html = write_report(store, "bot", tmp_path).read_text(encoding="utf-8")
    assert f"Prompts that collapsed: {K} of {N}" in html
    assert "[red]&lt;b&gt;" in html and "[red]<b>" not in html
    # ESC, BEL and a right-to-left override in a prompt are shown as text, never written raw
    assert "[red]&lt;b&gt;\\x1b[31m\\x07U+202E" in html
    assert not any(ch in html for ch in "\x1b\x07\u202e")
    for pid in order[:K]:
        assert pid in html


def test_metrics_export_one_collapsed_prompt_count_per_model(assessed) -> None:  # type: ignore[no-untyped-def]
    from collector.readout.exporter import StoreCollector
    from collector.readout.snapshot import load_snapshot

    _, store, _, _ = assessed
    reg = CollectorRegistry()
    reg.register(StoreCollector(lambda: load_snapshot(store)))
    assert reg.get_sample_value("collapse_watch_prompts_collapsed", {"model": "bot", "version": "v2"}) == K
    series = [
        s for fam in reg.collect() if fam.name == "collapse_watch_prompts_collapsed" for s in fam.samples
    ]
    assert len(series) == 1  # a count for the latest version, not a series per prompt


def test_identical_collapsed_prompts_get_the_same_exact_p_and_are_all_named(data) -> None:  # type: ignore[no-untyped-def]
    # 6 + 6 outputs: 924 distinct splits, fewer than the 999 draws, so every split is enumerated
    # exactly: 30 copies of one collapsed prompt get one p-value, never below 1/924, and all survive
    healthy, cold, order = data
    d2 = select_metrics(["distinct_2"])[0]
    pid = order[0]
    b_rows, c_rows = [], []
    for k in range(60):
        bad = k < 30
        src = pid if bad else order[1 + k % (N - 1)]
        b_rows += [Sample(f"p{k:02d}", r["output"]) for r in healthy[src][:6]]
        out = cold[src][:6] if bad else healthy[src][6:12]
        c_rows += [Sample(f"p{k:02d}", r["output"]) for r in out]
    tests = prompt_tests(d2, build_corpus(b_rows), build_corpus(c_rows))
    bad_p = {t.p_value for t in tests if t.prompt_id < "p30"}
    assert len(bad_p) == 1
    (p,) = bad_p
    assert p >= 1 / 924 and tests[0].min_p == pytest.approx(1 / 924)
    adj = bh_adjust([t.p_value for t in tests])
    assert sorted(t.prompt_id for t, a in zip(tests, adj, strict=True) if a < 0.05)[:30] == [
        f"p{k:02d}" for k in range(30)
    ]


def test_can_detect_is_true_when_bh_can_name_prompts_sharing_the_smallest_p() -> None:
    from collector.metrics.prompt_test import PromptTest
    from collector.trends.prompts import assess_prompts

    def evidence(n_side: int, k: int, m: int):  # type: ignore[no-untyped-def]
        least = 1 / math.comb(2 * n_side, n_side)
        rows = [
            PromptTest(
                f"p{i:02d}",
                "distinct_2",
                0.9,
                0.5 if i < k else 0.9,
                least if i < k else 0.6,
                least,
                n_side,
                n_side,
            )
            for i in range(m)
        ]
        return assess_prompts(
            {"distinct_2": rows},
            {"distinct_2": True},
            {},
            fdr=0.05,
            floors={"distinct_2": 0.1},
            min_count=2,
            min_share=0.0,
        )

    four = evidence(4, 7, 16)  # 4 outputs a side: 7 of 16 prompts at 1/70 survive BH (16/(70·7) < 0.05)
    assert four.can_detect and len(four.collapsed) == 7
    assert four.as_dict()["can_detect"] is True
    two = evidence(2, 16, 16)  # 2 a side: 1/6 > 0.05, nothing can ever be named
    assert not two.can_detect and not two.collapsed


def test_shared_opening_and_closing_are_both_named_and_stripped(data) -> None:  # type: ignore[no-untyped-def]
    healthy, _, _ = data
    base, plain = mpp.sides(0, healthy, {}, [])
    closing = "Let me know if you need anything else."
    both = [dict(r, output=f"{OPENING} {r['output']} {closing}") for r in plain]
    groups = [
        [r["output"] for r in both if r["prompt_id"] == p] for p in sorted({r["prompt_id"] for r in both})
    ]
    found = shared_affix(groups, [r["output"] for r in base])
    assert found is not None and found.kind == "opening" and found.text == OPENING
    assert found.closing is not None and found.closing.text == closing
    assert [strip_affix(r["output"], found) for r in both] == [r["output"].strip() for r in plain]
    v = judge(base, both)
    assert v.verdict.reasons[0].startswith(
        f'shared opening "{OPENING}" and closing "{closing}" in 100% and 100%'
    )
    assert v.without_affix is not None and v.without_affix.status == judge(base, plain).verdict.status == "ok"


def test_one_output_per_prompt_says_the_per_prompt_test_was_skipped(data) -> None:  # type: ignore[no-untyped-def]
    healthy, _, _ = data
    base, cand = mpp.sides(0, healthy, {}, [])

    def first(rows):  # type: ignore[no-untyped-def]
        seen: set[str] = set()
        return [r for r in rows if not (r["prompt_id"] in seen or seen.add(r["prompt_id"]))]

    v = judge(first(base), first(cand))
    assert v.prompts is not None and not v.prompts.collapsed
    note = "per-prompt test skipped for every prompt: needs at least 2 outputs per prompt on each side"
    assert any(n.startswith(note) for n in v.prompts.as_dict()["notes"])
    assert any(r.startswith(note) for r in v.verdict.reasons)
    assert not judge(base, cand).prompts.notes  # enough outputs: no note


@pytest.mark.parametrize("n", [1, 2, 4])
def test_distinct_of_subsets_equals_distinct_of_each_subsets_texts(n: int) -> None:
    """The permutation tests' distinct-n of many subsets at once (lone n-grams grouped by text and
    count, shared ones counted per subset) against ``rarefied_distinct_n`` of each subset's own
    texts, on real outputs of one prompt plus edge rows: the empty set, one text, identical texts
    (no lone n-gram), a set below the rarefaction budget."""
    from collector.metrics.grams import Grams
    from collector.metrics.lexical import _count_matrix_key, rarefied_distinct_n
    from collector.metrics.lexical_within import distinct_of_sets

    rows = [
        json.loads(line)
        for line in (ROOT / "tests" / "data" / "smollm2_outputs.jsonl").read_text().splitlines()
    ]
    by_prompt: dict[str, list[str]] = {}
    for r in rows:
        by_prompt.setdefault(r["prompt"], []).append(r["output"])
    texts = max(by_prompt.values(), key=len)[:10]
    k = len(texts)
    texts += [texts[0], texts[0], "one two", "x"]  # copies share every n-gram; two tiny texts
    ct = _count_matrix_key(n)(texts, Grams.of(texts))
    rng = np.random.default_rng(n)
    sets = (rng.random((40, len(texts))) < 0.5).astype(float)
    edges = np.zeros((5, len(texts)))
    edges[1, 0] = 1  # one text
    edges[2, [0, k, k + 1]] = 1  # identical texts only
    edges[3, [k + 2, k + 3]] = 1  # below any budget
    edges[4, :] = 1
    sets = np.vstack([sets, edges])
    for budget in (5, 100):
        got = distinct_of_sets(ct, sets, budget)
        assert np.isnan(got[40])  # the empty set
        for row, value in zip(sets[41:], got[41:], strict=True):
            members = [t for t, keep in zip(texts, row, strict=True) if keep]
            assert value == pytest.approx(
                rarefied_distinct_n(members, n, budget), rel=1e-12, abs=1e-15, nan_ok=True
            )
        for row, value in zip(sets[:40], got[:40], strict=True):
            members = [t for t, keep in zip(texts, row, strict=True) if keep]
            if members:
                assert value == pytest.approx(
                    rarefied_distinct_n(members, n, budget), rel=1e-12, abs=1e-15, nan_ok=True
                )
