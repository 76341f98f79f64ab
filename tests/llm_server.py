"""A real ``transformers serve`` subprocess serving SmolLM2-135M-Instruct on a free loopback port.

``LLMServer`` starts the server, waits for ``GET /health``, and can be stopped and restarted (on
the same port) by a test.  The served directory is a view of the converted checkpoint (symlinked
weights and tokenizer) named ``smollm2``, launched from its parent directory so the server is
pinned to the short model name ``smollm2``: that is the ``model`` requests must send and the
``model`` field of every response.

The checkpoint must sample by default (``do_sample`` in ``generation_config.json``, set by
``collector.llm``'s conversion): ``transformers serve`` maps an OpenAI ``temperature`` onto the
checkpoint's generation config but never sets ``do_sample`` itself, so a greedy checkpoint makes
the k samples of a prompt identical -- which the collector would (rightly) score as total collapse.

The server runs with one torch thread: on a small shared CPU that is several times faster than
letting two servers' worth of threads fight over it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

SERVED_NAME = "smollm2"
STARTUP_TIMEOUT = 180.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_served_dir(checkpoint: Path, parent: Path, name: str = SERVED_NAME) -> Path:
    """``parent/name``: symlinks to the checkpoint's files (the served model's name is the folder's)."""
    gen = json.loads((checkpoint / "generation_config.json").read_text(encoding="utf-8"))
    if gen.get("do_sample") is not True:
        raise AssertionError(f"{checkpoint} decodes greedily by default: its conversion must set do_sample")
    target = parent / name
    target.mkdir(parents=True, exist_ok=True)
    for f in checkpoint.iterdir():
        if f.is_file():
            (target / f.name).symlink_to(f.resolve())
    return target


class LLMServer:
    """One ``transformers serve`` process; ``start``/``stop``/``restart`` keep the port."""

    def __init__(self, served_dir: Path, log_path: Path, port: int | None = None) -> None:
        self.served_dir = served_dir
        self.log_path = log_path
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_seconds: list[float] = []

    @property
    def model(self) -> str:
        """The name requests must send (the server is pinned to it) and responses report."""
        return self.served_dir.name

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def healthy(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def start(self) -> float:
        """Start the server and wait until /health answers; returns the startup time in seconds."""
        if self.running:
            return 0.0
        exe = Path(sys.executable).with_name("transformers")
        cmd = [str(exe) if exe.exists() else "transformers", "serve", self.model]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port), "--device", "cpu", "--log-level", "warning"]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
        t0 = time.monotonic()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=self.served_dir.parent, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        while time.monotonic() - t0 < STARTUP_TIMEOUT:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"transformers serve exited with {self.proc.returncode}:\n{tail}")
            if self.healthy():
                took = time.monotonic() - t0
                self.startup_seconds.append(took)
                return took
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"transformers serve not healthy within {STARTUP_TIMEOUT:.0f}s")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s; returns once the port no longer answers."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> float:
        self.stop()
        return self.start()

    def ensure_running(self) -> None:
        if not (self.running and self.healthy()):
            self.restart()


@pytest.fixture(scope="session")
def smollm2_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LLMServer]:
    """The SmolLM2 server for the whole session (restarted by tests that stop it)."""
    from collector.llm import ModelError, smollm2_checkpoint

    if shutil.which("transformers") is None and not Path(sys.executable).with_name("transformers").exists():
        pytest.skip("the 'transformers' CLI is not installed (pip install 'transformers[serving]')")
    try:
        checkpoint = smollm2_checkpoint()
    except ModelError as exc:
        pytest.skip(f"cannot build the SmolLM2 checkpoint: {exc}")
    root = tmp_path_factory.mktemp("llm-server")
    server = LLMServer(make_served_dir(checkpoint, root / "served"), root / "serve.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def llm_server(smollm2_server: LLMServer) -> LLMServer:
    """The session's server, (re)started if an earlier test left it stopped."""
    smollm2_server.ensure_running()
    return smollm2_server
