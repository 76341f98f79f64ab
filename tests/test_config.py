"""Loading and validating the YAML configuration."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from collector.config import (
    DATABASE_URL_ENV,
    ConfigError,
    JsonlSourceConfig,
    OpenAISourceConfig,
    check_config,
    config_from_dict,
    config_hash,
    load_config,
    parse_duration,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "config.yml"

GOOD = """\
database_url: sqlite:///data/cw.db
retention_days: 30
models:
  - name: bot
    source:
      type: openai
      base_url: http://127.0.0.1:8000/v1/
      model: m
      api_key_env: CW_KEY
      rate_limit_per_second: 2.5
    version: "1.0"
    schedule: {every: 2h30m}
    probes: probes/mine.txt
    decoding: {temperature: 0.8, top_p: 0.9, max_tokens: 64, seed: 1, stop: ["\\n"]}
    metrics: [distinct_2]
  - name: logs
    source: {type: jsonl, path: logs/*.jsonl}
    schedule: {cron: "*/5 * * * *"}
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "cw.yml"
    p.write_text(textwrap.dedent(text))
    return p


def errors_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, text))
    return e.value.errors


def test_good_config_loads_with_defaults_and_resolved_paths(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    cfg = load_config(write(tmp_path, GOOD))
    bot, logs = cfg.models
    assert isinstance(bot.source, OpenAISourceConfig)
    assert bot.source.base_url == "http://127.0.0.1:8000/v1"
    assert (bot.source.timeout_seconds, bot.source.max_retries, bot.source.concurrency) == (60, 4, 4)
    assert bot.schedule is not None and bot.schedule.every_seconds == 9000
    assert bot.samples_per_prompt == 4 and bot.version_from == "config"
    assert bot.probes == str(tmp_path / "probes" / "mine.txt")
    assert bot.effective_min_samples(n_prompts=10) == 20
    assert isinstance(logs.source, JsonlSourceConfig)
    # a log of 10 unique prompts is not "only 10 of 20": a pull source asks for nothing
    assert logs.effective_min_samples(n_prompts=10) == 2
    assert logs.source.path == str(tmp_path / "logs" / "*.jsonl")
    # state next to the SQLite database
    assert logs.source.state_file == str(tmp_path / "data" / ".collapse-watch" / "logs.jsonl-state.json")
    assert logs.metrics == "default" and cfg.metrics_port == 9108
    assert cfg.model("logs") is logs
    with pytest.raises(KeyError, match="known: bot, logs"):
        cfg.model("nope")


def test_database_url_from_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(DATABASE_URL_ENV, "postgresql+psycopg://u:pw@db/x")
    assert load_config(write(tmp_path, GOOD)).database_url == "postgresql+psycopg://u:pw@db/x"


def test_every_error_is_reported_with_path_and_line(tmp_path: Path) -> None:
    errs = errors_of(
        tmp_path,
        """\
        metrics_prot: 9000
        models:
          - name: a
            source:
              type: openai
              base_url: 127.0.0.1:8000
            schedule:
              every: 30x
            version_from: header
            samples_per_prompt: 0
          - name: a
            source: {type: jsonl, path: x.jsonl, fieldz: {}}
            schedule: {cron: "61 * * * *"}
          - name: c
            source: {type: kafka}
            schedule: {every: 1h, cron: "0 * * * *"}
            decoding: {top_p: 1.5}
        """,
    )
    expected = [
        "metrics_prot (line 1): unknown key 'metrics_prot' (did you mean 'metrics_port'?)",
        "models (line 2): model name(s) used more than once: a",
        "models[0].source.base_url (line 6): invalid base_url '127.0.0.1:8000'",
        "models[0].source.model (line 4): required key is missing",
        "models[0].schedule.every (line 8): invalid duration '30x' (expected e.g. 30s, 15m, 1h, 2h30m)",
        "models[0].version_from (line 9): invalid version_from 'header'",
        "models[0].samples_per_prompt (line 10): Input should be greater than or equal to 1",
        "models[1].source.fieldz (line 12): unknown key 'fieldz' (did you mean 'fields'?)",
        "models[1].schedule.cron (line 13): invalid cron expression '61 * * * *'",
        "models[2].source (line 15): unknown source type 'kafka'",
        "models[2].schedule (line 16): give exactly one of 'every'",
        "models[2].decoding.top_p (line 17): Input should be less than or equal to 1",
    ]
    assert len(errs) == len(expected), "\n".join(errs)
    for want in expected:
        assert any(e.startswith(want) for e in errs), f"{want!r} not in\n" + "\n".join(errs)


def test_version_from_needs_an_openai_source(tmp_path: Path) -> None:
    errs = errors_of(
        tmp_path,
        """\
        models:
          - name: a
            source: {type: jsonl, path: x.jsonl}
            version_from: response_model
        """,
    )
    assert errs == [
        "models[0] (line 2): version_from 'response_model' needs an openai source "
        "(a jsonl source reads the version from its records)"
    ]


def test_sql_source_validation(tmp_path: Path) -> None:
    errs = errors_of(
        tmp_path,
        """\
        models:
          - name: a
            source: {type: sql, url: "sqlite:///x.db", query: "  ", watermark_column: "id; drop"}
        """,
    )
    assert any(e.startswith("models[0].source.query (line 3): query is empty") for e in errs)
    assert any("invalid column name 'id; drop'" in e for e in errs)


@pytest.mark.parametrize(
    "text, message",
    [
        ("models: [", "not valid YAML"),
        ("- 1\n- 2\n", "expected a mapping"),
        ("models: {name: a}", "models (line 1): Input should be a valid list"),
    ],
)
def test_not_a_config(tmp_path: Path, text: str, message: str) -> None:
    errs = errors_of(tmp_path, text)
    assert message in errs[0]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path / "nope.yml")


def test_parse_duration() -> None:
    assert [parse_duration(s) for s in ("45s", "30m", "1h", "2h30m", "1d")] == [45, 1800, 3600, 9000, 86400]
    for bad in ("30x", "", "0s", "m", "1.5h", "h1"):
        with pytest.raises(ValueError, match="invalid duration"):
            parse_duration(bad)


def test_config_hash_is_stable_and_ignores_secrets_and_storage(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    base = config_hash(load_config(write(tmp_path, GOOD)))
    assert base == config_hash(load_config(write(tmp_path, GOOD)))
    monkeypatch.setenv(DATABASE_URL_ENV, "postgresql+psycopg://u:secret@db/x")
    assert config_hash(load_config(write(tmp_path, GOOD))) == base
    changed = load_config(write(tmp_path, GOOD.replace("temperature: 0.8", "temperature: 0.9")))
    assert config_hash(changed) != base
    assert config_hash(changed.models[1]) == config_hash(load_config(write(tmp_path, GOOD)).models[1])
    with_header = GOOD.replace("rate_limit_per_second: 2.5", "headers: {Authorization: Bearer abc}")
    other_token = with_header.replace("abc", "xyz")
    assert config_hash(load_config(write(tmp_path, with_header))) == config_hash(
        load_config(write(tmp_path, other_token))
    )


def test_check_config_reports_machine_problems(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("CW_KEY", raising=False)
    path = write(tmp_path, GOOD)
    problems = check_config(path)
    assert any("environment variable CW_KEY is not set" in p for p in problems)
    assert any("no file matches" in p for p in problems)
    assert any("no probe file" in p for p in problems)
    monkeypatch.setenv("CW_KEY", "k")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a.jsonl").write_text("")
    (tmp_path / "probes").mkdir()
    (tmp_path / "probes" / "mine.txt").write_text("hi\n")
    remaining = check_config(path)
    assert all("metrics" in p for p in remaining), remaining  # only unknown metric names may remain
    assert check_config(tmp_path / "missing.yml")[0].startswith("cannot read")


def test_example_config_is_valid() -> None:
    cfg = load_config(EXAMPLE)
    assert [m.name for m in cfg.models] == ["support-bot", "support-bot-logs"]


def test_duplicate_yaml_keys_are_errors(tmp_path: Path) -> None:
    errs = errors_of(tmp_path, "metrics_port: 1\nmetrics_port: 2\n")
    assert errs == ["metrics_port (line 2): key given twice in the same mapping"]


def test_missing_source_and_wrong_types(tmp_path: Path) -> None:
    errs = errors_of(tmp_path, "models:\n  - name: a\n    samples_per_prompt: many\n")
    assert errs[0] == "models[0].source (line 2): required key is missing"
    assert errs[1].startswith("models[0].samples_per_prompt (line 3): Input should be a valid integer")


def test_make_source_builds_each_kind(tmp_path: Path, monkeypatch) -> None:
    from collector.sources import is_pull, make_source

    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    cfg = config_from_dict(
        {
            "models": [
                {"name": "o", "source": {"type": "openai", "base_url": "http://127.0.0.1:1", "model": "m"}},
                {"name": "j", "source": {"type": "jsonl", "path": "x.jsonl"}},
                {
                    "name": "s",
                    "source": {
                        "type": "sql",
                        "url": "sqlite://",
                        "query": "SELECT 1",
                        "watermark_column": "id",
                    },
                },
                {"name": "t", "source": {"type": "transformers", "path": "ckpt"}},
            ]
        },
        base_dir=tmp_path,
    )
    kinds = []
    for m in cfg.models:
        src = make_source(m)
        kinds.append((src.kind, is_pull(src)))
        src.close()
    assert kinds == [("openai", False), ("jsonl", True), ("sql", True), ("transformers", False)]
    assert cfg.models[1].source.state_file == str(tmp_path / ".collapse-watch" / "j.jsonl-state.json")


def test_a_tilde_path_of_no_such_user_is_a_path_not_a_crash(tmp_path: Path) -> None:
    """`~nosuchuser/x.jsonl` (Hypothesis found `~Ì`): expanduser raises RuntimeError; the config
    keeps it as a path relative to the config's directory instead of crashing `config check`."""
    cfg = load_config(
        write(
            tmp_path,
            "models:\n  - name: bot\n    source: {type: jsonl, path: '~cw-no-such-user-9/x.jsonl'}\n",
        )
    )
    assert cfg.models[0].source.path == str(tmp_path / "~cw-no-such-user-9" / "x.jsonl")


def test_every_path_key_is_resolved_against_the_config_directory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    cfg = load_config(
        write(
            tmp_path,
            """\
            state_dir: state
            web_config_file: web.yml
            alert_receiver: {bearer_token_file: secrets/token}
            models:
              - name: hf
                source: {type: transformers, path: ckpt}
              - name: logs
                source: {type: jsonl, path: /var/log/app.jsonl, state_file: offsets.json}
              - name: db
                source: {type: sql, url: "sqlite:///x.db", query: select 1, watermark_column: id}
            """,
        )
    )
    assert cfg.state_dir == str(tmp_path / "state")
    assert cfg.web_config_file == str(tmp_path / "web.yml")
    assert cfg.alert_receiver.bearer_token_file == str(tmp_path / "secrets" / "token")
    hf, logs, db = (m.source for m in cfg.models)
    assert hf.path == str(tmp_path / "ckpt")  # type: ignore[union-attr]
    assert logs.path == "/var/log/app.jsonl"  # type: ignore[union-attr]  # absolute: as written
    assert logs.state_file == str(tmp_path / "offsets.json")  # type: ignore[union-attr]
    assert db.state_file == str(tmp_path / "state" / "db.sql-state.json")  # type: ignore[union-attr]


def test_importing_the_config_loads_neither_the_store_engine_nor_sqlalchemy() -> None:
    import subprocess
    import sys

    code = (
        "import sys, collector.config\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sqlalchemy' "
        "or m == 'collector.store.engine'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "module",
    ["collector.credentials", "collector.preflight", "collector.config.checking", "collector.config.schema"],
)
def test_each_config_module_imports_first(module: str) -> None:
    """The config package and credentials import each other's parts: no order may hit the cycle."""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", f"import {module}"], check=True, capture_output=True)
