"""Text from outside is data everywhere (issue #22): a property test with Hypothesis.

Hostile strings (rich markup such as ``[/]`` and ``[bold]``, quotes, backslashes, newlines, NUL, lone
surrogates, emoji, right-to-left marks, 10 kB) are driven through every way text enters: a log
line (prompt, output, prompt id, version), a SQL row, an Alertmanager notification (labels,
annotations, an object where text was expected) and a config file, and then through ``collect``,
``history``, ``compare``, ``report`` and ``/metrics``.  The properties: no command raises (the CLI
runs in-process through Typer's runner here, so an exception is seen, not just a traceback), each
exits with a documented code, the receiver answers 200 for every notification, and the exposition
parses with prometheus_client's own parser.  ``test_hostile_text_through_the_real_cli`` runs the
fixed corpus through real processes and ``promtool check metrics``.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from collector.cli import app
from collector.readout.exposition import render
from collector.readout.server import serve_store_metrics, store_registry
from collector.store.api import Store
from collector.store.migrate import upgrade
from tests.cli_process import cli

CORPUS = [
    "v2[/]",
    "[/]",
    "[bold red]boom[/bold red]",
    "[link=https://evil.example]x[/link]",
    '"quoted" \\ back\\slash',
    "line\nbreak\r\nand\ttab",
    "nul\x00inside",
    "lone \ud800 surrogate \udfff",
    "emoji 🔥🧪 and \u202eRTL\u202c",
    "%s %d {0} {model}",
    "x" * 10_000,
    " ",
]
HOSTILE = st.one_of(
    st.sampled_from(CORPUS),
    st.text(st.characters(exclude_categories=()), min_size=1, max_size=40),
    st.text(st.sampled_from("[]/\\\"'\n\x00\ud800🔥=:b"), min_size=1, max_size=20),
)
LEXICAL = ["distinct_1", "distinct_2"]
DOCUMENTED = {
    "collect": {0, 1},
    "history": {0, 2},
    "compare": {0, 1, 2, 3, 4},
    "report": {0, 2},
    "config check": {0, 2},
}


def write_log(path: Path, versions: list[str], texts: list[str]) -> None:
    lines = []
    for i in range(12):
        t = texts[i % len(texts)]
        lines.append(
            json.dumps(
                {
                    "prompt": f"prompt {i % 3} {t}",
                    "output": f"an answer {i} about {t} with words {i * 7}",
                    "prompt_id": f"{t[:50]}-{i % 3}",
                    "version": versions[i // 6],
                }
            )
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")  # ensure_ascii: surrogates as \\ud800


def write_sql_source(path: Path, texts: list[str]) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE logged (id INTEGER PRIMARY KEY, prompt TEXT, output TEXT, version TEXT)")
    for i in range(8):
        t = texts[i % len(texts)].encode("utf-8", "surrogatepass").decode("utf-8", "replace")
        conn.execute(
            "INSERT INTO logged VALUES (?, ?, ?, ?)", (i + 1, f"q{i % 2} {t}", f"row answer {i} {t}", t[:300])
        )
    conn.commit()
    conn.close()


def notification(texts: list[str]) -> dict[str, Any]:
    t = texts[0]
    return {
        "version": "4",
        "receiver": t,
        "status": "firing",
        "groupKey": t,
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": t, "model": "bot", "version": texts[-1], "severity": t, t[:100]: t},
                "annotations": {"summary": t, "description": {"nested": [t, {"deeper": t}]}},
                "startsAt": t,
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": t,
            }
        ],
    }


def post(url: str, body: dict[str, Any]) -> int:
    data = json.dumps(body).encode()  # ensure_ascii: lone surrogates travel as \\ud800 escapes
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=20) as resp:
        return resp.status


def write_config(work: Path, db_url: str) -> Path:
    doc = {
        "database_url": db_url,
        "models": [
            {"name": "bot", "source": {"type": "jsonl", "path": str(work / "app.log")}, "metrics": LEXICAL},
            {
                "name": "sqlbot",
                "source": {
                    "type": "sql",
                    "url": f"sqlite:///{work / 'src.db'}",
                    "query": "SELECT id, prompt, output, version FROM logged",
                    "watermark_column": "id",
                    "version_column": "version",
                },
                "metrics": LEXICAL,
            },
        ],
    }
    path = work / "c.yml"
    path.write_text(yaml.safe_dump(doc))
    return path


def hostile_config(work: Path, texts: list[str]) -> Path:
    """A config whose keys and values are the hostile strings (a surrogate makes it non-UTF-8)."""
    doc = {
        texts[0]: texts[-1],
        "models": [{"name": texts[0], "source": {"type": "jsonl", "path": texts[-1]}, "version": texts[0]}],
    }
    path = work / "hostile.yml"
    path.write_bytes(yaml.safe_dump(doc, allow_unicode=True).encode("utf-8", "surrogatepass"))
    return path


def invoke(*args: str) -> Any:
    res = CliRunner().invoke(app, list(args), env={"COLUMNS": "200", "HF_HUB_OFFLINE": "1"})
    # in-process an exception is seen directly (tracebacks on stderr are checked with real processes
    # below: logging's handler keeps the stream of the first in-process invocation)
    assert res.exception is None or isinstance(res.exception, SystemExit), (args, repr(res.exception))
    return res


def exercise(work: Path, texts: list[str]) -> None:
    work.mkdir(parents=True, exist_ok=True)
    db_url = f"sqlite:///{work / 'store.db'}"
    versions = [texts[0], texts[-1] if texts[-1] != texts[0] else texts[-1] + "-2"]
    write_log(work / "app.log", versions, texts)
    write_sql_source(work / "src.db", texts)
    cfg = write_config(work, db_url)
    upgrade(db_url)
    store = Store(db_url)

    server = serve_store_metrics(store, host="127.0.0.1", port=0)
    try:
        assert post(f"http://127.0.0.1:{server.server_port}/alerts", notification(texts)) == 200
    finally:
        server.shutdown()
        server.server_close()

    res = invoke("collect", "-c", str(cfg))
    assert res.exit_code in DOCUMENTED["collect"], res.output
    for model in ("bot", "sqlbot", texts[0]):
        assert invoke("history", model, "--database-url", db_url).exit_code in DOCUMENTED["history"]
        out = work / "report"
        assert (
            invoke("report", model, "--out", str(out), "--database-url", db_url).exit_code
            in DOCUMENTED["report"]
        )
    a, b = (f"bot@{v}" for v in versions)
    res = invoke("compare", a, b, "--no-embeddings", "--metrics", "distinct_1", "--database-url", db_url)
    assert res.exit_code in DOCUMENTED["compare"], res.output
    res = invoke("config", "check", str(hostile_config(work, texts)))
    assert res.exit_code == 2

    body = render([store_registry(store)]).decode("utf-8")
    families = {f.name for f in text_string_to_metric_families(body)}
    assert "collapse_watch_up" in families
    store.engine.dispose()


@settings(
    max_examples=12,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # shrinking a CLI run takes minutes
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(texts=st.lists(HOSTILE, min_size=1, max_size=3))
def test_hostile_text_never_breaks_a_command(
    tmp_path_factory: pytest.TempPathFactory, texts: list[str]
) -> None:
    exercise(tmp_path_factory.mktemp("hostile"), texts)


def test_hostile_text_through_the_real_cli(tmp_path: Path) -> None:
    """The fixed corpus through real processes: no traceback on stderr, and promtool accepts /metrics."""
    texts = CORPUS
    work = tmp_path
    db_url = f"sqlite:///{work / 'store.db'}"
    write_log(work / "app.log", ["v2[/]", "[bold]v3"], texts)
    write_sql_source(work / "src.db", texts)
    cfg = write_config(work, db_url)
    upgrade(db_url)
    store = Store(db_url)
    server = serve_store_metrics(store, host="127.0.0.1", port=0)
    try:
        assert post(f"http://127.0.0.1:{server.server_port}/alerts", notification(texts)) == 200
        runs = [
            ("collect", cli("collect", "-c", str(cfg))),
            ("history", cli("history", "bot", "--database-url", db_url)),
            ("history", cli("history", "sqlbot", "--database-url", db_url)),
            ("report", cli("report", "bot", "--out", str(work / "r"), "--database-url", db_url)),
            (
                "compare",
                cli(
                    "compare",
                    "bot@v2[/]",
                    "bot@[bold]v3",
                    "--no-embeddings",
                    "--metrics",
                    "distinct_1",
                    "--database-url",
                    db_url,
                ),
            ),
            ("config check", cli("config", "check", str(hostile_config(work, texts)))),
        ]
        for name, res in runs:
            assert "Traceback" not in res.stderr, (name, res.stderr[-2000:])
            assert res.returncode in DOCUMENTED[name], (
                name,
                res.returncode,
                res.stdout[-1000:],
                res.stderr[-1000:],
            )
        history = cli("history", "bot", "--database-url", db_url, env={"COLUMNS": "400"})
        assert "v2[/]" in history.stdout and "[bold]v3" in history.stdout  # shown as text, not as markup
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics", timeout=20) as resp:
            body = resp.read()
    finally:
        server.shutdown()
        server.server_close()
    assert 'version="v2[/]"' in body.decode()
    list(text_string_to_metric_families(body.decode()))
    promtool = shutil.which("promtool")
    if promtool:
        check = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=60)
        # promtool lints names/help too; only a parse error would print "error while linting"
        assert b"error while linting" not in check.stdout + check.stderr, check.stdout + check.stderr


ESCAPES = "\x1b[31mX\x1b[0m \x1b]0;pwned\x07 \x1b]52;c;ZXZpbA==\x07 \r\x9b2J"


def no_raw_controls(text: str) -> None:
    """No control sequence from the data reached the output (rich's own colours may)."""
    for raw in ("\x1b[31mX", "\x1b]", "\x07", "\r", "\x9b"):
        assert raw not in text, (raw, text[-400:])


def test_terminal_escapes_in_outside_text_are_shown_never_sent(tmp_path: Path) -> None:
    """An alert posted with a valid token whose summary carries SGR, OSC title and OSC 52 clipboard
    sequences, BEL and CR: the real `history` prints them as visible text, on a colour terminal
    too; a 10,000-character summary takes a few lines, not a screenful. An error naming a file
    with escapes in its name is just as inert."""
    from store_helpers import full_run

    from collector.readout.server import serve_store_metrics

    url = f"sqlite:///{tmp_path / 'h.db'}"
    upgrade(url)
    store = Store(url)
    full_run(store, "bot", "v1", 0.8)
    server = serve_store_metrics(store, host="127.0.0.1", port=0, alerts_token="s3cret-token")
    try:
        for summary in (ESCAPES, "long " + "y" * 10_000):
            body = {
                "version": "4",
                "status": "firing",
                "receiver": "team",
                "alerts": [
                    {
                        "status": "firing",
                        "labels": {"alertname": "Hostile", "model": "bot", "version": "v1"},
                        "annotations": {"summary": summary},
                        "startsAt": "2026-11-29T10:00:00Z",
                        "endsAt": "0001-01-01T00:00:00Z",
                        "fingerprint": f"f{len(summary)}",
                    }
                ],
            }
            req = urllib.request.Request(
                server.url("/alerts"),
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json", "Authorization": "Bearer s3cret-token"},
            )
            with urllib.request.urlopen(req, timeout=10) as res:
                assert res.status == 200
    finally:
        server.shutdown()
        server.server_close()
    for env in ({"COLUMNS": "200"}, {"COLUMNS": "200", "FORCE_COLOR": "1", "TERM": "xterm-256color"}):
        res = cli("history", "bot", "--database-url", url, env=env)
        assert res.returncode == 0, res.stderr
        no_raw_controls(res.stdout)
        assert "\\x1b]0;pwned\\x07" in res.stdout and "\\x1b]52;c;ZXZpbA==\\x07" in res.stdout
        long_lines = [line for line in res.stdout.splitlines() if "y" * 40 in line]
        assert 1 <= len(long_lines) <= 3, len(long_lines)  # cut, not 111 lines
        assert "characters)" in res.stdout
    from collector.store.alerts import AlertHistory

    stored = [e.summary or "" for e in AlertHistory(store.engine).recent("bot", limit=10)]
    assert any("pwned" in s for s in stored)  # the database keeps the text; only the terminal cuts it
    assert any(len(s) >= 9_000 for s in stored)
    res = cli(
        "compare",
        str(tmp_path / "a\x1b]0;pwned\x07.jsonl"),
        str(tmp_path / "b.jsonl"),
        env={"COLUMNS": "200"},
    )
    assert res.returncode == 2
    no_raw_controls(res.stdout + res.stderr)
