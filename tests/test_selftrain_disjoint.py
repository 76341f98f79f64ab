"""The disjoint-prompt self-training series (issue #17), judged by the default gate.

``tests/data/selftrain_disjoint/series.jsonl`` holds real outputs: SmolLM2-135M-Instruct fine-tuned on
its own answers to 48 training prompts that are disjoint from the 24 probes, one generation after
another (``scripts/self_train.py``, the CPU recipe in docs/self_training.md). v1 is the base model and
the last version the last generation; every version answers each probe 4 times.

On prompts it never trained on, the model homogenises: its answers narrow across prompts (the
pooled lexical scope) and lose the base model's rare words and bigrams, while the spread of its
answers to any one prompt barely moves. The ``within`` rule alone calls that ``watch``; the pooled +
tail rule (``collector/trends/evidence.py``) calls it ``collapse_suspected``.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest
from cli_process import cli

from collector.comparison import BatchComparison, ScoredBatch, compare_batches
from collector.embeddings import Embedder
from collector.metrics.base import Sample
from collector.metrics.registry import select_metrics
from collector.scoring import score_batch

SERIES = Path(__file__).parent / "data" / "selftrain_disjoint" / "series.jsonl"


def rows() -> list[dict]:
    return [json.loads(x) for x in SERIES.read_text(encoding="utf-8").splitlines() if x.strip()]


def last_version() -> str:
    return f"v{max(int(r['version'].lstrip('v')) for r in rows())}"


@cache
def embedder() -> Embedder:
    return Embedder("default")


@cache
def scored(version: str, embedded: bool) -> ScoredBatch:
    samples = [Sample(r["prompt_id"], r["output"], r["prompt"]) for r in rows() if r["version"] == version]
    names = [m.name for m in select_metrics(None) if embedded or not m.needs_embeddings]
    return score_batch(version, samples, metrics=names, embed=embedder() if embedded else None, n_boot=2)


def judged(candidate: str, embedded: bool = True) -> BatchComparison:
    metrics = [m for m in select_metrics(None) if embedded or not m.needs_embeddings]
    return compare_batches(scored("v1", embedded), scored(candidate, embedded), metrics)


def test_the_series_is_the_disjoint_prompt_run() -> None:
    data = rows()
    probes = {r["prompt"] for r in data}
    text = (Path(__file__).parents[1] / "scripts" / "self_train_prompts.txt").read_text(encoding="utf-8")
    train = {line for line in text.splitlines() if line.strip() and not line.startswith("#")}
    assert len(train) == 48 and len(probes) == 24
    assert not probes & train  # the probes were never trained on
    per_version: dict[str, int] = {}
    for r in data:
        per_version[r["version"]] = per_version.get(r["version"], 0) + 1
    assert len(per_version) >= 7 and set(per_version.values()) == {96}  # 24 probes x 4 outputs


def test_the_last_generation_is_collapse_suspected_by_the_pooled_and_tail_rule() -> None:
    bc = judged(last_version())
    v = bc.verdict
    assert v.status == "collapse_suspected", v.reasons
    evidence = v.details["pooled_and_tail"]
    assert evidence["homogenised"] and evidence["tail_lost_length_controlled"], evidence
    assert evidence["raised_from"] in ("ok", "watch")  # the within rule alone would not have said it
    assert v.reasons[0].startswith("homogenised across prompts")
    within = bc.by_scope("within")
    assert not within["embedding_mean_distance"].significant_decline  # no semantic narrowing per prompt


def test_the_first_generation_is_not_flagged() -> None:
    assert judged("v2").verdict.status == "ok"


def test_without_embeddings_the_lexical_family_itself_reaches_collapse_later() -> None:
    """Lexical-only (``--no-embeddings``), the pooled rule can only give ``watch``; by the last
    generation the ``within`` lexical family declines at p < 0.01 on its own."""
    gen5 = judged("v6", embedded=False).verdict
    assert gen5.status == "watch" and gen5.details["pooled_and_tail"]["homogenised"], gen5.reasons
    last = judged(last_version(), embedded=False).verdict
    assert last.status == "collapse_suspected", last.reasons
    assert last.details["pooled_and_tail"]["raised_from"] is None  # not the pooled rule's doing


@pytest.mark.slow
def test_the_release_gate_fails_on_the_last_generation(tmp_path: Path) -> None:
    """`collapse-watch compare` on the two versions' files: exit 1 (collapse suspected)."""
    paths = {}
    for version in ("v1", last_version()):
        paths[version] = tmp_path / f"{version}.jsonl"
        paths[version].write_text(
            "".join(json.dumps(r) + "\n" for r in rows() if r["version"] == version), encoding="utf-8"
        )
    proc = cli("compare", str(paths["v1"]), str(paths[last_version()]), "--json")
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["verdict"] == "collapse_suspected"
