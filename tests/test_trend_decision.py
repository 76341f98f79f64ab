"""The trend decision has a minimum effect, like the comparison (issue #14): a strictly monotone but
tiny drift is significant by Mann-Kendall and still not a decline."""

from __future__ import annotations

import pytest

from collector.trends import trend
from collector.trends.verdict import verdict


def test_a_tiny_monotone_drift_is_not_a_decline() -> None:
    # distinct_2 of the healthy control in the issue: -0.9% per version, p 0.0275
    values = [0.800 * (1 - 0.009) ** i for i in range(5)]
    t = trend(values, higher_is_diverse=True)
    assert t.p_value == pytest.approx(0.0275, abs=1e-3) and t.slope < 0
    assert not t.significant_decline


def test_a_drift_of_the_minimum_effect_over_the_window_is_a_decline() -> None:
    values = [0.800 * (1 - 0.015) ** i for i in range(5)]  # ~5.9% lost over 4 steps
    t = trend(values, higher_is_diverse=True)
    assert t.significant_decline
    assert not trend(values, higher_is_diverse=True, min_effect=0.10).significant_decline
    # lower-is-more-diverse metrics: a rising self_bleu is the decline
    assert trend([0.2 * 1.03**i for i in range(5)], higher_is_diverse=False).significant_decline


def test_trend_decision_needs_both_families() -> None:
    down = trend([1.0, 0.95, 0.9, 0.85, 0.8], higher_is_diverse=True)
    flat = trend([1.0, 1.01, 0.99, 1.0, 1.01], higher_is_diverse=True)
    families = {"distinct_2": "lexical", "ngram_entropy_1": "lexical", "vendi_score": "embedding"}
    one_family = verdict({}, {"distinct_2": down, "ngram_entropy_1": down, "vendi_score": flat}, families)
    both = verdict({}, {"distinct_2": down, "ngram_entropy_1": flat, "vendi_score": down}, families)
    assert one_family.status == "ok" and not all(one_family.details["trend_family_reached"].values())
    assert both.status == "watch" and all(both.details["trend_family_reached"].values())


def test_short_of_every_rule_names_the_p_each_rule_needs() -> None:
    # one family alone: 13 of 14 lexical declined at p < 0.05 but none at p < 0.01, so the reason
    # must say that collapse_suspected needs 7 lexical at p < 0.01, not just "7 lexical"
    from collector.trends.compare import Comparison

    def cmp(p: float, down: bool) -> Comparison:
        return Comparison(24, 0.9, 0.8, -0.1, -0.2, -0.01, -0.1, -0.2, -0.01, p, True, down, change=-0.1)

    names = [f"m{i}" for i in range(14)]
    comps = {m: cmp(0.03 if i < 13 else 0.5, i < 13) for i, m in enumerate(names)}
    v = verdict(comps, {}, dict.fromkeys(names, "lexical"))
    assert v.status == "ok"
    line = next(r for r in v.reasons if "short of every rule" in r)
    assert line.startswith("13 of 14 lexical")
    assert "collapse_suspected needs 7 lexical at p < 0.01 (lexical-only verdict)" in line
    both = {**comps, "e0": cmp(0.03, True), "e1": cmp(0.5, False), "e2": cmp(0.5, False)}
    fams = {**dict.fromkeys(names, "lexical"), **dict.fromkeys(["e0", "e1", "e2"], "embedding")}
    two = verdict(both, {}, fams)
    assert two.status == "ok"
    assert "collapse_suspected needs 7 lexical and 2 embedding at p < 0.05; watch needs" in " ".join(
        two.reasons
    )
