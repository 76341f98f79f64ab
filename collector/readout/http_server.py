"""The HTTP server under the collector's endpoints: routes with their access rule, authentication,
and a server built for an untrusted network (``collector.readout.server`` mounts the endpoints).

Each ``Route`` declares its access (docs/security.md):

* ``read``  -- open, unless the web config file has ``basic_auth_users`` (then basic auth);
* ``write`` -- a bearer token (``alert_receiver.bearer_token_env``) or the web config's basic auth;
  with neither configured, only clients on the loopback interface;
* ``open``  -- never authenticated (health probes).

The server is built for an untrusted network: TLS from the exporter-toolkit web config file
(``collector.web_config``), a listen backlog of ``BACKLOG``, and a total deadline of
``READ_TIMEOUT`` seconds for the TLS handshake, the request line, the headers and the body together
(a client dripping bytes is cut at the deadline, never holding a thread longer).  A connection holds
no worker until its request line and headers are in: one thread (``_HeaderReader``) reads the
handshake and headers of every new connection without blocking, closes one that has not sent them
within ``HEADER_TIMEOUT`` seconds (or sends more than ``MAX_HEADER`` bytes: 431), and keeps at most
``PER_CLIENT`` such connections per client IP and ``MAX_WAITING`` in all (a new one evicts the
oldest), so idle or slow sockets never starve a scrape or a health probe.  Complete requests go to
a bounded pool of ``WORKERS`` threads with a queue of ``QUEUE`` (beyond it: 503 at once).
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import json
import logging
import selectors
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal

from collector.credentials import TokenFile
from collector.web_config import BasicAuth, bearer_matches

log = logging.getLogger("collapse_watch.http")
READ_TIMEOUT = 10.0  # seconds for handshake + request line + headers + body, in total
WORKERS = 8  # requests handled at once
QUEUE = 32  # accepted connections waiting for a worker; beyond: 503 at once
BACKLOG = 128  # the kernel's listen queue
HEADER_TIMEOUT = 5.0  # seconds a connection may take to send its request line and headers
MAX_HEADER = 16 * 1024  # bytes of request line + headers; beyond: 431
PER_CLIENT = 16  # connections of one client IP still sending headers; a new one evicts the oldest
MAX_WAITING = 512  # connections of all clients still sending headers; a new one evicts the oldest

Access = Literal["read", "write", "open"]


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    client: str


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, data: dict[str, Any], **headers: str) -> Response:
        return cls(status, json.dumps(data).encode(), headers=headers)


@dataclass(frozen=True)
class Route:
    """One endpoint: ``handler(request)`` for ``method path``, with its access rule and body limit."""

    method: str
    path: str
    handler: Callable[[Request], Response]
    access: Access = "read"
    max_body: int = 0


@dataclass(frozen=True)
class Auth:
    """Who may call what: the web config's basic-auth users and the receiver's bearer token."""

    basic: BasicAuth | None = None
    bearer_token: str | TokenFile | None = None  # a TokenFile is re-read when its file changes

    def token(self) -> str | None:
        t = self.bearer_token
        return t.current() if isinstance(t, TokenFile) else t

    def allows(self, access: Access, request: Request) -> bool:
        header = request.headers.get("authorization")
        if access == "open":
            return True
        if access == "read":
            return not self.basic or self.basic.check(header)
        token = self.token()
        if token and bearer_matches(header, token):
            return True
        if self.basic:
            return self.basic.check(header)
        return not token and is_loopback(request.client)

    def challenge(self, access: Access) -> dict[str, str]:
        """The 401's ``WWW-Authenticate``: the schemes that would be accepted for ``access``."""
        schemes = []
        if access == "write" and self.bearer_token is not None:
            schemes.append('Bearer realm="collapse-watch"')
        if self.basic:
            schemes.append('Basic realm="collapse-watch"')
        return {"WWW-Authenticate": ", ".join(schemes)} if schemes else {}


def is_loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


class _Deadline:
    """Shuts a connection's socket once its total read deadline passes (unblocks any recv)."""

    def __init__(self, sock: socket.socket, seconds: float) -> None:
        self.expired = False
        self._timer = threading.Timer(seconds, self._expire, args=(sock,))
        self._timer.daemon = True
        self._timer.start()

    def _expire(self, sock: socket.socket) -> None:
        self.expired = True
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()


class _Prefixed(io.RawIOBase):
    """Bytes already read from a connection, then the rest of it."""

    def __init__(self, prefix: bytes, rest: Any) -> None:
        self.prefix, self.rest = prefix, rest

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self.prefix:
            n = min(len(b), len(self.prefix))
            b[:n] = self.prefix[:n]
            self.prefix = self.prefix[n:]
            return n
        return int(self.rest.readinto1(b) or 0)  # what is there: never wait to fill ``b``


@dataclass(eq=False)
class _Waiting:
    sock: Any
    addr: Any
    client: str
    since: float
    buf: bytes = b""
    handshaken: bool = False


class _HeaderReader(threading.Thread):
    """Reads the TLS handshake, request line and headers of every new connection without blocking
    (one thread, a selector), then hands the complete request to the server's worker pool."""

    def __init__(self, server: HttpServer) -> None:
        super().__init__(daemon=True, name="metrics-http-headers")
        self.server = server
        self.sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._new: list[_Waiting] = []
        self._lock = threading.Lock()
        self.waiting: dict[_Waiting, None] = {}  # oldest first
        self._stopping = threading.Event()

    def add(self, sock: Any, addr: Any) -> None:
        client = addr[0] if isinstance(addr, tuple) else ""
        with self._lock:
            self._new.append(_Waiting(sock, addr, client, time.monotonic()))
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def close(self) -> None:
        self.sel.close()
        self._wake_r.close()
        self._wake_w.close()

    def stop(self) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def run(self) -> None:
        try:
            while not self._stopping.is_set():
                for key, _ in self.sel.select(timeout=0.25):
                    if key.data is None:
                        with contextlib.suppress(OSError):
                            self._wake_r.recv(4096)
                        with self._lock:
                            new, self._new = self._new, []
                        for w in new:
                            self._admit(w)
                    else:
                        self._read(key.data)
                self._expire()
        finally:
            for w in list(self.waiting):
                self._drop(w)
            with self._lock:
                new, self._new = self._new, []
            for w in new:
                self.server.shutdown_request(w.sock)
            self.sel.close()
            self._wake_r.close()
            self._wake_w.close()

    def _admit(self, w: _Waiting) -> None:
        same = [x for x in self.waiting if x.client == w.client]
        if len(same) >= self.server.per_client:
            self._drop(same[0])  # the client's oldest idle connection makes room for its newest
        if len(self.waiting) >= self.server.max_waiting:
            self._drop(next(iter(self.waiting)))
        try:
            w.sock.setblocking(False)
            self.sel.register(w.sock, selectors.EVENT_READ, w)
        except (OSError, ValueError):
            self.server.shutdown_request(w.sock)
            return
        self.waiting[w] = None

    def _drop(self, w: _Waiting) -> None:
        self.waiting.pop(w, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.sel.unregister(w.sock)
        self.server.shutdown_request(w.sock)

    def _expire(self) -> None:
        end = time.monotonic() - self.server.header_timeout
        for w in [x for x in self.waiting if x.since < end]:
            self._drop(w)

    def _read(self, w: _Waiting) -> None:
        try:
            if isinstance(w.sock, ssl.SSLSocket) and not w.handshaken:
                w.sock.do_handshake()
                w.handshaken = True
            while True:
                data = w.sock.recv(MAX_HEADER + 1 - len(w.buf))
                if not data:
                    return self._drop(w)
                w.buf += data
                if not (isinstance(w.sock, ssl.SSLSocket) and w.sock.pending()):
                    break
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            return None
        except OSError:
            return self._drop(w)
        if b"\r\n\r\n" in w.buf or b"\n\n" in w.buf:
            self.waiting.pop(w, None)
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(w.sock)
            w.sock.setblocking(True)
            remaining = max(0.1, self.server.read_timeout - (time.monotonic() - w.since))
            self.server.dispatch(w.sock, w.addr, w.buf, remaining)
        elif len(w.buf) > MAX_HEADER:
            with contextlib.suppress(OSError):
                w.sock.setblocking(True)
                w.sock.settimeout(1.0)
                w.sock.sendall(
                    b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n"
                    b"Connection: close\r\n\r\n"
                )
            self._drop(w)
        return None


class _Handler(BaseHTTPRequestHandler):
    server: HttpServer
    protocol_version = "HTTP/1.1"
    server_version = "collapse-watch"
    sys_version = ""

    def setup(self) -> None:
        prefix, remaining = getattr(self.server._local, "pending", (b"", self.server.read_timeout))
        self.request.settimeout(remaining)
        self.deadline = _Deadline(self.request, remaining)
        if isinstance(self.request, ssl.SSLSocket) and not prefix:
            self.request.do_handshake()  # a connection not read by the header reader (tests)
        super().setup()
        if prefix:  # the request line and headers the header reader already took off the socket
            self.rfile = io.BufferedReader(_Prefixed(prefix, self.rfile))

    def finish(self) -> None:
        self.deadline.cancel()
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _dispatch(self) -> None:
        self.close_connection = True  # one request per connection: a worker is never parked
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        routes = [r for r in self.server.routes if r.path == path]
        route = next((r for r in routes if r.method == self.command), None)
        if not routes:
            return self._send(Response.json(404, {"error": f"no such endpoint; try {self.server.paths}"}))
        if route is None:
            allow = ", ".join(r.method for r in routes)
            return self._send(Response.json(405, {"error": f"use {allow}"}, Allow=allow))
        headers = {k.lower(): v for k, v in self.headers.items()}
        client = self.client_address[0] if isinstance(self.client_address, tuple) else ""
        probe = Request(self.command, path, headers, b"", client)
        if not self.server.auth.allows(route.access, probe):
            challenge = self.server.auth.challenge(route.access)
            return self._send(Response.json(401, {"error": "authentication required"}, **challenge))
        body = b""
        if route.max_body:
            if "chunked" in headers.get("transfer-encoding", "").lower():
                return self._send(Response.json(411, {"error": "send a Content-Length"}))
            try:
                size = int(headers.get("content-length", ""))
            except ValueError:
                size = -1
            if size <= 0 or size > route.max_body:
                return self._send(Response.json(400, {"error": f"body must be 1..{route.max_body} bytes"}))
            body = self.rfile.read(size)
            if len(body) < size:
                return  # the client went away, or the deadline cut it: nothing to answer
        self.deadline.cancel()  # the request is read; answering may take as long as it takes
        try:
            response = route.handler(Request(self.command, path, headers, body, client))
        except Exception:
            log.exception("%s %s failed", self.command, path)
            response = Response.json(500, {"error": "internal error"})
        self._send(response)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _dispatch

    def _send(self, response: Response) -> None:
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            self.send_header("Connection", "close")
            for k, v in {**self.server.extra_headers, **response.headers}.items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
        except OSError:
            pass


class HttpServer(socketserver.TCPServer):
    """A TCP server with a bounded worker pool, a read deadline and optional TLS."""

    allow_reuse_address = True
    request_queue_size = BACKLOG
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        routes: list[Route],
        *,
        auth: Auth | None = None,
        tls: ssl.SSLContext | None = None,
        extra_headers: dict[str, str] | None = None,
        read_timeout: float = READ_TIMEOUT,
        workers: int = WORKERS,
        queue: int = QUEUE,
        header_timeout: float = HEADER_TIMEOUT,
        per_client: int = PER_CLIENT,
        max_waiting: int = MAX_WAITING,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.routes = routes
        self.paths = ", ".join(sorted({r.path for r in routes}))
        self.auth = auth or Auth()
        self.tls = tls
        self.extra_headers = extra_headers or {}
        self.read_timeout = read_timeout
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="metrics-http")
        self._slots = threading.BoundedSemaphore(workers + queue)
        self.header_timeout = min(header_timeout, read_timeout)
        self.per_client = per_client
        self.max_waiting = max_waiting
        self._local = threading.local()
        self._headers = _HeaderReader(self)  # before binding: a failed bind calls server_close
        super().__init__(address, _Handler)
        self._headers.start()

    @property
    def server_port(self) -> int:
        return int(self.server_address[1])

    def url(self, path: str = "/metrics", host: str | None = None) -> str:
        """Where ``path`` is served: ``https://`` when TLS is on, the listening address unless ``host``."""
        host = host or str(self.server_address[0])
        if ":" in host:
            host = f"[{host}]"
        return f"{'https' if self.tls is not None else 'http'}://{host}:{self.server_port}{path}"

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = self.socket.accept()
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def process_request(self, request: Any, client_address: Any) -> None:
        self._headers.add(request, client_address)  # no worker until its headers are in

    def dispatch(self, request: Any, client_address: Any, prefix: bytes, remaining: float) -> None:
        """A connection whose request line and headers (``prefix``) are read: to a worker."""
        if not self._slots.acquire(blocking=False):
            self._busy(request)
            return
        try:
            self._pool.submit(self._work, request, client_address, prefix, remaining)
        except RuntimeError:  # shutting down
            self._slots.release()
            self.shutdown_request(request)

    def _work(self, request: Any, client_address: Any, prefix: bytes = b"", remaining: float = 0) -> None:
        self._local.pending = (prefix, remaining or self.read_timeout)
        try:
            self.finish_request(request, client_address)
        except Exception as exc:  # a reset, a failed handshake, a cut deadline: the client's problem
            log.debug("connection from %s ended: %s", client_address, exc)
        finally:
            self.shutdown_request(request)
            self._slots.release()

    def _busy(self, request: Any) -> None:
        try:
            if not isinstance(request, ssl.SSLSocket):
                request.settimeout(1.0)
                request.sendall(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n"
                    b"Retry-After: 1\r\n\r\n"
                )
        except OSError:
            pass
        self.shutdown_request(request)

    def server_close(self) -> None:
        self._headers.stop()
        if not self._headers.is_alive():  # never started (the bind failed): close what it holds
            self._headers.close()
        super().server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)
