"""A cache directory or file that fails (read-only, not a directory, corrupt rows) never fails the gate:
`compare` answers, or exits 70 on an unexpected error, never 1 (= collapse suspected). Real CLI runs."""

from __future__ import annotations

from pathlib import Path

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
