"""The probe loader: default set, .txt and .jsonl files, stable ids, set hash, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collector.probes import Probe, ProbeError, load_probes, probe_id, probe_set_hash


def test_default_set_is_large_unique_and_stable() -> None:
    probes = load_probes()
    assert 35 <= len(probes) <= 60
    assert len({p.id for p in probes}) == len(probes)
    assert len({p.text for p in probes}) == len(probes)
    assert all(p.text and not p.text.startswith("#") for p in probes)
    # ids are a function of the text only, so reordering or adding prompts keeps pairing intact
    assert probes[0].id == probe_id(probes[0].text)
    assert load_probes("default") == probes


def test_txt_skips_blank_and_comment_lines(tmp_path: Path) -> None:
    f = tmp_path / "p.txt"
    f.write_text("# header\n\nWrite a poem.\n   \n  Describe a cat.  \n# tail\n", encoding="utf-8")
    probes = load_probes(str(f))
    assert [p.text for p in probes] == ["Write a poem.", "Describe a cat."]
    assert probes[0].id == probe_id("Write a poem.")


def test_jsonl_keeps_given_ids_and_hashes_the_rest(tmp_path: Path) -> None:
    f = tmp_path / "p.jsonl"
    f.write_text(json.dumps({"id": "a", "prompt": "One"}) + "\n\n" + json.dumps({"prompt": "Two"}) + "\n")
    assert load_probes(str(f)) == [Probe("a", "One"), Probe(probe_id("Two"), "Two")]


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ('{"prompt": "ok"}\n{not json}\n', ":2: not valid JSON"),
        ('{"prompt": "ok"}\n{"id": "x"}\n', ':2: expected an object with a non-empty string "prompt"'),
        ('["prompt"]\n', ":1: expected an object"),
        ('{"prompt": "a", "id": 3}\n', ':1: "id" must be a non-empty string'),
        ('{"prompt": "a", "id": "x"}\n{"prompt": "b", "id": "x"}\n', "duplicate probe id 'x'"),
    ],
)
def test_bad_jsonl_names_file_and_line(tmp_path: Path, content: str, needle: str) -> None:
    f = tmp_path / "bad.jsonl"
    f.write_text(content, encoding="utf-8")
    with pytest.raises(ProbeError) as e:
        load_probes(str(f))
    assert str(f) in str(e.value) and needle in str(e.value)


def test_missing_empty_and_wrong_suffix(tmp_path: Path) -> None:
    with pytest.raises(ProbeError, match="probe file not found"):
        load_probes(str(tmp_path / "nope.txt"))
    empty = tmp_path / "e.txt"
    empty.write_text("# only a comment\n")
    with pytest.raises(ProbeError, match="no probes"):
        load_probes(str(empty))
    csv = tmp_path / "p.csv"
    csv.write_text("x\n")
    with pytest.raises(ProbeError, match=r"\.txt or \.jsonl"):
        load_probes(str(csv))


def test_probe_set_hash_sees_changes_not_order() -> None:
    probes = load_probes()
    h = probe_set_hash(probes)
    assert probe_set_hash(list(reversed(probes))) == h
    assert probe_set_hash(probes[:-1]) != h
    edited = [*probes[:-1], Probe(probes[-1].id, probes[-1].text + "!")]
    assert probe_set_hash(edited) != h
