"""One prompt identity: the probe set, files of outputs and the pull sources (JSONL log, SQL table)
give the same prompt text the same id, so a file, a log and a probed run of one prompt pair."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import create_engine, text

from collector.config import JsonlSourceConfig, SqlSourceConfig
from collector.inputs import read_records
from collector.probes import load_probes, prompt_id
from collector.sources.jsonl import JsonlSource
from collector.sources.sql import SqlSource

PROMPT = "Write a very short story about a lighthouse keeper who finds something unexpected."


def test_every_source_and_input_uses_the_one_prompt_identity(tmp_path: Path) -> None:
    probes = tmp_path / "probes.txt"
    probes.write_text(PROMPT + "\n", encoding="utf-8")
    from_probes = load_probes(str(probes))[0].id

    outputs = tmp_path / "outputs.jsonl"
    outputs.write_text(json.dumps({"prompt": PROMPT, "output": "a"}) + "\n", encoding="utf-8")
    from_file = read_records(outputs)[0].sample.prompt_id

    log = tmp_path / "app.log"
    log.write_text(json.dumps({"prompt": PROMPT, "output": "b", "version": "v1"}) + "\n", encoding="utf-8")
    jsonl = JsonlSource(
        JsonlSourceConfig(type="jsonl", path=str(log), state_file=str(tmp_path / "jsonl-state.json"))
    )
    from_log = next(iter(jsonl.pull())).prompt_id

    url = f"sqlite:///{tmp_path / 'logs.db'}"
    engine = create_engine(url)
    with engine.begin() as c:
        c.execute(text("CREATE TABLE logs (id INTEGER PRIMARY KEY, prompt TEXT, output TEXT, ver TEXT)"))
        c.execute(text("INSERT INTO logs (prompt, output, ver) VALUES (:p, 'c', 'v1')"), {"p": PROMPT})
    engine.dispose()
    sql = SqlSource(
        SqlSourceConfig(
            type="sql",
            url=url,
            query="SELECT id, prompt, output, ver FROM logs",
            watermark_column="id",
            version_column="ver",
            state_file=str(tmp_path / "sql-state.json"),
        )
    )
    from_sql = next(iter(sql.pull())).prompt_id
    sql.close()

    assert from_probes == from_file == from_log == from_sql == prompt_id(PROMPT)
    # the id of the real series files (generated from the shipped probes) is this one
    assert prompt_id(PROMPT) == "p-1a46420423"
    assert prompt_id("  " + PROMPT + "\n") == prompt_id(PROMPT)
