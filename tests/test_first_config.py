"""Right on the first config (issue #22), with the real CLI in subprocesses, on SQLite and PostgreSQL.

* a ``jsonl`` model with ``version:`` in the config reading lines without a version collects them
  under that version (and ``fields: {version: null}`` means "use the config's");
* ``config check`` names what ``collect``/``run`` would fail on: an empty probe file, an over-long
  version label, an unset or malformed key variable (the embedding server's too), an address that
  is not this machine's, and with ``--connect`` a SQL table that does not exist or a column of the
  wrong type;
* ``run`` refuses such a config with exit 2 before it creates the database;
* a line's own version wins over the config's; a line with neither is quarantined (no invented
  ``unknown``); a control or bidi character in a version or model label quarantines the line;
* ``config check`` names web-config, key and embedding-model mistakes and warns on an open listener.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import create_engine, text

from collector.store.api import Store
from tests.test_faults import cli, jsonl_model, migrated, openai_model, probes_file, q, write_config

SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def unversioned_log(path: Path, n: int = 6, **extra: Any) -> Path:
    path.write_text(
        "".join(
            json.dumps({"prompt": f"p{i % 2}", "output": f"answer number {i} here", **extra}) + "\n"
            for i in range(n)
        )
    )
    return path


def test_config_version_applies_to_lines_without_one(db_url: str, tmp_path: Path) -> None:
    log = unversioned_log(tmp_path / "app.log")
    cfg = write_config(tmp_path / "c.yml", db_url, [jsonl_model("bot", log, version="v1")])
    assert cli("config", "check", str(cfg)).returncode == 0
    res = cli("collect", "-c", str(cfg))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "AssertionError" not in res.stdout + res.stderr and "Traceback" not in res.stderr
    rows = q(
        Store(db_url), "SELECT v.label, r.status FROM runs r JOIN model_versions v ON v.id = r.version_id"
    )
    assert rows == [{"label": "v1", "status": "succeeded"}]
    assert q(Store(db_url), "SELECT count(*) AS n FROM samples")[0]["n"] == 6


@SQLITE
def test_fields_version_null_uses_the_config_version(db_url: str, tmp_path: Path) -> None:
    log = unversioned_log(tmp_path / "app.log", version="from-the-line")
    model = jsonl_model("bot", log, version="v7")
    model["source"]["fields"] = {"version": None}
    cfg = write_config(tmp_path / "c.yml", db_url, [model])
    res = cli("collect", "-c", str(cfg))
    assert res.returncode == 0, res.stdout + res.stderr
    assert [r["label"] for r in q(Store(db_url), "SELECT label FROM model_versions")] == ["v7"]


@SQLITE
def test_config_check_names_what_collect_and_run_would_fail_on(db_url: str, tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    log = unversioned_log(tmp_path / "app.log")
    models = [
        openai_model("empty-probes", "http://127.0.0.1:9/v1", empty),
        jsonl_model("long-label", log, version="v" * 201),
        openai_model(
            "no-key", "http://127.0.0.1:9/v1", probes_file(tmp_path), api_key_env="CW_TEST_UNSET_KEY"
        ),
    ]
    cfg = write_config(
        tmp_path / "c.yml",
        db_url,
        models,
        embedding_server={"base_url": "http://127.0.0.1:9/v1", "model": "e", "api_key_env": "CW_TEST_SPLIT"},
    )
    env = {"CW_TEST_SPLIT": "sk-abc def\n"}
    res = cli("config", "check", str(cfg), env=env)
    assert res.returncode == 2
    err = res.stderr
    assert "models[1].version" in err and "at most 200 characters" in err  # found by validation first
    cfg.write_text(cfg.read_text().replace("v" * 201, "v1"))
    res = cli("config", "check", str(cfg), env=env)
    assert res.returncode == 2, res.stdout + res.stderr
    err = " ".join(res.stderr.split())
    assert "models[0] (empty-probes).probes:" in err and "no probes" in err
    assert "models[2] (no-key).source.api_key_env: environment variable CW_TEST_UNSET_KEY is not set" in err
    assert "embedding_server.api_key_env: environment variable CW_TEST_SPLIT holds whitespace" in err
    assert "sk-abc" not in res.stderr  # the value is never shown
    assert "Traceback" not in res.stderr

    # collect cannot build its embedder: exit 2 naming the variable, no traceback
    res = cli("collect", "-c", str(cfg), "-m", "empty-probes", env=env)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "CW_TEST_SPLIT holds whitespace" in " ".join(res.stderr.split()) and "sk-abc" not in res.stderr

    # collect on the empty probe file: a failed run with the reason, no traceback
    doc = yaml.safe_load(cfg.read_text())
    del doc["embedding_server"]
    cfg.write_text(yaml.safe_dump(doc))
    res = cli("collect", "-c", str(cfg), "-m", "empty-probes")
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert "cannot load the probes" in res.stdout and "no probes" in res.stdout


@pytest.mark.parametrize(
    ("host", "message"),
    [("not a host!", "invalid metrics_host"), ("192.0.2.1", "cannot listen on '192.0.2.1'")],
)
def test_an_address_not_on_this_machine_is_refused_before_the_database_exists(
    tmp_path: Path, host: str, message: str
) -> None:
    db = tmp_path / "never.db"
    log = unversioned_log(tmp_path / "app.log")
    cfg = write_config(tmp_path / "c.yml", f"sqlite:///{db}", [jsonl_model("bot", log, version="v1")])
    cfg.write_text(cfg.read_text().replace("metrics_host: 127.0.0.1", f"metrics_host: '{host}'"))
    check = cli("config", "check", str(cfg))
    assert check.returncode == 2 and message in check.stderr, check.stderr
    res = cli("run", "-c", str(cfg), timeout=60)
    assert res.returncode == 2 and message in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert not db.exists()  # refused before the database was created


@SQLITE
def test_run_refuses_an_unset_key_variable_with_exit_2(db_url: str, tmp_path: Path) -> None:
    db = Path(db_url.removeprefix("sqlite:///"))
    model = openai_model(
        "bot", "http://127.0.0.1:9/v1", probes_file(tmp_path), api_key_env="CW_TEST_UNSET_KEY"
    )
    model["schedule"] = {"every": "1h"}
    cfg = write_config(tmp_path / "c.yml", db_url, [model])
    res = cli("run", "-c", str(cfg), timeout=60)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "CW_TEST_UNSET_KEY is not set" in res.stderr and not db.exists()


def test_config_check_connect_finds_a_missing_table_and_wrong_column_types(
    db_url: str, tmp_path: Path
) -> None:
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE logged (id INTEGER PRIMARY KEY, prompt TEXT, output INTEGER)"))
        conn.execute(text("INSERT INTO logged (id, prompt, output) VALUES (1, 'p', 42)"))
    engine.dispose()

    def sql_model(name: str, query: str) -> dict[str, Any]:
        return {
            "name": name,
            "source": {"type": "sql", "url": db_url, "query": query, "watermark_column": "id"},
            "version": "v1",
        }

    store_db = f"sqlite:///{tmp_path / 'store.db'}"
    cfg = write_config(
        tmp_path / "c.yml",
        store_db,
        [
            sql_model("missing", "SELECT id, prompt, output FROM no_such_table"),
            sql_model("typed", "SELECT id, prompt, output FROM logged"),
            sql_model("unselected", "SELECT id, prompt FROM logged"),
        ],
    )
    assert cli("config", "check", str(cfg)).returncode == 0  # without --connect nothing is opened
    res = cli("config", "check", "--connect", str(cfg))
    assert res.returncode == 2, res.stdout + res.stderr
    err = " ".join(res.stderr.split())
    assert "models[0] (missing).source:" in err and "query failed" in err
    assert "models[1] (typed).source:" in err and "column output" in err and "not text" in err
    assert "models[2] (unselected).source:" in err and "does not select output" in err


@SQLITE
def test_a_migrated_store_still_collects_after_preflight(db_url: str, tmp_path: Path) -> None:
    """The preflight reads nothing it should not: a normal config still collects, twice, once each."""
    migrated(db_url)
    log = unversioned_log(tmp_path / "app.log")
    cfg = write_config(tmp_path / "c.yml", db_url, [jsonl_model("bot", log, version="v1")])
    assert cli("collect", "-c", str(cfg)).returncode == 0
    assert cli("collect", "-c", str(cfg)).returncode == 0
    assert q(Store(db_url), "SELECT count(*) AS n FROM samples")[0]["n"] == 6


def write_lines(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def labels_and_counts(db_url: str) -> dict[str, int]:
    rows = q(
        Store(db_url),
        "SELECT v.label, count(s.id) AS n FROM samples s JOIN runs r ON r.id = s.run_id"
        " JOIN model_versions v ON v.id = r.version_id GROUP BY v.label",
    )
    return {r["label"]: r["n"] for r in rows}


@SQLITE
def test_a_lines_own_version_wins_over_the_configs(db_url: str, tmp_path: Path) -> None:
    """The config's ``version:`` applies only to lines without one (it used to override every line)."""
    log = write_lines(
        tmp_path / "app.log",
        [
            {"prompt": f"p{i % 2}", "output": f"answer {i}", **({"version": "v2"} if i % 3 == 0 else {})}
            for i in range(9)
        ],
    )
    cfg = write_config(tmp_path / "c.yml", db_url, [jsonl_model("bot", log, version="v1")])
    res = cli("collect", "-c", str(cfg))
    assert res.returncode == 0, res.stdout + res.stderr
    assert labels_and_counts(db_url) == {"v1": 6, "v2": 3}
    assert q(Store(db_url), "SELECT count(*) AS n FROM quarantine")[0]["n"] == 0


@SQLITE
def test_a_line_without_a_version_and_no_config_version_is_quarantined(db_url: str, tmp_path: Path) -> None:
    """No ``unknown`` version is invented (it would become the baseline): such a line is quarantined
    with its reason, lines that carry a version are stored, and ``config check`` says so."""
    log = write_lines(
        tmp_path / "app.log",
        [{"prompt": "p", "output": "no version here"}, {"prompt": "p", "output": "one", "version": "v1"}],
    )
    cfg = write_config(tmp_path / "c.yml", db_url, [jsonl_model("bot", log)])
    check = cli("config", "check", str(cfg))
    assert check.returncode == 0, check.stdout + check.stderr  # a warning, not a failure
    assert (
        "warning: models[0] (bot).version: not set: records without a 'version' field will be quarantined"
        in " ".join(check.stderr.split())
    )
    res = cli("collect", "-c", str(cfg))
    assert "Traceback" not in res.stderr
    assert labels_and_counts(db_url) == {"v1": 1}
    labels = [r["label"] for r in q(Store(db_url), "SELECT label FROM model_versions")]
    assert labels == ["v1"]
    [row] = q(Store(db_url), "SELECT location, reason FROM quarantine")
    assert row["location"].endswith("app.log:1")
    assert "no version: the record has no 'version' field and model 'bot' sets no `version:`" in row["reason"]

    model = jsonl_model("bot", log)
    model["source"]["fields"] = {"version": None}  # nothing could ever give a line a version
    cfg = write_config(tmp_path / "c2.yml", db_url, [model])
    check = cli("config", "check", str(cfg))
    assert check.returncode == 2
    assert "models[0] (bot).version: not set, and source.fields.version is null" in " ".join(
        check.stderr.split()
    )
    assert cli("run", "-c", str(cfg)).returncode == 2  # run refuses to start on it


HOSTILE_LABELS = {
    "v2\nline": "U+000A",
    "v2\x00nul": "U+0000",
    "v2\x1b[31mred": "U+001B",
    "v2\u202eevil": "U+202E",
    "v2\u2066iso": "U+2066",
    "v2\x85nel": "U+0085",
}


@SQLITE
def test_control_and_bidi_characters_in_labels_are_quarantined(db_url: str, tmp_path: Path) -> None:
    """A version or model label from a log line with a newline, NUL, ESC, a C1 control or a bidi
    override is quarantined naming the character; tabs, emoji and brackets are stored and printed
    as text."""
    bad = [{"prompt": "p", "output": f"bad {i}", "version": v} for i, v in enumerate(HOSTILE_LABELS)]
    bad.append({"prompt": "p", "output": "bad model", "version": "v1", "model": "gpt\u202dx"})
    good = ["v1\tt", "v1 🙂", "v1[/]"]
    ok = [
        {"prompt": f"p{i}", "output": f"good {i} {j}", "version": v}
        for i, v in enumerate(good)
        for j in range(2)
    ]
    log = write_lines(tmp_path / "app.log", bad + ok)
    cfg = write_config(tmp_path / "c.yml", db_url, [jsonl_model("bot", log, version="v0")])
    res = cli("collect", "-c", str(cfg))
    assert "Traceback" not in res.stderr, res.stderr
    assert labels_and_counts(db_url) == {v: 2 for v in good}
    reasons = [r["reason"] for r in q(Store(db_url), "SELECT reason FROM quarantine ORDER BY id")]
    assert len(reasons) == len(bad)
    for reason, code in zip(reasons, [*HOSTILE_LABELS.values(), "U+202D"], strict=True):
        assert f"control or bidi character {code}" in reason, reason
    assert reasons[-1].startswith("model label")
    history = cli("history", "bot", "--database-url", db_url)
    assert history.returncode == 0 and "Traceback" not in history.stderr
    assert "v1[/]" in history.stdout and "🙂" in history.stdout

    cfg.write_text(cfg.read_text().replace("version: v0", 'version: "v0\\u202e"'))
    check = cli("config", "check", str(cfg))
    assert (
        check.returncode == 2 and "version label holds the control or bidi character U+202E" in check.stderr
    )


@SQLITE
def test_config_check_names_web_config_key_and_listener_mistakes(db_url: str, tmp_path: Path) -> None:
    """Each mistake is one line naming the file and the key; an open listener is a loud warning that
    does not fail the check (issue #22, fresh-eyes attack)."""
    log = unversioned_log(tmp_path / "app.log")
    model = jsonl_model("bot", log, version="v1")
    cfg = write_config(tmp_path / "c.yml", db_url, [model], metrics_host="0.0.0.0")
    res = cli("config", "check", str(cfg))
    assert res.returncode == 0, res.stdout + res.stderr
    said = " ".join(res.stderr.split())
    assert (
        f"{cfg}: warning: metrics_host: 0.0.0.0 listens beyond this machine with no basic_auth_users" in said
    )

    web = tmp_path / "web.yml"
    web.write_text(
        json.dumps(
            {
                "basic_auth_users": {"prometheus": "$2y$10$not-a-hash"},
                "tls_server_config": {
                    "cert_file": "c",
                    "key_file": "k",
                    "client_auth_type": "RequireAnyClientCert",
                },
                "http_server_config": {"headers": {"X-A": "x\r\nInjected: 1"}},
            }
        )
    )
    server = {"base_url": "http://127.0.0.1:9/v1", "model": "e", "api_key_env": "CW_TEST_SMART_QUOTE"}
    cfg = write_config(
        tmp_path / "c.yml",
        db_url,
        [model],
        metrics_host="0.0.0.0",
        web_config_file=str(web),
        embedding_server=server,
    )
    res = cli("config", "check", str(cfg), env={"CW_TEST_SMART_QUOTE": "sk-abc\u2019def"})
    assert res.returncode == 2
    said = " ".join(res.stderr.split())
    assert f"web_config_file: {web}: " in said
    assert "basic_auth_users: prometheus: not a bcrypt hash" in said
    assert "client_auth_type RequireAnyClientCert needs client_ca_file" in said
    assert (
        "http_server_config.headers: Value error, header 'X-A': value holds the control character U+000D"
        in said
    )
    assert (
        "embedding_server.api_key_env: environment variable CW_TEST_SMART_QUOTE holds non-ASCII characters"
        in said
    )
    assert "sk-abc" not in res.stderr and "Traceback" not in res.stderr

    web.write_text(json.dumps({"basic_auth_users": {}}))
    cfg = write_config(tmp_path / "c.yml", db_url, [model], web_config_file=str(web))
    res = cli("config", "check", str(cfg))
    assert res.returncode == 2 and "basic_auth_users is empty" in " ".join(res.stderr.split())

    for meaningless in ("none", "Off "):
        cfg = write_config(tmp_path / "c.yml", db_url, [model], embedding_model=meaningless)
        res = cli("config", "check", str(cfg))
        said = " ".join(res.stderr.split())
        assert res.returncode == 2 and "embedding_model" in said and "is not a model" in said, said


@SQLITE
def test_config_check_refuses_the_shipped_placeholder_secrets(db_url: str, tmp_path: Path) -> None:
    """The example Secrets' `CHANGE-ME-alert-receiver-token` (any secret containing CHANGE-ME, the
    database password too) is known to everyone who read the docs: refused with a clear line."""
    log = unversioned_log(tmp_path / "app.log")
    token = tmp_path / "token"
    token.write_text("CHANGE-ME-alert-receiver-token\n")
    cfg = write_config(tmp_path / "c.yml", db_url, [jsonl_model("bot", log, version="v1")])
    data = yaml.safe_load(cfg.read_text())
    data["alert_receiver"] = {"bearer_token_file": str(token)}
    cfg.write_text(yaml.safe_dump(data))
    check = cli("config", "check", str(cfg))
    assert check.returncode == 2, check.stdout + check.stderr
    assert f"alert_receiver: the bearer token in {token} is a placeholder (it contains CHANGE-ME" in " ".join(
        check.stderr.split()
    )
    pg = "postgresql+psycopg://collapse:CHANGE-ME@127.0.0.1:9/collapse_watch"
    check = cli("config", "check", str(cfg), env={"COLLAPSE_WATCH_DATABASE_URL": pg})
    assert "database_url: the password is a placeholder" in " ".join(check.stderr.split()), check.stderr
    assert "CHANGE-ME@" not in check.stderr  # the URL is never printed with its password
    token.write_text("a-real-secret-0f3c9e\n")
    assert cli("config", "check", str(cfg)).returncode == 0
