"""`collapse-watch compare`, the release gate, as a pipeline runs it (a real subprocess, real outputs).

Files: ``tests/data/series_v*.jsonl`` (SmolLM2 at temperatures 1.0 -> 0.2) and ``control_b.jsonl``
(an independent sample at 1.0); ``collector/demo_data`` (SmolLM2 fine-tuned on its own outputs,
see docs/self_training.md). Sides are files or MODEL@VERSION from a database filled by
``score --store``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from collector.vocabulary import EXIT_CODES
from tests.cli_process import cli

DATA = Path(__file__).parent / "data"
DEMO = Path(__file__).resolve().parents[1] / "collector" / "demo_data"


def compare_json(*args: str) -> tuple[int, dict]:
    proc = cli("compare", *args, "--json")
    assert proc.returncode in EXIT_CODES.values(), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def write_version(src: Path, version: str, dest: Path, transform=None) -> Path:
    """The rows of one version of a series file (optionally transformed) as their own JSONL file."""
    rows = [json.loads(line) for line in src.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [r for r in rows if r["version"] == version]
    assert rows, f"no rows of {version} in {src}"
    with dest.open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(transform(r) if transform else r) + "\n")
    return dest


def test_exit_codes_are_the_documented_ones() -> None:
    assert EXIT_CODES == {"ok": 0, "collapse_suspected": 1, "watch": 3, "inconclusive": 4}


def test_independent_sample_passes_the_gate() -> None:
    code, doc = compare_json(str(DATA / "series_v1.jsonl"), str(DATA / "control_b.jsonl"), "--no-embeddings")
    assert (code, doc["verdict"]) == (0, "ok")
    assert doc["n_shared_prompts"] == 16
    rows = {(r["metric"], r["scope"]) for r in doc["metrics"]}
    assert ("distinct_2", "within") in rows and ("distinct_2", "across") in rows
    assert not any(r["significant_decline"] for r in doc["metrics"] if r["family"] == "lexical")


def test_lexical_only_gate_can_fail() -> None:
    """Without the embedding family the lexical family alone must agree strongly (p < 0.01); a
    temperature drop 1.0 -> 0.2 does, so the lexical-only gate fails (1) rather than saying watch."""
    code, doc = compare_json(str(DATA / "series_v1.jsonl"), str(DATA / "series_v4.jsonl"), "--no-embeddings")
    assert (code, doc["verdict"]) == (1, "collapse_suspected")
    assert "lexical-only verdict" in doc["reasons"][0]
    d2 = next(r for r in doc["metrics"] if (r["metric"], r["scope"]) == ("distinct_2", "within"))
    assert d2["significant_decline"] and d2["diversity_change_ci"][1] < 0
    assert any("distinct_2" in reason for reason in doc["reasons"])


def test_a_file_only_gate_imports_no_store_database_or_model_code() -> None:
    """`compare`/`score --no-embeddings` of files: no assessment, store, SQLAlchemy, API or torch
    (issue #25: importing them was ~0.4 s of a 2 s lexical-only compare)."""
    code = (
        "import sys\n"
        "from collector.cli.app import main\n"
        "sys.argv = ['collapse-watch', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = ('sqlalchemy', 'collector.store', 'collector.assessment', 'collector.api', 'torch')\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith(heavy))), file=sys.stderr)\n"
    )
    a, b = str(DATA / "series_v1.jsonl"), str(DATA / "control_b.jsonl")
    for args in (["compare", a, b], ["score", a]):
        proc = subprocess.run(
            [sys.executable, "-c", code, *args, "--no-embeddings", "--json"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert json.loads(proc.stdout), proc.stderr
        assert proc.stderr.strip().splitlines()[-1:] in ([], [""]), f"{args[0]} imports {proc.stderr}"


def test_model_at_version_reads_the_database_and_agrees_with_the_files(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    for version in ("v1", "v4"):
        proc = cli(
            "score",
            str(DATA / f"series_{version}.jsonl"),
            "--store",
            "--no-embeddings",
            "--model",
            "bot",
            "--version",
            version,
            "--database-url",
            url,
        )
        assert proc.returncode == 0, proc.stderr
    code_db, from_db = compare_json("bot@v1", "bot@v4", "--no-embeddings", "--database-url", url)
    code_files, from_files = compare_json(
        str(DATA / "series_v1.jsonl"), str(DATA / "series_v4.jsonl"), "--no-embeddings"
    )
    assert code_db == code_files
    assert from_db["verdict"] == from_files["verdict"]
    assert (from_db["baseline"], from_db["candidate"]) == ("bot@v1", "bot@v4")
    assert from_db["metrics"] == from_files["metrics"]  # same samples, same seed: the same numbers

    # an unknown version or model is a usage error that names what is missing
    missing = cli("compare", "bot@v1", "bot@v9", "--no-embeddings", "--database-url", url)
    assert missing.returncode == 2
    assert "v9" in missing.stderr and "bot" in missing.stderr
    nobody = cli("compare", "nobody@v1", "bot@v4", "--no-embeddings", "--database-url", url)
    assert nobody.returncode == 2 and "nobody" in nobody.stderr


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    proc = cli("compare", str(tmp_path / "absent.jsonl"), str(DATA / "series_v1.jsonl"), "--no-embeddings")
    assert proc.returncode == 2
    assert "absent.jsonl" in proc.stderr


def test_no_shared_prompt_is_a_usage_error(tmp_path: Path) -> None:
    other = tmp_path / "other.jsonl"
    other.write_text(
        json.dumps({"prompt_id": "zzz", "prompt": "Hi?", "output": "a b c d"}) + "\n", encoding="utf-8"
    )
    proc = cli("compare", str(DATA / "series_v1.jsonl"), str(other), "--no-embeddings")
    assert proc.returncode == 2
    assert "share no prompt" in proc.stderr


@pytest.mark.slow
def test_self_trained_model_fails_the_gate_with_both_families(tmp_path: Path) -> None:
    """Six generations of training on its own outputs: collapse_suspected (exit 1), with reasons."""
    series = DEMO / "selftrain_series.jsonl"
    base = write_version(series, "v1", tmp_path / "v1.jsonl")
    last = write_version(series, "v7", tmp_path / "v7.jsonl")
    code, doc = compare_json(str(base), str(last))
    assert (code, doc["verdict"]) == (1, "collapse_suspected")
    declined = {r["metric"] for r in doc["metrics"] if r["scope"] == "within" and r["significant_decline"]}
    assert {"distinct_2", "self_bleu"} <= declined
    assert declined & {"embedding_mean_distance", "vendi_score", "embedding_nn_distance"}
    assert "lexical" in doc["reasons"][0] and "embedding" in doc["reasons"][0]


@pytest.mark.slow
def test_shorter_outputs_alone_are_not_collapse(tmp_path: Path) -> None:
    """Real outputs of the unchanged base model, cut to their first half: shorter, not less diverse."""

    def halve(row: dict) -> dict:
        words = row["output"].split()
        return row | {"output": " ".join(words[: max(1, len(words) // 2)])}

    control = DEMO / "control_series.jsonl"
    base = write_version(control, "v1", tmp_path / "base.jsonl")
    short = write_version(control, "v2", tmp_path / "short.jsonl", transform=halve)
    code, doc = compare_json(str(base), str(short))
    assert doc["verdict"] != "collapse_suspected" and code != 1, doc["reasons"]
    length = next(r for r in doc["metrics"] if (r["metric"], r["scope"]) == ("length_mean", "within"))
    assert length["relative_change"] < -0.4  # the change really was in length


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ["--model", "bot", "--version", "v" * 201],
            ["version", "--version", "201 characters", "at most 200"],
        ),
        (
            ["--model", "bot", "--version", "v1\x1b[31m"],
            ["version", "--version", "control or bidi character U+001B"],
        ),
        (["--model", "m" * 201, "--version", "v1"], ["model", "--model", "at most 200"]),
    ],
    ids=["version too long", "control character", "model too long"],
)
def test_score_store_refuses_a_label_the_store_cannot_take_before_writing(
    tmp_path: Path, args: list[str], says: list[str]
) -> None:
    """The config's label rule (check_label) applies to `score --store`: exit 2 naming the label,
    where it came from and the limit, and nothing is written (not even a database file)."""
    db = tmp_path / "h.db"
    proc = cli(
        "score",
        str(DATA / "series_v1.jsonl"),
        "--store",
        "--no-embeddings",
        *args,
        "--database-url",
        f"sqlite:///{db}",
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = " ".join(proc.stderr.split())
    assert err.startswith("error: cannot store ") and "Traceback" not in proc.stderr
    for text in says:
        assert text in err, err
    assert not db.exists()


def test_score_store_checks_the_files_own_version_label(tmp_path: Path) -> None:
    data = tmp_path / "outputs.jsonl"
    data.write_text(
        "".join(
            json.dumps({"prompt": "p", "output": f"o{i}", "model": "bot", "version": "v\x071"}) + "\n"
            for i in range(4)
        )
    )
    db = tmp_path / "h.db"
    proc = cli("score", str(data), "--store", "--no-embeddings", "--database-url", f"sqlite:///{db}")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "the file's 'version' field" in proc.stderr and "control or bidi character U+0007" in proc.stderr
    assert not db.exists()


def test_score_store_refuses_a_version_already_recorded(tmp_path: Path) -> None:
    """`score --store` twice with the same model@version: the second exits 2 naming a free label
    and stores nothing (it used to store a second run and twice the samples), as History.record does."""
    from sqlalchemy import create_engine, text

    db = tmp_path / "h.db"
    args = (
        "--store",
        "--no-embeddings",
        "--model",
        "dup",
        "--version",
        "v1",
        "--database-url",
        f"sqlite:///{db}",
    )
    first = cli("score", str(DATA / "series_v1.jsonl"), *args)
    assert first.returncode == 0, first.stdout + first.stderr
    second = cli("score", str(DATA / "series_v2.jsonl"), *args)
    assert second.returncode == 2, second.stdout + second.stderr
    err = " ".join(second.stderr.split())
    assert "dup@v1 is already recorded in the history" in err and "'v1-2'" in err, err
    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        runs = conn.scalar(text("SELECT count(*) FROM runs"))
        samples = conn.scalar(text("SELECT count(*) FROM samples"))
    engine.dispose()
    n_lines = len((DATA / "series_v1.jsonl").read_text().splitlines())
    assert (runs, samples) == (1, n_lines)


def test_a_stored_side_with_two_readings_of_its_at_sign_is_refused_as_ambiguous(tmp_path: Path) -> None:
    """Model names and versions may hold '@': `bot@prod@v2` names bot@prod/v2 and bot/prod@v2 when both
    are stored, so compare refuses it (it used to pick one silently); a reading that is unique works."""
    import collapse_watch

    url = f"sqlite:///{tmp_path / 'h.db'}"
    outputs = [f"answer number {i} about something" for i in range(8)]
    with collapse_watch.History(url) as history:
        for model, version in (("bot@prod", "v1"), ("bot@prod", "v2"), ("bot", "prod@v2")):
            history.record(model, version, outputs, prompts=["p1", "p2"] * 4, embeddings=False)
    ambiguous = cli("compare", "bot@prod@v1", "bot@prod@v2", "--no-embeddings", "--database-url", url)
    assert ambiguous.returncode == 2, ambiguous.stdout + ambiguous.stderr
    err = " ".join(ambiguous.stderr.split())
    assert "bot@prod@v2 is ambiguous" in err and "model 'bot' version 'prod@v2'" in err, err
    unique = cli("compare", "bot@prod@v1", "bot@prod@v1", "--no-embeddings", "--database-url", url)
    assert unique.returncode != 2 and "bot@prod@v1 vs bot@prod@v1" in unique.stdout, unique.stderr


def test_second_compare_of_the_same_files_embeds_nothing_and_loads_no_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The local vector cache (issue #25): the second gate on the same files reads every vector back,
    loads no model, and answers exactly as the first; --no-cache answers the same without a file."""
    from sqlalchemy import create_engine, text
    from typer.testing import CliRunner

    from collector import embeddings
    from collector.cli import app

    # compare sets OPENBLAS_NUM_THREADS when unset; in this process it must not outlive the test
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", os.environ.get("OPENBLAS_NUM_THREADS", "1"))
    cache = tmp_path / "cache"
    sides = (str(DATA / "series_v1.jsonl"), str(DATA / "series_v4.jsonl"))
    env = {"COLLAPSE_WATCH_CACHE_DIR": str(cache)}
    first = cli("compare", *sides, "--json", env=env)
    assert first.returncode == 1, first.stderr  # collapse suspected: 1.0 -> 0.2
    engine = create_engine(f"sqlite:///{cache / 'vectors.sqlite'}")
    with engine.connect() as conn:
        n_texts = len(
            {json.loads(line)["output"] for s in sides for line in Path(s).read_text().splitlines()}
        )
        assert conn.scalar(text("SELECT count(*) FROM embedding_vectors")) == n_texts
        labels = conn.execute(text("SELECT label FROM embedding_identities")).scalars().all()
    engine.dispose()
    assert labels == [f"{default_backend_kind()}:all-MiniLM-L6-v2:384:l2"]
    second = cli("compare", *sides, "--json", env=env)
    assert (second.returncode, second.stdout) == (first.returncode, first.stdout)
    # ... reading the vectors with sqlite3: no SQLAlchemy, store API, remote client or torch
    code = (
        "import sys\n"
        "from collector.cli.app import main\n"
        "sys.argv = ['collapse-watch', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = ('sqlalchemy', 'collector.store.api', 'collector.service', 'httpx', 'torch')\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith(heavy))), file=sys.stderr)\n"
    )
    warm = subprocess.run(
        [sys.executable, "-c", code, "compare", *sides, "--json"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **env},
    )
    assert warm.stdout == first.stdout, warm.stderr
    assert warm.stderr.strip().splitlines()[-1:] in ([], [""]), f"a warm compare imports {warm.stderr}"

    # in this process, with no model loaded: the third run must load none and embed none
    monkeypatch.setattr(embeddings, "_MODELS", {})
    loads = embeddings.MODEL_LOADS
    res = CliRunner().invoke(app, ["compare", *sides], env={**env, "COLUMNS": "200", "HF_HUB_OFFLINE": "1"})
    assert res.exit_code == 1, res.output
    assert embeddings._MODELS == {}
    assert embeddings.MODEL_LOADS - loads == 0
    assert res.stderr.count("64 outputs, 0 embedded with") == 2, res.stderr

    off = tmp_path / "off"
    nocache = cli("compare", *sides, "--json", "--no-cache", env={"COLLAPSE_WATCH_CACHE_DIR": str(off)})
    assert (nocache.returncode, nocache.stdout) == (first.returncode, first.stdout)
    assert not (off / "vectors.sqlite").exists()


def default_backend_kind() -> str:
    """The identity backend of the default local embedder on this machine (e.g. local-openvino-bf16)."""
    from collector.embeddings import Embedder

    return Embedder().backend_kind


def test_unusable_cache_warns_and_the_gate_still_answers(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "vectors.sqlite").write_bytes(b"not a database, " * 64)
    sides = (str(DATA / "series_v1.jsonl"), str(DATA / "control_b.jsonl"))
    proc = cli("compare", *sides, "--metrics", "vendi_score", env={"COLLAPSE_WATCH_CACHE_DIR": str(cache)})
    assert proc.returncode in (0, 4), proc.stderr
    assert f"vector cache {cache / 'vectors.sqlite'} unusable" in proc.stderr
    assert (cache / "vectors.sqlite").read_bytes() == b"not a database, " * 64  # left as it was
    bad = cli("compare", *sides, "--metrics", "vendi_score", env={"COLLAPSE_WATCH_CACHE_MAX_VECTORS": "lots"})
    assert bad.returncode == 2 and "COLLAPSE_WATCH_CACHE_MAX_VECTORS" in bad.stderr
