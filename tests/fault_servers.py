"""A loopback OpenAI-compatible server that misbehaves on purpose (issue #11's fault suite).

``FaultServer(mode)`` answers ``POST /v1/chat/completions``:

* ``ok``     a normal chat completion whose content varies per request;
* ``empty``  a normal completion with ``content: ""``;
* ``drip``   status 200 and headers at once, then the body one byte every ``drip_seconds``;
* ``hang``   reads the request and never answers.

It records every request's ``Authorization`` header (to check what key was really sent).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FaultServer:
    def __init__(
        self, mode: str, drip_seconds: float = 0.5, on_request: Callable[[int], None] | None = None
    ) -> None:
        self.mode = mode
        self.on_request = on_request  # called with the request's number before it is answered
        self.drip_seconds = drip_seconds
        self.auth: list[str | None] = []
        self.n = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer._lock:
                    outer.n += 1
                    outer.auth.append(self.headers.get("Authorization"))
                    n = outer.n
                if outer.on_request is not None:
                    outer.on_request(n)
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up
                    outer._answer(self, n)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _answer(self, h: BaseHTTPRequestHandler, n: int) -> None:
        if self.mode == "hang":
            self._closing.wait(600)
            return
        content = "" if self.mode == "empty" else f"answer {n} with some words {n * 7 % 13}"
        body = json.dumps(
            {
                "model": "fault",
                "choices": [{"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 5},
            }
        ).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if self.mode != "drip":
            h.wfile.write(body)
            return
        h.wfile.flush()
        for b in body:
            if self._closing.wait(self.drip_seconds):
                return
            h.wfile.write(bytes([b]))
            h.wfile.flush()

    def close(self) -> None:
        self._closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def wait_for(predicate, timeout: float, step: float = 0.1) -> bool:  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until true or ``timeout`` seconds passed."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())
