"""The Python API (``import collapse_watch``): the same numbers and verdicts as the command line, the
same history as the collector, and clear errors for bad arguments."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

import collapse_watch
from collector.inputs import read_records
from collector.readout.exporter import StoreCollector
from collector.readout.snapshot import load_snapshot
from tests.cli_process import cli

DATA = Path(__file__).parent / "data"
V1, V4 = DATA / "series_v1.jsonl", DATA / "series_v4.jsonl"


def as_mapping(path: Path) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for r in read_records(path):
        grouped.setdefault(r.sample.prompt, []).append(r.sample.output)
    return grouped


def test_compare_gives_the_cli_gate_verdict_and_changes() -> None:
    proc = cli("compare", str(V1), str(V4), "--json", "--no-embeddings")
    expected = json.loads(proc.stdout)
    v = collapse_watch.compare(V1, V4, embeddings=False)
    assert proc.returncode == v.exit_code == collapse_watch.EXIT_CODES[v.status]
    assert (v.status, list(v.reasons)) == (expected["verdict"], expected["reasons"])
    assert v.status != "ok"  # v4 (temperature 0.2) is far less diverse than v1 (1.0)
    cli_rows = {(m["metric"], m["scope"]): m for m in expected["metrics"]}
    assert {(c.metric, c.scope) for c in v.changes} == set(cli_rows)
    for c in v.changes:
        row = cli_rows[(c.metric, c.scope)]
        assert c.change == pytest.approx(row["change"], nan_ok=True)
        assert [c.ci_low, c.ci_high] == pytest.approx(row["change_ci"], nan_ok=True)
        assert (c.p_value, c.significant_decline, c.change_text) == (
            pytest.approx(row["p_value"]) if row["p_value"] is not None else None,
            row["significant_decline"],
            row["change_text"],
        )
    assert v.declined and all(v.change(*d.split("/")).significant_decline for d in v.declined)


def test_score_gives_the_cli_values_and_takes_lists_or_mappings() -> None:
    proc = cli("score", str(V1), "--json", "--no-embeddings")
    expected = json.loads(proc.stdout)["metrics"]
    records = read_records(V1)
    s = collapse_watch.score(
        [r.sample.output for r in records], [r.sample.prompt for r in records], embeddings=False
    )
    assert (s.n_outputs, s.n_prompts) == (64, 16)
    for m in s.metrics:
        assert m.value == pytest.approx(expected[m.metric][m.scope], nan_ok=True)
        assert [m.ci_low, m.ci_high] == pytest.approx(expected[m.metric][f"{m.scope}_ci"], nan_ok=True)
    assert collapse_watch.score(as_mapping(V1), embeddings=False) == s
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.n_outputs = 0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: collapse_watch.score("one text"), "expected a list of output texts"),
        (lambda: collapse_watch.score(["a", "b"], ["p"]), "1 prompts for 2 outputs"),
        (lambda: collapse_watch.score(["a", 3]), "output 1 is a int"),
        (lambda: collapse_watch.score([]), "no outputs"),
        (lambda: collapse_watch.score({"p": "not a list"}), "outputs['p']: expected a list"),
        (lambda: collapse_watch.score(["a"], metrics=["distinct_9"]), "unknown metric(s): distinct_9"),
        (lambda: collapse_watch.score(["a"], embeddings=""), "embeddings: expected True, False"),
        (
            lambda: collapse_watch.score(["a"], bootstrap=3, embeddings=False),
            "bootstrap: must be at least 10",
        ),
        (
            lambda: collapse_watch.score({"p": ["ok", "bad \ud800"]}, embeddings=False),
            "output 1 holds invalid Unicode (lone surrogate \\ud800 at character 5)",
        ),
        (
            lambda: collapse_watch.score(["a", "b"], ["p", "q\udfff"], embeddings=False),
            "the prompt of output 1 holds invalid Unicode",
        ),
        (
            lambda: collapse_watch.compare(V1, "/no/such.jsonl", embeddings=False),
            "candidate: '/no/such.jsonl'",
        ),
        (
            lambda: collapse_watch.compare(V1, V4, prompts=["p"], embeddings=False),
            "a file names its own prompts",
        ),
    ],
)
def test_bad_arguments_are_named(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises((TypeError, ValueError)) as info:
        call()
    assert message in str(info.value)


def test_history_records_what_history_views_and_metrics_show(db_url: str) -> None:
    with collapse_watch.History(db_url) as history:
        first = history.record("api-bot", "v1", as_mapping(V1), embeddings=False)
        with pytest.raises(ValueError, match="version: must not be empty or only spaces"):
            history.record("api-bot", " ", as_mapping(V4), embeddings=False)
        with pytest.raises(ValueError, match="version: 201 characters, at most 200 characters"):
            history.record("api-bot", "v" * 201, as_mapping(V4), embeddings=False)
        with pytest.raises(ValueError, match="model holds the control or bidi character U\\+000A"):
            history.record("api bot\n", "v9", as_mapping(V4), embeddings=False)
        with pytest.raises(TypeError, match="output 0 is a NoneType"):
            history.record("api-bot", "v9", [None], embeddings=False)  # type: ignore[list-item]
        second = history.record("api-bot", "v4", as_mapping(V4), embeddings=False)
        assert history.versions("api-bot") == ["v1", "v4"]  # bad input stored nothing
        store = history.store
        assert (first.verdict.status, first.vs_previous) == ("ok", None)
        offline = collapse_watch.compare(V1, V4, embeddings=False)
        assert second.verdict.status == offline.status != "ok"
        assert second.verdict.changes == dataclasses.replace(offline, baseline="v1", candidate="v4").changes
        assert second.vs_previous is not None and second.vs_previous.baseline == "v1"
        assert store.verdict_of(second.run_id).status == second.verdict.status  # type: ignore[union-attr]
        reg = CollectorRegistry()
        reg.register(StoreCollector(lambda: load_snapshot(store)))
        labels = {"model": "api-bot", "version": "v4", "verdict": second.verdict.status}
        assert reg.get_sample_value("collapse_watch_verdict", labels) == 1
    proc = cli("history", "api-bot", "--database-url", db_url)
    assert proc.returncode == 0, proc.stderr
    assert "v1 (baseline)" in proc.stdout and second.verdict.status in proc.stdout


def test_an_unreachable_database_is_named_without_its_password() -> None:
    with pytest.raises(ValueError, match=r"cannot open the database postgresql\+psycopg://u@127.0.0.1:1/x"):
        collapse_watch.History("postgresql+psycopg://u:secret@127.0.0.1:1/x")


def test_a_recorded_version_is_refused_and_nothing_is_mixed_into_it(tmp_path: Path) -> None:
    with collapse_watch.History(f"sqlite:///{tmp_path / 'h.db'}") as history:
        first = history.record("bot", "v1", as_mapping(V1), embeddings=False)
        with pytest.raises(collapse_watch.VersionExists) as info:
            history.record("bot", "v1", as_mapping(V4), embeddings=False)
        message = str(info.value)
        assert "bot@v1 is already recorded in the history" in message and "'v1-2'" in message
        assert isinstance(info.value, ValueError) and info.value.run_id == first.run_id
        store = history.store
        assert history.versions("bot") == ["v1"]
        assert store.latest_completed_run("bot") == first.run_id  # no second run of v1
        assert [s.output for s in store.run_samples(first.run_id)] == [
            o for outs in as_mapping(V1).values() for o in outs
        ]
        # the suggested label is free: recording under it works
        assert history.record("bot", "v1-2", as_mapping(V4), embeddings=False).version == "v1-2"


@pytest.mark.parametrize(
    ("model", "version", "error", "message"),
    [
        ("", "v1", ValueError, "model: must not be empty or only spaces"),
        ("   ", "v1", ValueError, "model: must not be empty or only spaces"),
        ("x" * 201, "v1", ValueError, "model: 201 characters, at most 200"),
        ("bot", "v\x00", ValueError, "version holds the control or bidi character U+0000 at character 2"),
        ("bot\nevil", "v1", ValueError, "model holds the control or bidi character U+000A at character 4"),
        ("bot", "v\ud800", ValueError, "version: lone surrogate \\ud800 at index 1"),
        (3, "v1", TypeError, "model: expected a string, got int"),
    ],
)
def test_names_the_store_cannot_keep_are_refused_by_its_rule(
    tmp_path: Path, model: object, version: str, error: type, message: str
) -> None:
    with collapse_watch.History(f"sqlite:///{tmp_path / 'h.db'}") as history:
        with pytest.raises(error) as info:
            history.record(model, version, ["a", "b"], embeddings=False)  # type: ignore[arg-type]
        assert message in str(info.value)
        assert history.store.model_names() == []  # nothing stored
