"""The CLI as a new user meets it: --version, completion, read-only commands that refuse a missing
database, `db downgrade -1`, a Grafana URL without a scheme, `collect` against a dead endpoint (fails
fast, progress off a terminal) and `history` with changes and trends.  Real subprocesses."""

from __future__ import annotations

import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli_process import cli

DATA = Path(__file__).parent / "data"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket is closed


def test_version_and_completion() -> None:
    from collector import __version__

    proc = cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"collapse-watch {__version__}"
    # --show-completion is a flag that detects the shell from the process tree: run it under bash, so
    # the test does not depend on whether a shell is among the test runner's own ancestors
    comp = subprocess.run(
        ["bash", "-c", f"{shlex.quote(sys.executable)} -m collector --show-completion; true"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert comp.returncode == 0 and "complete -o default -F " in comp.stdout, comp.stdout + comp.stderr


def test_read_only_commands_refuse_a_missing_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'typo.db'}"
    for args in (
        ("history", "bot"),
        ("report", "bot", "--out", str(tmp_path / "r")),
        ("serve-metrics", "--port", "0"),
        ("compare", "bot@v1", "bot@v2", "--no-embeddings"),
    ):
        proc = cli(*args, "--database-url", url)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "typo.db" in proc.stderr and "no database" in proc.stderr, args
    assert not (tmp_path / "typo.db").exists()


def test_db_downgrade_minus_one_as_its_help_says(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    assert cli("db", "upgrade", "--database-url", url).returncode == 0
    head = cli("db", "current", "--database-url", url).stdout.strip()
    down = cli("db", "downgrade", "-1", "--database-url", url)
    assert down.returncode == 0, down.stderr
    assert cli("db", "current", "--database-url", url).stdout.strip() not in (head, "none")


def test_grafana_url_without_scheme_gets_one(tmp_path: Path) -> None:
    port = closed_port()
    proc = cli("dashboards", "push", "--grafana-url", f"127.0.0.1:{port}", env={"GRAFANA_TOKEN": "t"})
    assert proc.returncode == 1  # nothing listens: a connection error, named with the real URL
    assert f"http://127.0.0.1:{port}" in proc.stderr and "None" not in proc.stderr
    bad = cli("dashboards", "push", "--grafana-url", "ftp://x", env={"GRAFANA_TOKEN": "t"})
    assert bad.returncode == 2 and "http(s)://" in bad.stderr


def test_collect_against_a_dead_endpoint_fails_fast_with_progress(tmp_path: Path) -> None:
    config = tmp_path / "c.yml"
    config.write_text(
        f"""database_url: sqlite:///{tmp_path / "c.db"}
models:
  - name: bot
    source: {{type: openai, base_url: "http://127.0.0.1:{closed_port()}/v1", model: m, max_retries: 2}}
    version: v1
    samples_per_prompt: 4
""",
        encoding="utf-8",
    )
    t0 = time.monotonic()
    proc = cli("collect", "--config", str(config), env={"COLUMNS": "300"})
    took = time.monotonic() - t0
    assert proc.returncode == 1, proc.stderr
    assert "gave up after 8 failed requests in a row" in proc.stdout
    assert "sampling bot:" in proc.stderr  # progress printed off a terminal
    assert took < 60  # 160 requests x 3 attempts would take minutes


@pytest.mark.slow
def test_history_shows_change_vs_baseline_and_trend(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    for v in ("v1", "v2", "v3", "v4"):
        proc = cli(
            "score",
            str(DATA / f"series_{v}.jsonl"),
            "--store",
            "--no-embeddings",
            "--metrics",
            "distinct_2,self_bleu,compression_ratio",
            "--model",
            "bot",
            "--version",
            v,
            "--database-url",
            url,
        )
        assert proc.returncode == 0, proc.stderr
    hist = cli("history", "bot", "--database-url", url)
    assert hist.returncode == 0, hist.stderr
    lines = {line.split()[0]: line for line in hist.stdout.splitlines() if line.strip()}
    assert "v1 (baseline)" in hist.stdout and "trend" in hist.stdout
    assert " pp)" in lines["distinct_2"] and "(−" in lines["distinct_2"]  # fell, in points
    assert "(×" in lines["compression_ratio"]  # an unbounded metric: a factor
    assert "%/version" in lines["distinct_2"]  # 4 versions: a trend
    assert "compression_ra…" not in hist.stdout
