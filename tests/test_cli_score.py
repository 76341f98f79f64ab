"""`collapse-watch score` end to end, as a user runs it (a real subprocess)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collector.inputs import read_records
from collector.metrics.suite import score_samples
from tests.cli_process import cli

DATA = Path(__file__).parent / "data" / "smollm2_outputs.jsonl"


def test_json_output_matches_the_library_and_documented_shape() -> None:
    proc = cli("score", str(DATA), "--json", "--no-embeddings", "--bootstrap", "50")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    records = read_records(DATA)
    assert doc["n_samples"] == len(records)
    assert doc["n_prompts"] == len({r.sample.prompt_id for r in records})
    expected = score_samples([r.sample for r in records], None, n_boot=50)
    assert set(doc["metrics"]) == {v.metric for v in expected.values}
    d2 = doc["metrics"]["distinct_2"]
    assert d2["within"] == pytest.approx(expected.get("distinct_2", "within").value)
    assert d2["across"] == pytest.approx(expected.get("distinct_2", "across").value)
    lo, hi = d2["within_ci"]
    assert lo <= d2["within"] <= hi


def test_metric_subset_and_table() -> None:
    proc = cli(
        "score", str(DATA), "--metrics", "distinct_2,self_bleu", "--no-embeddings", "--bootstrap", "20"
    )
    assert proc.returncode == 0, proc.stderr
    assert "distinct_2" in proc.stdout and "self_bleu" in proc.stdout
    assert "vendi_score" not in proc.stdout and "distinct_1" not in proc.stdout


def test_full_suite_with_the_packaged_embedding_model(tmp_path: Path) -> None:
    small = tmp_path / "small.jsonl"
    small.write_text(
        "".join(DATA.read_text(encoding="utf-8").splitlines(keepends=True)[:30]), encoding="utf-8"
    )
    proc = cli("score", str(small), "--json", "--bootstrap", "20")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout)["metrics"]
    assert 1.0 <= metrics["vendi_score"]["across"] <= 30
    assert 0.0 < metrics["embedding_mean_distance"]["across"] < 1.0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"prompt": "a", "output": "b"}\n{"prompt": "a"\n', "bad.jsonl:2: invalid JSON"),
        ('{"prompt": "a", "answer": "b"}\n', "bad.jsonl:1: missing field(s) 'output'"),
    ],
)
def test_bad_input_exits_2_and_names_the_line(tmp_path: Path, content: str, message: str) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content, encoding="utf-8")
    proc = cli("score", str(bad), "--no-embeddings")
    assert proc.returncode == 2
    assert message in proc.stderr


def test_unknown_metric_is_a_usage_error() -> None:
    proc = cli("score", str(DATA), "--metrics", "distinct_9")
    assert proc.returncode == 2
    assert "unknown metric(s): distinct_9" in proc.stderr
