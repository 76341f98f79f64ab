"""A cache directory or file that fails (read-only, not a directory, corrupt rows) never fails the gate:
`compare` answers, or exits 70 on an unexpected error, never 1 (= collapse suspected). Real CLI runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from collector.cli import EXIT_CODES, EXIT_SOFTWARE
from tests.cli_process import cli

DATA = Path(__file__).parent / "data"
SIDES = (str(DATA / "series_v1.jsonl"), str(DATA / "control_b.jsonl"))


def unwritable_cache(tmp_path: Path) -> Path:
    """A cache path under a regular file: every mkdir fails, even as root."""
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x", encoding="utf-8")
    return blocker / "cache"


def test_auto_backend_falls_back_to_torch_when_openvino_cannot_convert(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(unwritable_cache(tmp_path))}
    proc = cli("compare", *SIDES, "--metrics", "vendi_score", env=env)
    assert proc.returncode in (EXIT_CODES["ok"], EXIT_CODES["inconclusive"]), proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("OpenVINO embedding backend unavailable, using torch (local-torch-") == 1
    assert "embedded with local-torch-" in proc.stderr  # torch's own identity, not OpenVINO's


def test_unexpected_error_exits_70_with_one_line_and_traceback_only_on_request(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(unwritable_cache(tmp_path))}
    args = ("compare", *SIDES, "--metrics", "vendi_score", "--embedding-backend", "openvino")
    proc = cli(*args, env=env)
    assert proc.returncode == EXIT_SOFTWARE == 70, proc.stderr
    assert "error: RuntimeError: cannot load embedding model" in proc.stderr
    assert "Traceback" not in proc.stderr
    debug = cli(*args, env={**env, "COLLAPSE_WATCH_DEBUG": "1"})
    assert debug.returncode == 70
    assert "Traceback" in debug.stderr


def test_a_cache_file_that_cannot_be_written_is_still_read(tmp_path: Path) -> None:
    """An immutable vectors.sqlite (chattr +i: unwritable even for root) is read, not written: the
    second gate embeds nothing, answers as the first, warns once and leaves the file as it was."""
    cache = tmp_path / "cache"
    env = {"COLLAPSE_WATCH_CACHE_DIR": str(cache)}
    first = cli("compare", *SIDES, "--metrics", "vendi_score", "--json", env=env)
    assert first.returncode in (EXIT_CODES["ok"], EXIT_CODES["inconclusive"]), first.stderr
    db = cache / "vectors.sqlite"
    before = db.read_bytes()
    if subprocess.run(["chattr", "+i", str(db)], capture_output=True, check=False).returncode != 0:
        pytest.skip("chattr +i is not available on this file system")
    try:
        with pytest.raises(OSError):
            db.open("r+b").close()
        second = cli("compare", *SIDES, "--metrics", "vendi_score", "--json", env=env)
    finally:
        subprocess.run(["chattr", "-i", str(db)], check=True)
    assert (second.returncode, second.stdout) == (first.returncode, first.stdout), second.stderr
    assert second.stderr.count(f"vector cache {db} is read-only") == 1
    assert "unusable" not in second.stderr
    assert db.read_bytes() == before
