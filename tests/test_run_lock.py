"""SQLite stays single-collector: a second `collapse-watch run` on the same file is refused (exit 2)
with a message saying why and what to do, while read-only commands keep working."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from collector.store.run_lock import AlreadyCollecting, single_collector, sqlite_path
from tests.cli_process import cli
from tests.llm_server import free_port


def write_config(tmp_path: Path, db: Path) -> Path:
    probes = tmp_path / "probes.txt"
    probes.write_text("Say hello.\n", encoding="utf-8")
    doc = {
        "database_url": f"sqlite:///{db}",
        "metrics_host": "127.0.0.1",
        "models": [
            {  # nothing listens on port 9: each run fails fast, which is all this test needs
                "name": "m",
                "source": {
                    "type": "openai",
                    "base_url": "http://127.0.0.1:9/v1",
                    "model": "m",
                    "max_retries": 0,
                },
                "version": "v1",
                "schedule": {"every": "1h"},
                "probes": str(probes),
            }
        ],
    }
    path = tmp_path / "cw.yml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


WIDE = {"COLUMNS": "200"}  # error lines are matched whole: no wrapping


def start_run(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "collector",
            "run",
            "--config",
            str(config),
            "--metrics-port",
            str(free_port()),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_until_it_holds_the_lock(proc: subprocess.Popen[str], db: Path, timeout: float = 120) -> None:
    lock = db.with_name(db.name + ".collector-lock")
    deadline = time.monotonic() + timeout
    while not (lock.exists() and lock.read_text(encoding="ascii").strip() == str(proc.pid)):
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        assert time.monotonic() < deadline, "the run never took the lock"
        time.sleep(0.2)


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    return proc.communicate(timeout=60)[0]


@pytest.mark.slow
def test_a_second_run_on_one_sqlite_file_is_refused_and_reads_still_work(tmp_path: Path) -> None:
    db = tmp_path / "cw.db"
    config = write_config(tmp_path, db)
    first = start_run(config)
    try:
        wait_until_it_holds_the_lock(first, db)
        second = cli("run", "--config", str(config), "--metrics-port", str(free_port()), env=WIDE)
        assert second.returncode == 2, second.stdout + second.stderr
        message = " ".join(second.stderr.split())
        assert f"(pid {first.pid}) is already collecting into sqlite:///{db}" in message
        assert "one collector per file" in message and "docs/replicas.md" in message

        current = cli(
            "db", "current", "--database-url", f"sqlite:///{db}", env=WIDE
        )  # a reader is never refused
        assert current.returncode == 0 and current.stdout.strip() != "none", current.stderr
        assert first.poll() is None  # the refused replica did not disturb the running one
    finally:
        output = stop(first)
    assert first.returncode == 0, output


def test_the_lock_is_per_file_and_released(tmp_path: Path) -> None:
    a, b = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    with single_collector(a):
        with single_collector(b):  # another file: independent
            pass
        # flock is per open file description: even this process cannot take it twice
        with pytest.raises(AlreadyCollecting, match=f"pid {os.getpid()}"), single_collector(a):
            pass
    with single_collector(a):  # released on exit
        pass


def test_only_sqlite_files_are_locked() -> None:
    assert sqlite_path("postgresql+psycopg://postgres@127.0.0.1:5432/test") is None
    assert sqlite_path("sqlite:///:memory:") is None
    assert sqlite_path("sqlite:///rel/x.db") == (Path.cwd() / "rel" / "x.db")
