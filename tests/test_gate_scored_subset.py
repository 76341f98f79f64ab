"""The gate scores what the collector scored: `score --store` and `compare MODEL@VERSION` bound a
stored run to the same ``max_scored_samples`` bottom-k subset (``collector.scored_subset``) as the
collector's assessment (``assessment.load_batch(max_samples=...)``), not every stored output.

Issue #21: before the fix both scored every output, so for a run bigger than the cap the gate
judged other samples than the collector did.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

from typer.testing import CliRunner

from collector.assessment import load_batch
from collector.cli import app
from collector.config import ModelConfig
from collector.store import Store

WORDS = [
    "red",
    "blue",
    "green",
    "gold",
    "grey",
    "teal",
    "pink",
    "plum",
    "rust",
    "sand",
    "jade",
    "navy",
    "lime",
    "ruby",
    "onyx",
    "opal",
]
METRICS = "distinct_2,duplicate_rate"


def write_outputs(path: Path, n_prompts: int, per_prompt: int, seed: int) -> Path:
    """A file of outputs, each a random phrase, so any two subsets score differently."""
    rng = random.Random(seed)
    rows = [
        {"prompt": f"Describe thing {p}.", "output": " ".join(rng.choices(WORDS, k=rng.randint(2, 7)))}
        for p in range(n_prompts)
        for _ in range(per_prompt)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def invoke(*args: str) -> dict:  # type: ignore[type-arg]
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code in (0, 1, 3, 4), (result.exit_code, result.output)
    return json.loads(result.stdout) if "--json" in args else {}


def store_run(tmp_path: Path, url: str, version: str, n_prompts: int, per_prompt: int, *extra: str) -> int:
    path = write_outputs(tmp_path / f"{version}.jsonl", n_prompts, per_prompt, seed=len(version) + n_prompts)
    invoke(
        "score", str(path), "--store", "--model", "bot", "--version", version, "--no-embeddings",
        "--metrics", METRICS, "--bootstrap", "10", "--database-url", url, *extra,
    )  # fmt: skip
    run_id = Store(url).latest_completed_run("bot", version)
    assert run_id is not None
    return run_id


def values(result) -> dict[tuple[str, str], float | None]:  # type: ignore[no-untyped-def]
    return {(v.metric, v.scope): None if math.isnan(v.value) else v.value for v in result.values}


def collector_values(url: str, run_id: int, cap: int) -> dict[tuple[str, str], float | None]:
    """What the collector's assessment scores of a stored run bounded to ``cap`` outputs."""
    batch = load_batch(
        Store(url), run_id, "x", metrics=METRICS.split(","), embed=None, seed=0, max_samples=cap
    )
    return values(batch.result)


def compared_means(report: dict, side: str) -> dict[tuple[str, str], float | None]:  # type: ignore[type-arg]
    """The side's value of each suite metric compared (the comparison's own tail metrics left out)."""
    suite = set(METRICS.split(","))
    return {(m["metric"], m["scope"]): m[side] for m in report["metrics"] if m["metric"] in suite}


def test_compare_of_stored_runs_scores_the_collectors_subset(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    base = store_run(tmp_path, url, "v1", 8, 10)
    cand = store_run(tmp_path, url, "v2", 8, 10)
    report = invoke(
        "compare", "bot@v1", "bot@v2", "--json", "--no-embeddings", "--metrics", METRICS,
        "--max-scored-samples", "30", "--database-url", url,
    )  # fmt: skip
    for side, run_id in (("baseline", base), ("candidate", cand)):
        expected = collector_values(url, run_id, 30)
        assert compared_means(report, side) == expected
        assert expected != collector_values(url, run_id, 80)  # the cap matters for this data


def test_compare_applies_the_config_default_cap_without_the_option(tmp_path: Path) -> None:
    cap = ModelConfig.model_fields["max_scored_samples"].default
    url = f"sqlite:///{tmp_path / 'h.db'}"
    n_prompts, per_prompt = 40, cap // 40 + 3  # a run bigger than the default cap
    base = store_run(tmp_path, url, "v1", n_prompts, per_prompt)
    cand = store_run(tmp_path, url, "v2", n_prompts, per_prompt)
    report = invoke(
        "compare", "bot@v1", "bot@v2", "--json", "--no-embeddings", "--metrics", METRICS,
        "--database-url", url,
    )  # fmt: skip
    assert compared_means(report, "baseline") == collector_values(url, base, cap)
    assert compared_means(report, "candidate") == collector_values(url, cand, cap)


def test_score_store_records_the_values_of_the_collectors_subset(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    run_id = store_run(tmp_path, url, "v1", 8, 10, "--max-scored-samples", "30")
    stored = {
        (r["metric"], r["scope"]): r["value"]
        for r in Store(url).latest_metrics("bot")
        if r["run_id"] == run_id
    }
    expected = collector_values(url, run_id, 30)
    assert stored == {k: v for k, v in expected.items() if v is not None}
    assert len(Store(url).run_samples(run_id)) == 80  # every output is stored, 30 are scored


def test_score_refuses_a_cap_without_a_run_to_store(tmp_path: Path) -> None:
    path = write_outputs(tmp_path / "f.jsonl", 2, 3, seed=0)
    result = CliRunner().invoke(app, ["score", str(path), "--no-embeddings", "--max-scored-samples", "10"])
    assert result.exit_code == 2 and "give --store too" in result.stderr


def test_score_store_assesses_on_the_metrics_it_scored(tmp_path: Path) -> None:
    """`score --store --metrics M` assesses the model on M, as the collector's assessment does with a
    model's ``metrics:`` (before, the stored file was judged on the whole default suite)."""
    url = f"sqlite:///{tmp_path / 'h.db'}"
    store_run(tmp_path, url, "v1", 8, 10)
    cand = store_run(tmp_path, url, "v2", 8, 10)
    compared = {r.metric for r in Store(url).comparisons_of(cand)}
    # the tail family (retention of the baseline's rare n-grams) is compared for every selection
    assert {m for m in compared if not m.startswith("tail_")} == set(METRICS.split(","))
