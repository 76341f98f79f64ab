"""The collector's HTTP server on an untrusted network (issue #22), real sockets on loopback.

Basic auth from an exporter-toolkit web config (bcrypt), TLS from a certificate made by ``openssl``,
the bearer token of ``POST /alerts``, the loopback-only rule without credentials, a slow body cut at
the total read deadline, 503 when the bounded pool is full; the receiver stores what can never fit
(cut, sanitised, objects kept as JSON) on SQLite and PostgreSQL and answers 400, never 500, for
a body nested too deeply; every encoding of a credential is redacted; an over-long log line is
quarantined with its reason.
"""

from __future__ import annotations

import base64
import http.client
import json
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from store_helpers import migrated_store

from collector.readout.http_server import Auth, HttpServer, Request, Response, Route
from collector.readout.server import serve_store_metrics
from collector.redaction import redact
from collector.store.alerts import AlertHistory
from collector.web_config import BasicAuth, WebConfigError, load_web_config
from tests.test_alert_history import notification


def call(
    url: str, body: bytes | None = None, headers: dict[str, str] | None = None, ctx: Any = None
) -> tuple[int, bytes]:
    req = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req, timeout=10, context=ctx) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def web_config(tmp_path: Path, **extra: Any) -> Path:
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode().replace("$2b$", "$2y$")
    doc = {"basic_auth_users": {"prometheus": hashed}, **extra}
    path = tmp_path / "web.yml"
    path.write_text(json.dumps(doc))
    return path


def test_basic_auth_protects_metrics_and_alerts(tmp_path: Path) -> None:
    store = migrated_store(f"sqlite:///{tmp_path / 's.db'}")
    web = load_web_config(web_config(tmp_path))
    srv = serve_store_metrics(store, host="127.0.0.1", port=0, web=web, alerts_token="tok-123456")
    base = f"http://127.0.0.1:{srv.server_port}"
    try:
        assert call(f"{base}/metrics")[0] == 401
        assert call(f"{base}/metrics", headers=basic("prometheus", "wrong"))[0] == 401
        status, body = call(f"{base}/metrics", headers=basic("prometheus", "s3cret"))
        assert status == 200 and b"collapse_watch_up" in body
        payload = json.dumps(notification("firing")).encode()
        assert call(f"{base}/alerts", payload)[0] == 401  # loopback is not enough once credentials exist
        assert call(f"{base}/alerts", payload, {"Authorization": "Bearer nope"})[0] == 401
        assert call(f"{base}/alerts", payload, {"Authorization": "Bearer tok-123456"})[0] == 200
        assert call(f"{base}/alerts", payload, basic("prometheus", "s3cret"))[0] == 200
        assert call(f"{base}/nowhere")[0] == 404 and call(f"{base}/metrics", b"x")[0] == 405
    finally:
        srv.shutdown()
        srv.server_close()


def challenge(url: str, body: bytes | None = None) -> str | None:
    """The ``WWW-Authenticate`` header of a 401 (None when there is none)."""
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=10)
    assert info.value.code == 401
    return info.value.headers.get("WWW-Authenticate")


def test_a_401_names_the_scheme_that_applies(tmp_path: Path) -> None:
    """Only a bearer token configured: POST /alerts' 401 asks for Bearer, not Basic (a client would
    otherwise prompt for a user name); with basic auth too, both; /metrics under basic auth: Basic."""
    store = migrated_store(f"sqlite:///{tmp_path / 's.db'}")
    payload = json.dumps(notification("firing")).encode()
    srv = serve_store_metrics(store, host="127.0.0.1", port=0, alerts_token="tok-123456")
    try:
        # once a token is configured, loopback alone is not enough: the token is missing here
        assert (
            challenge(f"http://127.0.0.1:{srv.server_port}/alerts", payload)
            == 'Bearer realm="collapse-watch"'
        )
    finally:
        srv.shutdown()
        srv.server_close()
    web = load_web_config(web_config(tmp_path))
    srv = serve_store_metrics(store, host="127.0.0.1", port=0, web=web, alerts_token="tok-123456")
    try:
        base = f"http://127.0.0.1:{srv.server_port}"
        assert (
            challenge(f"{base}/alerts", payload)
            == 'Bearer realm="collapse-watch", Basic realm="collapse-watch"'
        )
        assert challenge(f"{base}/metrics") == 'Basic realm="collapse-watch"'
    finally:
        srv.shutdown()
        srv.server_close()


def test_without_credentials_only_loopback_clients_may_post() -> None:
    auth = Auth()
    assert auth.allows("write", Request("POST", "/alerts", {}, b"", "127.0.0.1"))
    assert auth.allows("write", Request("POST", "/alerts", {}, b"", "::ffff:127.0.0.1"))
    assert not auth.allows("write", Request("POST", "/alerts", {}, b"", "10.1.2.3"))
    assert auth.allows("read", Request("GET", "/metrics", {}, b"", "10.1.2.3"))  # read-only stays open


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_tls_from_the_web_config(tmp_path: Path) -> None:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-keyout", str(tmp_path / "k.pem"), "-out", str(tmp_path / "c.pem")],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    path = web_config(tmp_path, tls_server_config={"cert_file": "c.pem", "key_file": "k.pem"})
    store = migrated_store(f"sqlite:///{tmp_path / 's.db'}")
    srv = serve_store_metrics(store, host="127.0.0.1", port=0, web=load_web_config(path))
    try:
        ctx = ssl.create_default_context(cafile=str(tmp_path / "c.pem"))
        ctx.check_hostname = False
        status, body = call(
            f"https://127.0.0.1:{srv.server_port}/metrics", headers=basic("prometheus", "s3cret"), ctx=ctx
        )
        assert status == 200 and b"collapse_watch_up" in body
        with pytest.raises((OSError, http.client.HTTPException)):  # plain HTTP to a TLS listener gets nothing
            urllib.request.urlopen(f"http://127.0.0.1:{srv.server_port}/metrics", timeout=5).read()
    finally:
        srv.shutdown()
        srv.server_close()
    with pytest.raises(WebConfigError, match="no such file"):
        load_web_config(web_config(tmp_path, tls_server_config={"cert_file": "x.pem", "key_file": "k.pem"}))
    bad = tmp_path / "bad.yml"
    bad.write_text("basic_auth_users: {u: plaintext}\nbasic_auth_user: {}\n")
    with pytest.raises(WebConfigError, match="basic_auth_user"):
        load_web_config(bad)


def test_a_slow_body_is_cut_at_the_deadline_and_a_full_pool_answers_503() -> None:
    def slow(_r: Request) -> Response:
        time.sleep(1.5)
        return Response(200, b"ok", "text/plain")

    routes = [
        Route("POST", "/in", lambda r: Response(200, r.body, "text/plain"), "open", 100),
        Route("GET", "/slow", slow, "open"),
    ]
    srv = HttpServer(("127.0.0.1", 0), routes, read_timeout=1.0, workers=1, queue=0)
    import threading

    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        with socket.create_connection(("127.0.0.1", srv.server_port)) as s:
            s.sendall(b"POST /in HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\nab")
            t0 = time.monotonic()
            for _ in range(6):  # drip a byte every 0.3 s: per-read timeouts would never fire
                time.sleep(0.3)
                try:
                    s.sendall(b"c")
                except OSError:
                    break
            s.settimeout(5)
            try:
                data = s.recv(100)
            except OSError:
                data = b""
            assert data == b"" and time.monotonic() - t0 < 3.0  # closed at the 1 s deadline
        # one worker, no queue: a second connection while it is busy is answered 503 at once
        results: list[int] = []
        t = threading.Thread(
            target=lambda: results.append(call(f"http://127.0.0.1:{srv.server_port}/slow")[0])
        )
        t.start()
        time.sleep(0.3)
        assert call(f"http://127.0.0.1:{srv.server_port}/slow")[0] == 503
        t.join()
        assert results == [200]
    finally:
        srv.shutdown()
        srv.server_close()


def test_the_receiver_stores_what_can_never_fit_and_never_answers_500(db_url: str) -> None:
    store = migrated_store(db_url)
    srv = serve_store_metrics(store, host="127.0.0.1", port=0)
    url = f"http://127.0.0.1:{srv.server_port}/alerts"
    try:
        body = notification("firing")
        alert = body["alerts"][0]
        alert["labels"]["version"] = "v" * 5000  # longer than its column (200)
        alert["labels"]["alertname"] = "Nul\x00Name \ud800"
        alert["annotations"]["summary"] = {"an": ["object", "where", "text", "was", "expected"]}
        alert["startsAt"] = "not a time"
        assert call(url, json.dumps(body).encode()) == (200, b'{"stored": 1}')
        (event,) = AlertHistory(store.engine).recent("bot")
        assert len(event.version) == 200 and event.version.endswith("…")
        assert event.alertname == "Nul\ufffdName \ufffd" and event.starts_at is None
        assert json.loads(event.summary) == {"an": ["object", "where", "text", "was", "expected"]}
        deep = b"[" * 100_000 + b"]" * 100_000
        status, answer = call(url, deep)
        assert status == 400 and b"nested too deeply" in answer
    finally:
        srv.shutdown()
        srv.server_close()


def test_every_encoding_of_a_secret_is_redacted() -> None:
    key = "sk-live/abc+def=123456"
    cases = [
        f"echo {key}",
        json.dumps({"error": f"bad key {key}"}),
        json.dumps({"e": key}).replace("/", "\\/"),
        f"url?key={urllib.parse.quote(key, safe='')}",
        f"url?key={urllib.parse.quote_plus(key, safe='').lower()}",
        f"401: invalid key {key[:11]}",  # cut at the snippet's end
        f"b'Bearer {key}\\n'",
    ]
    for text in cases:
        out = redact(text, [key + "\n"])
        assert "abc" not in out and "***" in out, (text, out)
    assert redact("nothing secret here", [key]) == "nothing secret here"


def test_basic_auth_caches_successes_only() -> None:
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    auth = BasicAuth({"u": hashed})
    header = "Basic " + base64.b64encode(b"u:pw").decode()
    assert auth.check(header) and auth.check(header)
    assert not auth.check("Basic " + base64.b64encode(b"u:no").decode())
    assert not auth.check("Basic !!!") and not auth.check(None)


def test_an_over_long_line_is_quarantined_with_its_size(tmp_path: Path) -> None:
    from collector.config import JsonlSourceConfig
    from collector.sources.jsonl import JsonlSource

    log = tmp_path / "app.log"
    big = json.dumps({"prompt": "p", "output": "y" * 5000})
    log.write_text(
        json.dumps({"prompt": "p", "output": "a"})
        + "\n"
        + big
        + "\n"
        + json.dumps({"prompt": "p", "output": "b"})
        + "\n"
    )
    src = JsonlSource(
        JsonlSourceConfig(type="jsonl", path=str(log), max_line_bytes=1024), state_file=tmp_path / "s.json"
    )
    out = list(src.pull())
    assert [o.output for o in out if o.ok] == ["a", "b"]
    (bad,) = [o for o in out if not o.ok]
    assert "over max_line_bytes (1024)" in (bad.error or "") and bad.location == f"{log}:2"
    assert len(bad.excerpt or "") <= 200
    assert list(src.pull()) == []  # position is past all three lines


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_serve_metrics_listens_where_its_config_says_with_tls_and_logs_https(tmp_path: Path) -> None:
    """`serve-metrics --config FILE` takes the config's metrics_port, metrics_host and
    web_config_file (no --port, --host or --web.config.file given), and its start-up line names
    the https:// address it serves."""
    import os
    import sys

    from ops_stack import free_port, wait_for

    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-keyout", str(tmp_path / "k.pem"), "-out", str(tmp_path / "c.pem")],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    web = tmp_path / "web.yml"
    web.write_text(json.dumps({"tls_server_config": {"cert_file": "c.pem", "key_file": "k.pem"}}))
    url = f"sqlite:///{tmp_path / 's.db'}"
    migrated_store(url)
    port = free_port()
    config = tmp_path / "config.yml"
    config.write_text(
        json.dumps(
            {
                "database_url": url,
                "metrics_host": "127.0.0.1",
                "metrics_port": port,
                "web_config_file": str(web),
            }
        )
    )
    log = tmp_path / "serve.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "collector", "serve-metrics", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
        env=dict(os.environ),
    )
    ctx = ssl.create_default_context(cafile=str(tmp_path / "c.pem"))
    ctx.check_hostname = False

    def healthy() -> bool:
        try:
            return call(f"https://127.0.0.1:{port}/healthz", ctx=ctx)[0] == 200
        except OSError:
            return False

    try:
        wait_for("serve-metrics on the config's port, over TLS", healthy, timeout=60)
        status, body = call(f"https://127.0.0.1:{port}/metrics", ctx=ctx)
        assert status == 200 and b"collapse_watch_up" in body
        wait_for("the start-up line", lambda: "serving " in log.read_text())
        assert f"serving https://127.0.0.1:{port}/metrics from " in log.read_text()
        assert "http://" not in log.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def closed_by_server(s: socket.socket) -> bool:
    """Whether the server closed ``s`` (waits at most 5 s for its end)."""
    s.settimeout(5)
    try:
        return s.recv(100) == b""
    except ConnectionResetError:
        return True
    except OSError:
        return False


def test_idle_and_slow_sockets_never_starve_scrapes_or_health(tmp_path: Path) -> None:
    """100 idle connections and 20 that send half a request, all from one client IP, against the
    real server with its default pool (8 workers + 32 queued): /metrics and /healthz still answer
    200 (before: 503 from the 41st idle socket on), and the server keeps at most PER_CLIENT of that
    client's header-less connections, closing the oldest."""
    from collector.readout.http_server import PER_CLIENT

    store = migrated_store(f"sqlite:///{tmp_path / 's.db'}")
    srv = serve_store_metrics(store, host="127.0.0.1", port=0)
    base = f"http://127.0.0.1:{srv.server_port}"
    held: list[socket.socket] = []
    try:
        for i in range(120):
            s = socket.create_connection(("127.0.0.1", srv.server_port))
            if i >= 100:
                s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # never finished
            held.append(s)
        status, body = call(f"{base}/metrics")
        assert status == 200 and b"collapse_watch_up" in body
        assert call(f"{base}/healthz")[0] == 200
        assert all(closed_by_server(s) for s in held[:50])  # the oldest were evicted
        open_now = [s for s in held[-PER_CLIENT:] if not _closed_now(s)]
        assert len(open_now) <= PER_CLIENT
    finally:
        for s in held:
            s.close()
        srv.shutdown()
        srv.server_close()


def _closed_now(s: socket.socket) -> bool:
    s.setblocking(False)
    try:
        return s.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_a_connection_that_sends_no_headers_is_closed_at_the_header_timeout() -> None:
    routes = [Route("GET", "/x", lambda r: Response(200, b"ok", "text/plain"), "open")]
    srv = HttpServer(("127.0.0.1", 0), routes, header_timeout=0.5, per_client=4)
    import threading

    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        with socket.create_connection(("127.0.0.1", srv.server_port)) as idle:
            assert closed_by_server(idle)
        with socket.create_connection(("127.0.0.1", srv.server_port)) as big:
            big.sendall(b"GET /x HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 20_000 + b"\r\n")
            big.settimeout(5)
            assert big.recv(100).startswith(b"HTTP/1.1 431")
        assert call(f"http://127.0.0.1:{srv.server_port}/x") == (200, b"ok")
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.mark.parametrize(
    ("headers", "says"),
    [
        ({"X-Evil": "a\r\nSet-Cookie: x=1"}, "control character U+000D"),
        ({"X-Evil": "a\nb"}, "control character U+000A"),
        ({"X-Nul": "a\x00b"}, "control character U+0000"),
        ({"Bad Name": "x"}, "not a valid HTTP field name"),
        ({"X-Split\r\nInjected": "x"}, "not a valid HTTP field name"),
        ({"Content-Type": "text/html"}, "set by the server itself"),
        ({"content-length": "0"}, "set by the server itself"),
        ({"Transfer-Encoding": "chunked"}, "set by the server itself"),
        ({"Connection": "keep-alive"}, "set by the server itself"),
    ],
)
def test_web_config_headers_that_would_break_the_response_are_refused_at_load(
    tmp_path: Path, headers: dict[str, str], says: str
) -> None:
    path = tmp_path / "web.yml"
    path.write_text(json.dumps({"http_server_config": {"headers": headers}}))
    with pytest.raises(WebConfigError) as info:
        load_web_config(path)
    assert str(info.value).startswith(f"{path}: http_server_config.headers:") and says in str(info.value)


def test_web_config_headers_that_are_fine_are_sent(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    path.write_text(
        json.dumps({"http_server_config": {"headers": {"X-Frame-Options": "deny", "X-Tab": "a\tb"}}})
    )
    web = load_web_config(path)
    assert dict(web.http_server_config.headers) == {"X-Frame-Options": "deny", "X-Tab": "a\tb"}


@pytest.mark.parametrize(
    ("doc", "says"),
    [
        ({"basic_auth_users": {}}, "basic_auth_users: Value error, basic_auth_users is empty"),
        ({"basic_auth_users": {"u": "$2y$10$tooshort"}}, "basic_auth_users: u: not a bcrypt hash"),
        ({"basic_auth_users": {"u": "$2y$99$" + "a" * 53}}, "basic_auth_users: u: not a bcrypt hash"),
        (
            {
                "tls_server_config": {
                    "cert_file": "c",
                    "key_file": "k",
                    "client_auth_type": "RequireAndVerifyClientCert",
                }
            },
            "tls_server_config: Value error, client_auth_type RequireAndVerifyClientCert needs client_ca_file",
        ),
    ],
)
def test_web_config_mistakes_are_named_with_file_and_key(
    tmp_path: Path, doc: dict[str, Any], says: str
) -> None:
    path = tmp_path / "web.yml"
    path.write_text(json.dumps(doc))
    with pytest.raises(WebConfigError) as info:
        load_web_config(path)
    assert str(info.value).startswith(f"{path}: ") and says in str(info.value), str(info.value)


def test_the_bearer_token_file_is_re_read_when_it_changes(tmp_path: Path) -> None:
    """The receiver's token file (a mounted Secret) rotated by replacing the file, as Kubernetes
    does: the new token is accepted and the old one refused, without a restart."""
    import os

    from collector.config import Config
    from collector.service import start_metrics_server

    token = tmp_path / "token"
    token.write_text("first-token-1111\n")
    store = migrated_store(f"sqlite:///{tmp_path / 's.db'}")
    cfg = Config.model_validate(
        {
            "database_url": f"sqlite:///{tmp_path / 's.db'}",
            "alert_receiver": {"bearer_token_file": str(token)},
        }
    )
    srv = start_metrics_server(store, cfg, host="127.0.0.1", port=0)
    url = f"http://127.0.0.1:{srv.server_port}/alerts"
    payload = json.dumps(notification("firing")).encode()
    try:
        assert call(url, payload, {"Authorization": "Bearer first-token-1111"})[0] == 200
        fresh = tmp_path / "token.new"
        fresh.write_text("second-token-2222\n")
        os.replace(fresh, token)  # a new file (inode) under the old name
        assert call(url, payload, {"Authorization": "Bearer second-token-2222"})[0] == 200
        assert call(url, payload, {"Authorization": "Bearer first-token-1111"})[0] == 401
        token.unlink()  # mid-rotation: missing for a moment; the last good token still works
        assert call(url, payload, {"Authorization": "Bearer second-token-2222"})[0] == 200
    finally:
        srv.shutdown()
        srv.server_close()


def served_subject(port: int, sni: bool) -> str:
    """The subject of the certificate a real ``openssl s_client`` is served (with or without SNI)."""
    res = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *(["-servername", "collector.example"] if sni else ["-noservername"])],
        input="", capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    subject = [line for line in res.stdout.splitlines() if line.startswith("subject=")]
    assert subject, res.stdout + res.stderr
    return subject[0]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_a_rotated_tls_certificate_is_served_without_a_restart(tmp_path: Path) -> None:
    """cert-manager renews the certificate in place: new connections get the new one (checked at
    most every 2 s), with and without SNI; a pair that does not load keeps the current one."""
    import os

    from collector.web_config import RELOAD_EVERY_SECONDS
    from tests.ops_stack import wait_for

    def make(cn: str, where: Path) -> None:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={cn}",
             "-keyout", str(where / "k.pem"), "-out", str(where / "c.pem")],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip

    make("first.example", tmp_path)
    path = web_config(tmp_path, tls_server_config={"cert_file": "c.pem", "key_file": "k.pem"})
    store = migrated_store(f"sqlite:///{tmp_path / 's.db'}")
    srv = serve_store_metrics(store, host="127.0.0.1", port=0, web=load_web_config(path))
    try:
        assert "first.example" in served_subject(srv.server_port, sni=True)
        (tmp_path / "c.pem").write_text("not a certificate")  # half-written: keep serving the old one
        end = time.monotonic() + 2.5 * RELOAD_EVERY_SECONDS  # a window in which the files are looked at
        while time.monotonic() < end:
            assert "first.example" in served_subject(srv.server_port, sni=True)
        new = tmp_path / "new"
        new.mkdir()
        make("second.example", new)
        os.replace(new / "k.pem", tmp_path / "k.pem")
        os.replace(new / "c.pem", tmp_path / "c.pem")
        wait_for("the new certificate", lambda: "second.example" in served_subject(srv.server_port, sni=True))
        assert "second.example" in served_subject(srv.server_port, sni=False)
        ctx = ssl.create_default_context(cafile=str(tmp_path / "c.pem"))  # trusts only the new one
        ctx.check_hostname = False
        status, _ = call(
            f"https://127.0.0.1:{srv.server_port}/metrics", headers=basic("prometheus", "s3cret"), ctx=ctx
        )
        assert status == 200
    finally:
        srv.shutdown()
        srv.server_close()
