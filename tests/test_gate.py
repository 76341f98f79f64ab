"""The release gate on real SmolLM2 outputs: it says when it cannot tell, fails closed on blanks,
measures bounded rates in percentage points, and words its verdict without contradicting itself.

Data: ``tests/data/series_v1.jsonl`` (temperature 1.0) and ``series_v4.jsonl`` (0.2), 16 prompts x
6 outputs; ``control_b.jsonl`` an independent draw at 1.0.  Lexical metrics only (fast).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from collector.comparison import ScoredBatch, compare_batches
from collector.metrics.base import Sample
from collector.metrics.registry import select_metrics
from collector.scoring import score_batch
from collector.trends import compare, format_change, format_interval, min_pairs_for, verdict
from collector.trends.change import clip_value_interval, scale_of

DATA = Path(__file__).parent / "data"
LEXICAL = [m for m in select_metrics(None) if not m.needs_embeddings]


def samples(
    name: str, *, prompts: int | None = None, per_prompt: int | None = None, edit=None
) -> list[Sample]:
    rows = [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines() if line]
    keep = sorted({r["prompt_id"] for r in rows})[:prompts]
    out: list[Sample] = []
    seen: dict[str, int] = {}
    for r in rows:
        pid = r["prompt_id"]
        if pid not in keep or (per_prompt is not None and seen.get(pid, 0) >= per_prompt):
            continue
        seen[pid] = seen.get(pid, 0) + 1
        text = edit(r["output"]) if edit else r["output"]
        out.append(Sample(prompt_id=pid, output=text, prompt=r["prompt"]))
    return out


def batch(label: str, s: list[Sample]) -> ScoredBatch:
    return score_batch(label, s, metrics=[m.name for m in LEXICAL], n_boot=2, seed=0)


def gate(base: list[Sample], cand: list[Sample]):  # type: ignore[no-untyped-def]
    return compare_batches(batch("v1", base), batch("v4", cand), LEXICAL, n_boot=500, n_halves=20)


def test_the_sign_flip_test_needs_six_prompts_at_five_percent() -> None:
    assert min_pairs_for(0.05) == 6 and min_pairs_for(0.01) == 8


@pytest.mark.parametrize("n_prompts", [1, 5])
def test_a_severe_collapse_on_too_few_prompts_is_inconclusive_not_ok(n_prompts: int) -> None:
    result = gate(
        samples("series_v1.jsonl", prompts=n_prompts), samples("series_v4.jsonl", prompts=n_prompts)
    )
    v = result.verdict
    assert v.status == "inconclusive"
    assert f"only {n_prompts} shared prompt" in v.reasons[0] and "at least 6" in v.reasons[0]
    assert "could have been detected" in v.reasons[0]
    assert v.details["min_pairs"] == 6


def test_one_output_per_prompt_leaves_the_pairwise_metrics_unscorable() -> None:
    """With one output per prompt, Self-BLEU (and every embedding metric) needs two: unscorable.
    A family left with no scorable metric makes the verdict inconclusive."""
    result = gate(samples("series_v1.jsonl", per_prompt=1), samples("series_v4.jsonl", per_prompt=1))
    assert not result.by_scope("within")["self_bleu"].scorable
    assert result.coverage is not None and result.coverage.min_samples_per_prompt == 1
    unscorable = compare({"a": math.nan}, {"a": math.nan}, higher_is_diverse=True)
    lexical = result.by_scope("within")
    families = {m: "lexical" for m in lexical} | {"vendi_score": "embedding"}
    v = verdict({**lexical, "vendi_score": unscorable}, {}, families, coverage=result.coverage)
    assert v.status == "inconclusive"
    assert "at least 2 per prompt" in v.reasons[0] and "embedding" in v.reasons[0]


def test_enough_prompts_reach_a_decision_and_ok_states_what_it_could_detect() -> None:
    bad = gate(samples("series_v1.jsonl"), samples("series_v4.jsonl"))
    assert bad.verdict.status == "collapse_suspected"  # lexical-only, 16 prompts
    fine = gate(samples("series_v1.jsonl"), samples("control_b.jsonl"))
    assert fine.verdict.status == "ok"
    assert any(r.startswith("smallest decline 16 shared prompts could detect") for r in fine.verdict.reasons)
    assert not any("no significant decline" in r for r in fine.verdict.reasons)


def test_dropped_prompts_are_reported() -> None:
    base = samples("series_v1.jsonl", prompts=12)
    cand = [s for s in samples("control_b.jsonl") if s.prompt_id != base[0].prompt_id]
    result = gate(base, cand)
    assert result.coverage is not None
    assert (result.coverage.only_baseline, result.coverage.only_candidate) == (1, 4)
    assert any("left out: 1 only in v1, 4 only in the candidate" in r for r in result.verdict.reasons)


@pytest.mark.parametrize("blank_share", [1.0, 0.75])
def test_a_mostly_blank_candidate_fails_closed(blank_share: float) -> None:
    base = samples("series_v1.jsonl")
    cand = [
        Sample(s.prompt_id, "" if i % 4 < blank_share * 4 else s.output, s.prompt)
        for i, s in enumerate(samples("control_b.jsonl"))
    ]
    v = gate(base, cand).verdict
    assert v.status == "collapse_suspected"
    assert "candidate outputs are blank" in v.reasons[0]


def test_blank_on_both_sides_is_inconclusive() -> None:
    blank = [Sample(s.prompt_id, " ", s.prompt) for s in samples("series_v1.jsonl")]
    assert gate(blank, blank).verdict.status == "inconclusive"


def test_bounded_rate_from_zero_is_a_difference_in_points_with_a_working_test() -> None:
    base = {f"p{i}": 0.0 for i in range(12)}
    cand = {f"p{i}": 1.0 for i in range(12)}
    c = compare(base, cand, higher_is_diverse=False, metric="duplicate_rate", n_boot=500)
    assert c.scale == "difference" and c.change == pytest.approx(1.0)
    assert c.p_value < 0.01 and c.significant_decline
    assert format_change("duplicate_rate", c.change) == "+100.0 pp"
    assert c.change_ci_high <= 1.0  # clipped: a rate cannot rise more than from 0 to 1


def test_ratio_metric_change_reads_as_a_factor_and_rates_as_points() -> None:
    assert scale_of("vendi_score") == "ratio" and scale_of("self_bleu") == "difference"
    assert format_change("vendi_score", 0.87 / 1.52 - 1) == "×0.57"
    assert format_change("compression_ratio", 7.3) == "×8.30"
    assert format_change("self_bleu", 0.725 - 0.043) == "+68.2 pp"
    assert format_change("distinct_2", -0.286) == "−28.6 pp"
    assert format_interval("self_bleu", 0.6, 0.75) == "[+60.0, +75.0] pp"


def test_intervals_are_clipped_to_the_metric_range() -> None:
    assert clip_value_interval("distinct_2", -0.28, 0.28) == (0.0, 0.28)
    assert clip_value_interval("self_bleu", -0.25, 1.32) == (0.0, 1.0)
    lo, hi = clip_value_interval("vendi_score", 0.2, 3.0)
    assert (lo, hi) == (1.0, 3.0)
    assert math.isnan(clip_value_interval("self_bleu", math.nan, 0.5)[0])


def test_reasons_and_table_share_one_orientation() -> None:
    """self_bleu rose: '+' in the reasons and in the JSON's change, whatever the diversity sign."""
    from collector.render.tables import comparison_json

    result = gate(samples("series_v1.jsonl"), samples("series_v4.jsonl"))
    doc = comparison_json(result)
    row = next(r for r in doc["metrics"] if (r["metric"], r["scope"]) == ("self_bleu", "within"))
    assert row["change"] > 0 and row["change_text"].startswith("+") and row["change_text"].endswith("pp")
    line = next(r for r in result.verdict.reasons if r.startswith("self_bleu "))
    assert line.startswith("self_bleu " + row["change_text"])


def test_truncated_outputs_alone_are_not_a_decline() -> None:
    """Real outputs cut to their first 10 words: shorter, not less diverse (the normalised entropy
    does not fall with the token count, and the length family never counts)."""
    cut = gate(
        samples("series_v1.jsonl"),
        samples("control_b.jsonl", edit=lambda t: " ".join(t.split()[:10])),
    )
    assert cut.verdict.status == "ok", cut.verdict.reasons
    entropy = [r for r in cut.rows if r.metric.startswith("ngram_entropy") and r.scope == "within"]
    assert entropy and not any(r.comparison.significant_decline for r in entropy)


def test_verdict_without_any_comparison_is_inconclusive_not_ok() -> None:
    v = verdict({}, {}, {})
    assert v.status == "inconclusive"
