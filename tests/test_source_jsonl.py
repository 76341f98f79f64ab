"""The JSONL source on real files: offsets across restarts, rotation, truncation, partial lines."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from collector.config import JsonlFields, JsonlSourceConfig
from collector.probes import prompt_id
from collector.sources.jsonl import JsonlSource


def rec(i: int, **extra: object) -> str:
    return json.dumps({"prompt": f"p{i % 3}", "output": f"out {i}", "version": "v1", **extra}) + "\n"


def append(path: Path, text: str | bytes) -> None:
    with open(path, "ab") as f:
        f.write(text.encode() if isinstance(text, str) else text)


def source(tmp_path: Path, pattern: str = "app.log", **kw: object) -> JsonlSource:
    cfg = JsonlSourceConfig(
        type="jsonl", path=str(tmp_path / pattern), state_file=str(tmp_path / "state" / "s.json"), **kw
    )
    return JsonlSource(cfg)


def outputs(src: JsonlSource, limit: int | None = None) -> list[str]:
    return [o.output or f"ERR {o.error}" for o in src.pull(limit)]


def test_reads_incrementally_and_survives_restart(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    append(log, rec(0) + rec(1))
    src = source(tmp_path)
    outs = list(src.pull())
    assert [o.output for o in outs] == ["out 0", "out 1"]
    assert outs[0].version == "v1" and outs[0].prompt == "p0" and outs[0].prompt_id == prompt_id("p0")
    src.commit()
    append(log, rec(2))
    src2 = source(tmp_path)  # a restart
    assert outputs(src2) == ["out 2"]
    src2.commit()
    assert outputs(source(tmp_path)) == []


def test_uncommitted_records_are_redelivered_with_the_same_key(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    append(log, rec(0) + rec(1) + rec(2))
    src = source(tmp_path)
    first = list(src.pull(limit=2))
    assert [o.output for o in first] == ["out 0", "out 1"]
    assert outputs(src) == ["out 2"]  # same process continues, committed or not
    # crash before commit: a new process sees everything again, with identical keys
    again = list(source(tmp_path).pull())
    assert [o.source_key for o in again[:2]] == [o.source_key for o in first]
    assert len({o.source_key for o in again}) == 3


def test_commit_after_limit_resumes_exactly(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    append(log, "".join(rec(i) for i in range(10)))
    seen: list[str] = []
    for _ in range(4):
        src = source(tmp_path)
        seen += outputs(src, limit=3)
        src.commit()
    assert seen == [f"out {i}" for i in range(10)]


def test_partial_last_line_waits_until_complete(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    line = rec(0)
    append(log, rec(1) + line[:10])
    src = source(tmp_path)
    assert outputs(src) == ["out 1"]
    src.commit()
    assert outputs(source(tmp_path)) == []
    append(log, line[10:])
    src = source(tmp_path)
    assert outputs(src) == ["out 0"]
    assert src.malformed == []


def test_rotation_by_rename_reads_the_old_tail_then_the_new_file(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    append(log, rec(0))
    src = source(tmp_path)
    assert outputs(src) == ["out 0"]
    src.commit()
    append(log, rec(1))  # written just before the rotation, not yet read
    os.rename(log, tmp_path / "app.log.1")
    append(log, rec(2))
    src = source(tmp_path)
    assert outputs(src) == ["out 1", "out 2"]
    src.commit()
    append(log, rec(3))
    assert outputs(source(tmp_path)) == ["out 3"]


def test_copytruncate_starts_again_from_zero(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    append(log, rec(0) + rec(1) + rec(2))
    src = source(tmp_path)
    assert len(outputs(src)) == 3
    src.commit()
    with open(log, "r+b") as f:  # what logrotate's copytruncate does
        f.truncate(0)
    append(log, rec(7))
    src = source(tmp_path)
    assert outputs(src) == ["out 7"]


def test_replaced_file_with_longer_content_is_detected_by_fingerprint(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    append(log, rec(0))
    src = source(tmp_path)
    outputs(src)
    src.commit()
    with open(log, "wb") as f:  # same inode, rewritten with different, longer content
        f.write((rec(5, user="someone-else") + rec(6)).encode())
    assert outputs(source(tmp_path)) == ["out 5", "out 6"]


def test_glob_reads_every_file_once(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    a, b = tmp_path / "logs" / "a.jsonl", tmp_path / "logs" / "b.jsonl"
    append(a, rec(0))
    append(b, rec(1))
    os.utime(a, (1_000_000, 1_000_000))
    src = source(tmp_path, "logs/*.jsonl")
    assert outputs(src) == ["out 0", "out 1"]
    src.commit()
    append(b, rec(2))
    append(tmp_path / "logs" / "c.jsonl", rec(3))
    assert sorted(outputs(source(tmp_path, "logs/*.jsonl"))) == ["out 2", "out 3"]


def test_malformed_lines_are_reported_with_file_and_line(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    append(log, rec(0))
    append(log, b'{"prompt": "x", "output": \n')
    append(log, b'{"prompt": "x"}\n')
    append(log, b"\n")
    append(log, b'{"prompt": "caf\xe9", "output": "y"}\n')
    append(log, b"[1, 2]\n")
    append(log, rec(1))
    append(log, b'{"prompt": "x", "output": "y", "meta": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n")
    append(log, b'{"prompt": "x", "output": "y", "n": ' + b"9" * 5000 + b"}\n")
    append(log, rec(2))
    append(log, b'{"prompt": "x", "output": "y", "prompt_id": -1e400}\n')
    src = source(tmp_path)
    outs = list(src.pull())
    assert [o.output for o in outs if o.ok] == ["out 0", "out 1", "out 2"]
    errors = [o.error for o in outs if not o.ok]
    assert len(errors) == 7 and errors == src.malformed
    assert errors[4].startswith(f"{log}:8: invalid JSON (nested too deeply")
    assert errors[5].startswith(f"{log}:9: invalid JSON (Exceeds the limit (4300 digits)")
    assert errors[6] == f"{log}:11: 'prompt_id' is -inf, not a finite number (write it as a string)"
    assert errors[0].startswith(f"{log}:2: invalid JSON")
    assert errors[1] == f"{log}:3: missing or non-string 'output'"
    assert errors[2].startswith(f"{log}:5: not valid UTF-8 (byte 0xe9")
    assert errors[3] == f"{log}:6: expected a JSON object, got list"
    src.commit()
    append(log, b"nope\n")
    src = source(tmp_path)
    list(src.pull())
    assert src.malformed == [f"{log}:12: invalid JSON (Expecting value at column 1)"]


def test_custom_field_names(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    append(log, json.dumps({"q": "hi", "a": "there", "id": 42, "rev": 3, "m": "llama"}) + "\n")
    src = source(
        tmp_path, fields=JsonlFields(prompt="q", output="a", prompt_id="id", version="rev", model="m")
    )
    [o] = list(src.pull())
    assert (o.prompt, o.output, o.prompt_id, o.version, o.model_reported) == (
        "hi",
        "there",
        "42",
        "3",
        "llama",
    )


def test_state_file_is_replaced_atomically(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    append(log, rec(0))
    src = source(tmp_path)
    outputs(src)
    src.commit()
    state_dir = tmp_path / "state"
    assert [p.name for p in state_dir.iterdir()] == ["s.json"]  # no temporary left behind
    data = json.loads((state_dir / "s.json").read_text())
    [cursor] = data["files"].values()
    assert cursor["offset"] == log.stat().st_size and cursor["line"] == 1


def logrotate(tmp_path: Path, log: Path, directive: str) -> None:
    """Run the real logrotate (Debian's) once, forced, with ``directive`` (e.g. copytruncate)."""
    binary = shutil.which("logrotate") or "/usr/sbin/logrotate"
    if not os.path.exists(binary):
        pytest.skip("logrotate is not installed (apt-get install logrotate; .ci/run installs it)")
    conf = tmp_path / "logrotate.conf"
    conf.write_text(f"{log} {{\n  rotate 3\n  {directive}\n  missingok\n  nocompress\n}}\n")
    subprocess.run(
        [binary, "--force", "--state", str(tmp_path / "logrotate.state"), str(conf)],
        check=True,
        capture_output=True,
    )


@pytest.mark.parametrize("pattern", ["app.log", "app.log*"])
def test_real_logrotate_copytruncate_reads_every_line_once(tmp_path: Path, pattern: str) -> None:
    """The lines written after the last pass land in logrotate's copy (app.log.1) and the original
    is truncated: they are read once from the copy, whether the glob matches the copy or not, and
    nothing already read is read again (before: lost with ``app.log``, read twice with ``app.log*``)."""
    log = tmp_path / "app.log"
    append(log, rec(0) + rec(1) + rec(2))
    src = source(tmp_path, pattern)
    assert outputs(src) == ["out 0", "out 1", "out 2"]
    src.commit()
    append(log, rec(3) + rec(4))  # written since the last pass, not read yet
    logrotate(tmp_path, log, "copytruncate")
    assert (tmp_path / "app.log.1").exists() and log.stat().st_size == 0
    append(log, rec(5))
    src = source(tmp_path, pattern)  # a restart in between, too
    assert sorted(outputs(src)) == ["out 3", "out 4", "out 5"]
    src.commit()
    append(log, rec(6))
    src = source(tmp_path, pattern)
    assert outputs(src) == ["out 6"]
    src.commit()
    logrotate(tmp_path, log, "copytruncate")  # a second rotation: app.log.1 -> app.log.2
    append(log, rec(7))
    assert outputs(source(tmp_path, pattern)) == ["out 7"]


def logrotate_conf(tmp_path: Path, log: Path, *directives: str) -> Path:
    conf = tmp_path / "logrotate.conf"
    body = "".join(f"  {d}\n" for d in ("rotate 5", "missingok", *directives))
    conf.write_text(f"{log} {{\n{body}}}\n")
    return conf


def rotate(tmp_path: Path, conf: Path) -> None:
    binary = shutil.which("logrotate") or "/usr/sbin/logrotate"
    if not os.path.exists(binary):
        pytest.skip("logrotate is not installed (apt-get install logrotate; .ci/run installs it)")
    state = tmp_path / "logrotate.state"
    subprocess.run([binary, "--force", "--state", str(state), str(conf)], check=True, capture_output=True)


@pytest.mark.parametrize("pattern", ["app.log", "app.log*"])
@pytest.mark.parametrize("naming", ["numbered", "dateext"])
def test_two_copytruncate_rotations_between_passes_lose_nothing(
    tmp_path: Path, pattern: str, naming: str
) -> None:
    """app.log -> app.log.1 -> app.log.2 (or two dated copies) between two passes, by the real
    logrotate: the old position is found in the older copy, the newer copy is read whole, every
    line once (before: the lines in app.log.1 were lost with the plain glob)."""
    log = tmp_path / "app.log"
    dated = ("dateext", "dateformat -%Y%m%d%H%M%S") if naming == "dateext" else ()
    conf = logrotate_conf(tmp_path, log, "copytruncate", "nocompress", *dated)
    append(log, rec(0) + rec(1))
    src = source(tmp_path, pattern)
    assert outputs(src) == ["out 0", "out 1"]
    src.commit()
    append(log, rec(2) + rec(3))  # not read yet: lands in the first copy
    rotate(tmp_path, conf)
    if dated:
        time.sleep(1.1)  # a dated copy's name has a resolution of one second
    append(log, rec(4))  # lands in the second copy
    rotate(tmp_path, conf)
    append(log, rec(5))
    assert len([p for p in tmp_path.iterdir() if p.name.startswith("app.log") and p != log]) == 2
    src = source(tmp_path, pattern)
    assert sorted(outputs(src)) == ["out 2", "out 3", "out 4", "out 5"]
    src.commit()
    append(log, rec(6))
    assert outputs(source(tmp_path, pattern)) == ["out 6"]


@pytest.mark.parametrize("pattern", ["app.log", "app.log*"])
def test_a_compressed_copy_is_counted_as_lost_and_the_newer_copy_read(
    tmp_path: Path, caplog, pattern: str
) -> None:
    """With compress + delaycompress the copy holding the unread lines is gzipped by the second
    rotation: it cannot be read, so a warning says so and counts it; the newer copy is still read."""
    log = tmp_path / "app.log"
    conf = logrotate_conf(tmp_path, log, "copytruncate", "compress", "delaycompress")
    append(log, rec(0))
    src = source(tmp_path, pattern)
    assert outputs(src) == ["out 0"]
    src.commit()
    append(log, rec(1))  # lands in app.log.1, gzipped to app.log.2.gz by the second rotation
    rotate(tmp_path, conf)
    append(log, rec(2))  # lands in the new app.log.1
    rotate(tmp_path, conf)
    assert (tmp_path / "app.log.2.gz").exists() and (tmp_path / "app.log.1").exists()
    append(log, rec(3))
    src = source(tmp_path, pattern)
    with caplog.at_level("WARNING", logger="collector.sources.jsonl"):
        assert sorted(outputs(src)) == ["out 2", "out 3"]  # no gzip bytes read as lines
    assert src.malformed == []
    assert src.lost_copies == [str(tmp_path / "app.log.2.gz")]
    assert any(
        "app.log.2.gz" in r.getMessage() and "cannot be read" in r.getMessage() for r in caplog.records
    )
    if pattern == "app.log*":  # the glob matches the .gz too: skipped with its reason, never parsed
        assert any(
            r.getMessage().endswith("app.log.2.gz is compressed and cannot be read: skipped")
            for r in caplog.records
        )


@pytest.mark.parametrize("pattern", ["app.log", "app.log*"])
def test_real_logrotate_create_reads_every_line_once(tmp_path: Path, pattern: str) -> None:
    log = tmp_path / "app.log"
    append(log, rec(0))
    src = source(tmp_path, pattern)
    assert outputs(src) == ["out 0"]
    src.commit()
    append(log, rec(1))
    logrotate(tmp_path, log, "create")
    append(log, rec(2))
    src = source(tmp_path, pattern)
    assert sorted(outputs(src)) == ["out 1", "out 2"]
    src.commit()
    assert outputs(source(tmp_path, pattern)) == []
