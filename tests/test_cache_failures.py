"""A cache directory or file that fails (read-only, not a directory, corrupt rows) never fails the gate:
`compare` answers, or exits 70 on an unexpected error, never 1 (= collapse suspected). Real CLI runs."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.vocabulary import EXIT_CODES, EXIT_SOFTWARE
from tests.cli_process import cli

DATA = Path(__file__).parent / "data"
SIDES = (str(DATA / "series_v1.jsonl"), str(DATA / "control_b.jsonl"))


def unwritable_cache(tmp_path: Path) -> Path:
    """A cache path under a regular file: every mkdir fails, even as root."""
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x", encoding="utf-8")
    return blocker / "cache"


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A real tmpfs of ``size`` mounted at ``path`` for the block (a full or read-only file system
    to put a cache on); the test skips where mounting needs privileges it lacks."""
    path.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    ).returncode:
        pytest.skip("mounting a tmpfs needs privileges this run does not have")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


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


def test_broken_cached_vectors_are_re_embedded_and_replaced(tmp_path: Path) -> None:
    """Rows corrupted in the real cache file (zeros, random bytes, a cut blob) are not read as vectors
    (zeros gave similarity 1.0, random bytes NaN): one warning counts them, they are embedded again
    and their rows REPLACED (no duplicate, no bad row left), and the next gate reads them quietly."""
    import json

    import numpy as np
    from sqlalchemy import create_engine, text

    from collector.embeddings import text_key

    cache = tmp_path / "cache"
    env = {"COLLAPSE_WATCH_CACHE_DIR": str(cache)}
    args = ("compare", *SIDES, "--metrics", "vendi_score", "--json")
    first = cli(*args, env=env)
    assert first.returncode in (EXIT_CODES["ok"], EXIT_CODES["inconclusive"]), first.stderr
    outputs = [json.loads(line)["output"] for line in Path(SIDES[0]).read_text(encoding="utf-8").splitlines()]
    keys = list(dict.fromkeys(text_key(o) for o in outputs))[:7]
    engine = create_engine(f"sqlite:///{cache / 'vectors.sqlite'}")
    corrupt = ["zeroblob(768)"] * 3 + ["randomblob(768)"] * 3 + ["randomblob(7)"]
    with engine.begin() as conn:
        n_rows = conn.scalar(text("SELECT count(*) FROM embedding_vectors"))
        for key, blob in zip(keys, corrupt, strict=True):
            conn.execute(
                text(f"UPDATE embedding_vectors SET vector = {blob} WHERE text_sha256 = :k"), {"k": key}
            )
    engine.dispose()

    second = cli(*args, env=env)
    assert second.returncode == first.returncode, second.stderr
    assert second.stderr.count("7 stored vector(s) of local-") == 1, second.stderr
    assert "Traceback" not in second.stderr
    for before, after in zip(
        json.loads(first.stdout)["metrics"], json.loads(second.stdout)["metrics"], strict=True
    ):
        # the same vectors again (up to batch padding in bf16), not zeros (1.0) or NaN
        assert abs(after["baseline"] - before["baseline"]) < 1e-2 * before["baseline"], (before, after)
    engine = create_engine(f"sqlite:///{cache / 'vectors.sqlite'}")
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM embedding_vectors")) == n_rows  # replaced, not added
        for key in keys:
            blob = conn.scalar(
                text("SELECT vector FROM embedding_vectors WHERE text_sha256 = :k"), {"k": key}
            )
            vec = np.frombuffer(blob, dtype="<f2").astype(np.float32)
            assert vec.shape == (384,) and abs(float(np.linalg.norm(vec)) - 1.0) < 1e-2
    engine.dispose()
    third = cli(*args, env=env)
    assert "stored vector(s)" not in third.stderr
    assert (third.returncode, third.stdout) == (second.returncode, second.stdout)


def test_a_cache_on_a_read_only_mount_is_still_read(tmp_path: Path) -> None:
    """The cache file (WAL mode) on a read-only file system: SQLite's read-only open fails there
    (its -shm cannot be made beside it), so it is opened immutable: read, one warning, nothing
    embedded again (found by the #25 re-attack: it was "read-only" and "unusable" at once)."""
    cache = tmp_path / "cache"
    first = cli(
        "compare", *SIDES, "--metrics", "vendi_score", "--json", env={"COLLAPSE_WATCH_CACHE_DIR": str(cache)}
    )
    assert first.returncode in (EXIT_CODES["ok"], EXIT_CODES["inconclusive"]), first.stderr
    with tmpfs(tmp_path / "ro", "16m") as mount:
        (mount / "vectors.sqlite").write_bytes((cache / "vectors.sqlite").read_bytes())
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        env = {"COLLAPSE_WATCH_CACHE_DIR": str(mount)}
        second = cli("compare", *SIDES, "--metrics", "vendi_score", "--json", env=env)
        table = cli("compare", *SIDES, "--metrics", "vendi_score", env=env)
    assert (second.returncode, second.stdout) == (first.returncode, first.stdout), second.stderr
    assert second.stderr.count("is read-only: reading it") == 1
    assert "unusable" not in second.stderr
    assert ", 0 embedded with " in table.stderr, table.stderr


def test_a_full_cache_disk_leaves_no_half_converted_model_behind(tmp_path: Path) -> None:
    """XDG_CACHE_HOME on a full file system: OpenVINO's conversion fails, torch embeds (one
    warning), and neither the half-written IR directory nor an empty memo file is left behind for
    each run (found by the #25 re-attack); a cache directory that is a file is named as such."""
    with tmpfs(tmp_path / "full", "64k") as full:
        env = {"XDG_CACHE_HOME": str(full), "COLLAPSE_WATCH_CACHE_DIR": str(tmp_path / "vectors")}
        proc = cli("compare", *SIDES, "--metrics", "vendi_score", env=env)
        left = sorted(str(p.relative_to(full)) for p in full.rglob("*"))
    assert proc.returncode in (EXIT_CODES["ok"], EXIT_CODES["inconclusive"]), proc.stderr
    assert "OpenVINO embedding backend unavailable, using torch" in proc.stderr
    assert not [name for name in left if ".tmp-" in name or "bf16_native.json." in name], left
    blocker = tmp_path / "a-file"
    blocker.write_text("x", encoding="utf-8")
    named = cli("compare", *SIDES, "--metrics", "vendi_score", env={"COLLAPSE_WATCH_CACHE_DIR": str(blocker)})
    assert f"{blocker} is not a directory" in named.stderr, named.stderr
