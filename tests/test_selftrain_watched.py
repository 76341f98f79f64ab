"""The real SmolLM2 self-training run that ``CollapseWatchCallback`` watched on CPU
(``tests/data/selftrain_watched``, made by ``scripts/self_train.py --watch-db``): the verdicts the
callback acted on are the ones offline ``compare`` gives on the same outputs, and replaying the
outputs through ``History`` (the callback's own recording path) reproduces them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import collapse_watch
from collector.inputs import read_records
from tests.cli_process import cli

DATA = Path(__file__).parent / "data" / "selftrain_watched"
SERIES = DATA / "series.jsonl"
VERDICTS = json.loads((DATA / "series.verdicts.json").read_text(encoding="utf-8"))


def version_outputs() -> dict[str, dict[str, list[str]]]:
    out: dict[str, dict[str, list[str]]] = {}
    for r in read_records(SERIES):
        out.setdefault(r.version or "", {}).setdefault(r.sample.prompt, []).append(r.sample.output)
    return out


def test_the_shipped_run_stopped_at_the_first_collapse_suspected_generation() -> None:
    statuses = [v["status"] for v in VERDICTS]
    assert statuses[0] == "ok" and statuses[-1] == "collapse_suspected"
    assert "collapse_suspected" not in statuses[:-1]  # it stopped at the first one
    assert list(version_outputs()) == [v["version"] for v in VERDICTS]


@pytest.mark.slow
def test_offline_compare_and_a_replay_give_the_callbacks_verdicts(tmp_path: Path) -> None:
    versions = version_outputs()
    base = VERDICTS[0]["version"]
    with collapse_watch.History(f"sqlite:///{tmp_path / 'h.db'}") as history:
        for v in VERDICTS:
            replayed = history.record("replay", v["version"], versions[v["version"]], seed=0)
            assert replayed.verdict.status == v["status"], v["version"]
            if v["version"] != base:
                offline = collapse_watch.compare(versions[base], versions[v["version"]], seed=0)
                assert offline.status == v["status"], v["version"]
                assert offline.declined == replayed.verdict.declined


@pytest.mark.slow
def test_the_gate_fails_the_last_generation(tmp_path: Path) -> None:
    for v in (VERDICTS[0], VERDICTS[-1]):
        rows = [
            line for line in SERIES.read_text(encoding="utf-8").splitlines() if f'"{v["version"]}"' in line
        ]
        (tmp_path / f"{v['version']}.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    proc = cli(
        "compare",
        str(tmp_path / f"{VERDICTS[0]['version']}.jsonl"),
        str(tmp_path / f"{VERDICTS[-1]['version']}.jsonl"),
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
