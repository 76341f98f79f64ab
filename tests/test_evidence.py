"""The pooled + tail status rule (collector.trends.evidence) and its one hook in the verdict."""

from __future__ import annotations

import dataclasses

import numpy as np

from collector.trends import Comparison, Thresholds, compare_paired_replicates, verdict
from collector.trends.evidence import pooled_and_tail_evidence

LEXICAL = [f"distinct_{n}" for n in range(1, 5)] + ["self_bleu", "compression_ratio"]
TAIL = ["tail_ngram_retention_1", "tail_ngram_retention_2", "tail_knn_recall"]
FAMILIES = {**dict.fromkeys(LEXICAL, "lexical"), **dict.fromkeys(TAIL, "tail"), "vendi_score": "embedding"}
TH = {"lexical_fraction": 0.5, "watch_p_value": 0.01}


def _cmp(change: float, seed: int = 0) -> Comparison:
    """A pooled comparison from paired replicates: ``change`` relative, spread ~1%."""
    rng = np.random.default_rng(seed)
    base = 1 + 0.01 * rng.normal(size=100)
    return compare_paired_replicates(
        base,
        base * (1 + change) + 0.002 * rng.normal(size=100),
        higher_is_diverse=True,
        n_pairs=40,  # 40 shared prompts: enough for a decision (else the verdict is inconclusive)
    )


def _pooled(lexical: float, tail: dict[str, float]) -> dict[str, Comparison]:
    out = {m: _cmp(lexical, i) for i, m in enumerate(LEXICAL)}
    out |= {m: _cmp(tail.get(m, 0.0), 10 + i) for i, m in enumerate(TAIL)}
    out["vendi_score"] = _cmp(0.0, 30)  # the embedding family was scored (and did not decline)
    return out


def test_homogenisation_with_tail_loss_is_collapse() -> None:
    pooled = _pooled(-0.2, {"tail_ngram_retention_1": -0.3})
    ev = pooled_and_tail_evidence("watch", pooled, FAMILIES, **TH)
    assert ev.status == "collapse_suspected"
    assert ev.reasons == [
        "homogenised across prompts: 6 of 6 lexical metrics declined in the pooled scope, "
        "with tail loss (tail_ngram_retention_1)"
    ]
    assert ev.details["raised_from"] == "watch"


def test_without_embeddings_homogenisation_with_tail_loss_is_only_watch() -> None:
    pooled = _pooled(-0.2, {"tail_ngram_retention_1": -0.3})
    del pooled["tail_knn_recall"], pooled["vendi_score"]
    ev = pooled_and_tail_evidence("ok", pooled, FAMILIES, **TH)
    assert ev.status == "watch" and ev.reasons[0].endswith(
        "lexical evidence only (no embeddings): watch at most"
    )


def test_pooled_lexical_decline_without_length_controlled_tail_loss_changes_nothing() -> None:
    # the shape of a length-only change: pooled lexical scores move, the rarefied prefix tails do not;
    # a k-NN recall decline (embeddings are not length-controlled) does not stand in for them
    pooled = _pooled(-0.2, {"tail_knn_recall": -0.3})
    ev = pooled_and_tail_evidence("ok", pooled, FAMILIES, **TH)
    assert ev.status == "ok" and ev.reasons == []
    assert ev.details["homogenised"] and ev.details["tail_lost_length_controlled"] == []


def test_tail_loss_alone_is_watch_and_one_tail_metric_is_not() -> None:
    two = _pooled(0.0, {"tail_ngram_retention_1": -0.3, "tail_knn_recall": -0.3})
    ev = pooled_and_tail_evidence("ok", two, FAMILIES, **TH)
    assert ev.status == "watch" and ev.reasons == ["tail loss: 2 of 3 tail metrics declined"]
    one = _pooled(0.0, {"tail_ngram_retention_2": -0.3})
    assert pooled_and_tail_evidence("ok", one, FAMILIES, **TH).status == "ok"


def test_the_rule_never_lowers_a_status_and_ignores_nan() -> None:
    quiet = _pooled(0.0, {})
    assert (
        pooled_and_tail_evidence("collapse_suspected", quiet, FAMILIES, **TH).status == "collapse_suspected"
    )
    strong = _pooled(-0.2, {"tail_ngram_retention_1": -0.3})
    ev = pooled_and_tail_evidence("collapse_suspected", strong, FAMILIES, **TH)
    assert ev.status == "collapse_suspected" and ev.reasons == [] and ev.details["raised_from"] is None
    nan = {m: dataclasses.replace(c, rel_change=float("nan")) for m, c in strong.items()}
    assert pooled_and_tail_evidence("ok", nan, FAMILIES, **TH).status == "ok"


def test_verdict_applies_the_rule_once_with_its_reason_first() -> None:
    flat = {m: _cmp(0.0, 20 + i) for i, m in enumerate([*LEXICAL, "vendi_score"])}
    pooled = _pooled(-0.2, {"tail_ngram_retention_2": -0.25})
    v = verdict(flat, {}, FAMILIES, Thresholds(), pooled=pooled)
    assert v.status == "collapse_suspected"
    assert v.reasons[0].startswith("homogenised across prompts: 6 of 6 lexical")
    assert v.details["pooled_and_tail"]["raised_from"] == "ok"
    assert verdict(flat, {}, FAMILIES, Thresholds(), pooled=_pooled(-0.2, {})).status == "ok"
