"""The OpenAI-compatible source against a real HTTP server on loopback (no patched client)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from collector.config import Decoding, OpenAISourceConfig
from collector.sources.base import SampleRequest, SourceError
from collector.sources.openai import OpenAISource, TokenBucket, endpoint_url, parse_retry_after

KEY = "sk-test-SECRET-123456"


@dataclass
class Reply:
    status: int = 200
    body: bytes | dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


def ok_body(text: str = "hello", model: str = "m-served") -> dict[str, Any]:
    return {
        "model": model,
        "choices": [
            {"message": {"role": "assistant", "content": text}, "text": text, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 5},
    }


Behaviour = Callable[[int, dict[str, Any]], Reply]


class FakeServer:
    """A threaded HTTP server; ``behaviour(n, body)`` decides the reply to the n-th request."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.times: list[float] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with server.lock:
                    n = len(server.requests)
                    server.requests.append((self.path, dict(self.headers), body))
                    server.times.append(time.monotonic())
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    reply = server.behaviour(n, body)
                    if reply.delay:
                        time.sleep(reply.delay)
                    raw = reply.body if reply.body is not None else ok_body()
                    payload = raw if isinstance(raw, bytes) else json.dumps(raw).encode()
                    self.send_response(reply.status)
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with server.lock:
                        server.in_flight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[[Behaviour], FakeServer]]:
    servers: list[FakeServer] = []

    def start(behaviour: Behaviour) -> FakeServer:
        s = FakeServer(behaviour)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.close()


def make_source(base_url: str, **kw: Any) -> OpenAISource:
    opts = {k: kw.pop(k) for k in ("version", "version_from") if k in kw}
    cfg = OpenAISourceConfig(type="openai", base_url=base_url, model="served-model", **kw)
    return OpenAISource(cfg, backoff_base=0.01, backoff_cap=0.05, **opts)


def requests(n_prompts: int = 2, k: int = 2) -> list[SampleRequest]:
    return [SampleRequest(f"p{i}", f"prompt {i}", j) for i in range(n_prompts) for j in range(k)]


DEC = Decoding(temperature=0.7, top_p=0.9, max_tokens=32, seed=100, stop=["\n\n"])


def test_happy_path_sends_what_the_config_says(serve, monkeypatch) -> None:
    monkeypatch.setenv("CW_TEST_KEY", KEY)
    srv = serve(lambda n, body: Reply(body=ok_body(f"out-{body['messages'][0]['content']}")))
    src = make_source(srv.base_url, api_key_env="CW_TEST_KEY", headers={"X-Team": "ml"}, version="v1")
    progress: list[tuple[int, int]] = []
    outs = list(src.sample(requests(), DEC, progress=lambda d, t: progress.append((d, t))))
    src.close()

    assert len(outs) == 4 and all(o.ok for o in outs)
    assert {(o.prompt_id, o.sample_index) for o in outs} == {(f"p{i}", j) for i in range(2) for j in range(2)}
    o = next(o for o in outs if o.prompt_id == "p1")
    assert o.output == "out-prompt 1"
    assert (o.prompt_tokens, o.completion_tokens, o.finish_reason) == (3, 5, "stop")
    assert o.model_reported == "m-served" and o.version == "v1"
    assert o.latency_seconds is not None and o.latency_seconds >= 0
    assert progress[-1] == (4, 4)

    path, headers, body = srv.requests[0]
    assert path == "/v1/chat/completions"
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert headers["X-Team"] == "ml"
    assert body["model"] == "served-model"
    assert body["messages"][0]["role"] == "user"
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["stop"]) == (0.7, 0.9, 32, ["\n\n"])
    # each sample gets its own seed, otherwise k samples would be identical
    seeds = sorted(b["seed"] for _, _, b in srv.requests if b["messages"][0]["content"] == "prompt 0")
    assert seeds == [100, 101]


def test_completions_endpoint_and_base_url_without_v1(serve) -> None:
    srv = serve(lambda n, body: Reply(body={"model": "m", "choices": [{"text": body["prompt"] + "!"}]}))
    src = make_source(f"http://127.0.0.1:{srv.port}", endpoint="completions")
    [o] = list(src.sample([SampleRequest("a", "hi", 0)], Decoding()))
    assert o.output == "hi!" and srv.requests[0][0] == "/v1/completions"
    assert "messages" not in srv.requests[0][2]


def test_429_with_retry_after_is_honoured(serve) -> None:
    srv = serve(
        lambda n, body: Reply(429, {"error": "slow down"}, {"Retry-After": "1"}) if n == 0 else Reply()
    )
    src = make_source(srv.base_url, max_retries=2)
    [o] = list(src.sample([SampleRequest("a", "x", 0)], Decoding()))
    assert o.ok and len(srv.requests) == 2
    assert srv.times[1] - srv.times[0] >= 0.95


def test_500s_then_success(serve) -> None:
    srv = serve(lambda n, body: Reply(500, b"boom") if n < 3 else Reply())
    src = make_source(srv.base_url, max_retries=4)
    [o] = list(src.sample([SampleRequest("a", "x", 0)], Decoding()))
    assert o.ok and o.output == "hello" and len(srv.requests) == 4


def test_permanent_500_becomes_error_outcomes_without_the_key(serve, monkeypatch) -> None:
    monkeypatch.setenv("CW_TEST_KEY", KEY)
    # a server that echoes the credentials back in its error page must not leak them
    srv = serve(lambda n, body: Reply(503, f"overloaded; you sent Bearer {KEY}".encode()))
    src = make_source(srv.base_url, max_retries=2, api_key_env="CW_TEST_KEY")
    outs = list(src.sample(requests(1, 2), Decoding()))
    assert len(outs) == 2 and not any(o.ok for o in outs)
    for o in outs:
        assert o.error is not None
        assert o.error.startswith(
            f"HTTP 503 from {srv.base_url}/chat/completions after 2 retries: overloaded"
        )
        assert KEY not in o.error and "***" in o.error
    assert len(srv.requests) == 6  # 1 + 2 retries each


def test_client_error_is_not_retried(serve) -> None:
    srv = serve(lambda n, body: Reply(400, {"error": "bad max_tokens"}))
    src = make_source(srv.base_url, max_retries=3)
    [o] = list(src.sample([SampleRequest("a", "x", 0)], Decoding()))
    assert o.error is not None and "HTTP 400" in o.error and "bad max_tokens" in o.error
    assert len(srv.requests) == 1


def test_slow_server_times_out(serve) -> None:
    srv = serve(lambda n, body: Reply(delay=2.0))
    src = make_source(srv.base_url, timeout_seconds=0.3, max_retries=1)
    t0 = time.monotonic()
    [o] = list(src.sample([SampleRequest("a", "x", 0)], Decoding()))
    assert o.error is not None and o.error.startswith("timeout from") and "0.3s" in o.error
    assert time.monotonic() - t0 < 1.9


def test_malformed_json_is_an_error_outcome(serve) -> None:
    srv = serve(lambda n, body: Reply(body=b'{"choices": [ {"message": '))
    src = make_source(srv.base_url, max_retries=0)
    [o] = list(src.sample([SampleRequest("a", "x", 0)], Decoding()))
    assert o.output is None and o.error is not None and "malformed JSON" in o.error


def test_response_without_text_is_an_error_outcome(serve) -> None:
    srv = serve(lambda n, body: Reply(body={"choices": []}))
    src = make_source(srv.base_url)
    [o] = list(src.sample([SampleRequest("a", "x", 0)], Decoding()))
    assert o.error is not None and "no choices" in o.error


def test_connection_refused_fails_fast() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    src = make_source(f"http://127.0.0.1:{port}/v1", max_retries=2)
    t0 = time.monotonic()
    outs = list(src.sample(requests(2, 2), Decoding()))
    assert time.monotonic() - t0 < 3
    assert len(outs) == 4
    assert all(
        o.error and o.error.startswith("connection error from") and "after 2 retries" in o.error for o in outs
    )


def test_concurrency_bound(serve) -> None:
    srv = serve(lambda n, body: Reply(delay=0.1))
    src = make_source(srv.base_url, concurrency=3)
    outs = list(src.sample(requests(4, 3), Decoding()))
    assert len(outs) == 12 and all(o.ok for o in outs)
    assert srv.max_in_flight == 3


def test_version_from_header_and_from_model(serve) -> None:
    srv = serve(
        lambda n, body: Reply(body=ok_body(model="llama-3-ft-2024-06"), headers={"X-Model-Version": "2.1"})
    )
    by_header = make_source(srv.base_url, version_from="header:X-Model-Version", version="ignored")
    [o] = list(by_header.sample([SampleRequest("a", "x", 0)], Decoding()))
    assert o.version == "2.1"
    by_model = make_source(srv.base_url, version_from="response_model")
    [o] = list(by_model.sample([SampleRequest("a", "x", 0)], Decoding()))
    assert o.version == "llama-3-ft-2024-06"


def test_rate_limit_is_respected(serve) -> None:
    srv = serve(lambda n, body: Reply())
    src = make_source(srv.base_url, concurrency=4, rate_limit_per_second=10)
    t0 = time.monotonic()
    outs = list(src.sample(requests(4, 2), Decoding()))
    assert all(o.ok for o in outs)
    assert time.monotonic() - t0 >= 0.65  # 8 requests, 1 immediately, 7 more at 10/s
    gaps = [b - a for a, b in zip(srv.times, srv.times[1:], strict=False)]
    assert sum(gaps) / len(gaps) >= 0.085


def test_missing_api_key_variable_is_a_config_error(monkeypatch) -> None:
    monkeypatch.delenv("CW_NOT_SET", raising=False)
    with pytest.raises(SourceError, match="CW_NOT_SET"):
        make_source("http://127.0.0.1:1/v1", api_key_env="CW_NOT_SET")


def test_parse_retry_after() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=5), usegmt=True), now) == pytest.approx(
        5
    )
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_token_bucket_spacing() -> None:
    bucket = TokenBucket(20)
    t0 = time.monotonic()
    for _ in range(6):
        bucket.acquire()
    assert time.monotonic() - t0 >= 0.24


def test_endpoint_url() -> None:
    assert endpoint_url("http://h:8000/v1/", "chat") == "http://h:8000/v1/chat/completions"
    assert endpoint_url("http://h:8000", "completions") == "http://h:8000/v1/completions"
