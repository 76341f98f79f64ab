"""Small real HTTP servers on loopback for faults a real model server cannot produce on demand.

``LoopbackServer(handle)`` runs a threaded ``http.server`` on a free port; ``handle(path, headers,
body)`` returns ``(status, headers, body)`` for every POST and may sleep to play a slow server.
``VersionHeaderProxy`` forwards POSTs to an upstream OpenAI-compatible server and adds a
model-version header whose value the test can change between runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

Handle = Callable[[str, dict[str, str], bytes], tuple[int, dict[str, str], bytes]]


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1; ``handle`` answers each POST; counts requests."""

    def __init__(self, handle: Handle) -> None:
        self.handle = handle
        self.n_requests = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer._lock:
                    outer.n_requests += 1
                try:
                    status, headers, payload = outer.handle(self.path, dict(self.headers), body)
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its timeout): nothing to answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class VersionHeaderProxy(LoopbackServer):
    """Forwards to ``upstream`` (e.g. http://127.0.0.1:8000) and adds ``header: self.version``."""

    def __init__(self, upstream: str, header: str, version: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.header = header
        self.version = version
        self._client = httpx.Client(timeout=120.0)
        super().__init__(self._forward)

    def _forward(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        resp = self._client.post(
            self.upstream + path, content=body, headers={"Content-Type": "application/json"}
        )
        return resp.status_code, {"Content-Type": "application/json", self.header: self.version}, resp.content

    def close(self) -> None:
        super().close()
        self._client.close()
