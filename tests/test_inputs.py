"""Reading outputs files: JSONL and CSV, and errors that name the line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collector.inputs import InputError, read_records
from collector.probes import prompt_id as prompt_key


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_jsonl_fields_and_prompt_grouping(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "o.jsonl",
        [
            {"prompt": "Name a colour.", "output": "Blue", "model": "m", "version": "v1", "id": 7},
            {"prompt": "Name a colour.", "output": "Red"},
            {"prompt": "Tell a joke.", "output": "", "prompt_id": "joke"},
        ],
    )
    records = read_records(path)
    assert [r.sample.output for r in records] == ["Blue", "Red", ""]
    assert records[0].sample.prompt_id == records[1].sample.prompt_id == prompt_key("Name a colour.")
    assert records[2].sample.prompt_id == "joke"
    assert (records[0].model, records[0].version, records[0].id) == ("m", "v1", "7")
    assert records[1].model is None


def test_csv_with_same_columns(tmp_path: Path) -> None:
    path = tmp_path / "o.csv"
    path.write_text('prompt,output,version\n"Hi, there",hello,v2\nHi,"multi\nline",v2\n', encoding="utf-8")
    records = read_records(path)
    assert [r.sample.output for r in records] == ["hello", "multi\nline"]
    assert records[0].sample.prompt == "Hi, there"
    assert records[1].version == "v2"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"prompt": "a", "output": "b"}\n{"prompt": "a", "output": \n', r"o\.jsonl:2: invalid JSON"),
        ('{"prompt": "a"}\n', r"o\.jsonl:1: missing field\(s\) 'output'"),
        ('{"prompt": "a", "output": 3}\n', r"o\.jsonl:1: field 'output' must be a string, got int"),
        ('["a", "b"]\n', r"o\.jsonl:1: expected a JSON object, got list"),
        ("\n\n", r"no records"),
        # refused by json.loads with other exceptions (an exit 70 before): nesting, a huge integer
        (
            '{"prompt": "a", "output": "b", "meta": ' + "[" * 5000 + "]" * 5000 + "}\n",
            r"o\.jsonl:1: invalid JSON \(nested too deeply",
        ),
        (
            '{"prompt": "a", "output": "b", "n": ' + "9" * 5000 + "}\n",
            r"o\.jsonl:1: invalid JSON \(Exceeds the limit",
        ),
        # 1e400 and 2e400 would both be the prompt "inf"
        (
            '{"prompt": "a", "output": "b", "prompt_id": 1e400}\n',
            r"o\.jsonl:1: prompt_id inf is not a finite number",
        ),
        (
            '{"prompt": "a", "output": "b", "prompt_id": NaN}\n',
            r"o\.jsonl:1: prompt_id nan is not a finite number",
        ),
    ],
)
def test_bad_jsonl_names_the_line(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "o.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=expected):
        read_records(path)


def test_non_utf8_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "o.jsonl"
    path.write_bytes(b'{"prompt": "a", "output": "b"}\n{"prompt": "a", "output": "\xff"}\n')
    with pytest.raises(InputError, match=r"o\.jsonl:2: not valid UTF-8"):
        read_records(path)
    with pytest.raises(InputError, match="no such file"):
        read_records(tmp_path / "missing.jsonl")
    with pytest.raises(InputError, match="not a regular file"):
        read_records(tmp_path)
