"""Running the real ``prometheus`` and ``prometheus-alertmanager`` binaries on loopback in tests.

Shared by the end-to-end tests: a webhook recorder standing in for a pager, free ports, polling,
and starting/stopping the two binaries with the configs that ``ops_config`` renders.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest


class Webhook(BaseHTTPRequestHandler):
    """Records Alertmanager's webhook notifications (``start_webhook`` makes a subclass per test)."""

    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def start_webhook(host: str = "127.0.0.1") -> tuple[ThreadingHTTPServer, list[dict[str, Any]]]:
    """A recording webhook on a free port of ``host`` (loopback unless a container must reach it);
    returns the server and its received list."""
    received: list[dict[str, Any]] = []
    handler = type("Hook", (Webhook,), {"received": received})
    server = ThreadingHTTPServer((host, 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, received


def binaries_or_none(*names: str) -> dict[str, str] | None:
    """Paths of the named binaries (see ``binaries``), or None when one is missing."""
    aliases = {"alertmanager": ("prometheus-alertmanager", "alertmanager")}
    found = {n: next(filter(None, map(shutil.which, aliases.get(n, (n,)))), None) for n in names}
    return None if None in found.values() else {n: str(p) for n, p in found.items()}


def binaries(*names: str) -> dict[str, str]:
    """Paths of the named binaries (``alertmanager`` also finds Debian's ``prometheus-alertmanager``);
    skips the test, saying what to install, when one is missing."""
    aliases = {"alertmanager": ("prometheus-alertmanager", "alertmanager")}
    found = {n: next(filter(None, map(shutil.which, aliases.get(n, (n,)))), None) for n in names}
    missing = [n for n, path in found.items() if path is None]
    if missing:
        pytest.skip(
            f"{', '.join(missing)} not installed (apt-get install prometheus prometheus-alertmanager)"
        )
    return {n: str(p) for n, p in found.items()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, check: Callable[[], Any], timeout: float = 90.0) -> Any:
    """Poll ``check`` every 0.5 s until it returns something truthy (connection errors count as no)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = check()
        except OSError:
            result = None
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return bytes(resp.read())


def start_alertmanager(binary: str, config: Path, port: int, workdir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={workdir / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "am.log").open("w"),
    )


def start_prometheus(binary: str, config: Path, port: int, workdir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "prom.log").open("w"),
    )


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """Terminate, then kill what has not exited after 15 s."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
