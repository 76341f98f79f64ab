"""The web configuration file of the collector's HTTP server, in Prometheus' exporter-toolkit format.

The same file node_exporter and Prometheus take with ``--web.config.file`` (see docs/security.md)::

    tls_server_config:
      cert_file: server.crt          # relative paths: against this file's directory
      key_file: server.key
      client_ca_file: ca.crt         # optional: mutual TLS
      client_auth_type: RequireAndVerifyClientCert   # NoClientCert (default) | RequireAnyClientCert | ...
      min_version: TLS12             # TLS10..TLS13
    basic_auth_users:                # user: bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\\n')
      prometheus: $2y$10$...
    http_server_config:
      headers: {X-Frame-Options: deny}

``basic_auth_users`` protect every route that does not declare itself open (docs/security.md);
checking a bcrypt hash costs ~50 ms at cost 10, so successful checks are cached by the SHA-256 of
the credentials, as exporter-toolkit does.  Unknown keys are errors, so a typo never silently
leaves a listener open.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import ssl
import threading
import time
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from collector.config.schema import StrictModel

log = logging.getLogger("collapse_watch.http")

CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_OPTIONAL,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}


class WebConfigError(ValueError):
    """The web config file cannot be used; ``str()`` names the file and what is wrong."""


class TlsServerConfig(StrictModel):
    cert_file: str
    key_file: str
    client_ca_file: str | None = None
    client_auth_type: Literal[
        "NoClientCert",
        "RequestClientCert",
        "RequireAnyClientCert",
        "VerifyClientCertIfGiven",
        "RequireAndVerifyClientCert",
    ] = "NoClientCert"
    min_version: Literal["TLS10", "TLS11", "TLS12", "TLS13"] = "TLS12"
    max_version: Literal["TLS10", "TLS11", "TLS12", "TLS13"] | None = None

    @model_validator(mode="after")
    def _client_ca(self) -> TlsServerConfig:
        if self.client_auth_type in TLS_CLIENT_CA_NEEDED and not self.client_ca_file:
            raise ValueError(
                f"client_auth_type {self.client_auth_type} needs client_ca_file (the CA that signs the "
                "client certificates): without it no client could connect"
            )
        return self


# headers the server itself sets for each answer: one from the web config would corrupt the framing
RESERVED_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "transfer-encoding",
        "connection",
        "content-encoding",
        "date",
        "server",
    }
)
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 field name
_BAD_VALUE = re.compile("[\x00-\x08\x0a-\x1f\x7f]")  # controls but tab (CR, LF, NUL…)
_BCRYPT = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")
TLS_CLIENT_CA_NEEDED = ("RequireAndVerifyClientCert", "VerifyClientCertIfGiven", "RequireAnyClientCert")


class HttpServerConfig(StrictModel):
    headers: dict[str, str] = Field(default_factory=dict)
    http2: bool = True  # accepted for compatibility; this server speaks HTTP/1.1

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not _TOKEN.fullmatch(name):
                raise ValueError(f"header name {name!r} is not a valid HTTP field name (letters, digits, -)")
            if name.lower() in RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is set by the server itself and cannot be overridden")
            m = _BAD_VALUE.search(value)
            if m is not None:
                raise ValueError(
                    f"header {name!r}: value holds the control character U+{ord(m.group(0)):04X} "
                    "(CR, LF and NUL would split or end the response headers)"
                )
            if not value.isascii():
                raise ValueError(f"header {name!r}: value holds non-ASCII characters")
        return v


class WebConfig(StrictModel):
    tls_server_config: TlsServerConfig | None = None
    basic_auth_users: dict[str, str] | None = None
    http_server_config: HttpServerConfig = Field(default_factory=HttpServerConfig)

    @field_validator("basic_auth_users")
    @classmethod
    def _hashes(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        if v is None:
            return None
        if not v:
            raise ValueError(
                "basic_auth_users is empty: no one could log in, yet nothing would be protected; "
                "add a user or remove the key"
            )
        bad = []
        for user, hashed in v.items():
            m = _BCRYPT.fullmatch(str(hashed))
            if m is None or not 4 <= int(m.group(1)) <= 31:
                bad.append(user)
        if bad:
            raise ValueError(
                f"basic_auth_users: {', '.join(bad)}: not a bcrypt hash ($2y$<cost 04-31>$ and 53 "
                "characters of salt and hash, as `htpasswd -nBC 10` writes)"
            )
        return v


def load_web_config(path: str | Path) -> WebConfig:
    """Parse and validate the file; TLS paths are resolved against its directory and checked."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise WebConfigError(f"{p}: cannot read the web config: {exc}") from None
    if not isinstance(data, dict):
        raise WebConfigError(f"{p}: expected a mapping (tls_server_config, basic_auth_users)")
    try:
        cfg = WebConfig.model_validate(data)
    except ValidationError as exc:
        errors = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(top level)'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise WebConfigError(f"{p}: {errors}") from None
    tls = cfg.tls_server_config
    if tls is not None:
        base = p.resolve().parent
        files = {k: getattr(tls, k) for k in ("cert_file", "key_file", "client_ca_file")}
        resolved = {k: str(base / v) if v and not Path(v).is_absolute() else v for k, v in files.items()}
        missing = [f"{k} {v}" for k, v in resolved.items() if v and not Path(v).is_file()]
        if missing:
            raise WebConfigError(f"{p}: tls_server_config: no such file: {', '.join(missing)}")
        cfg = cfg.model_copy(update={"tls_server_config": tls.model_copy(update=resolved)})
        ssl_context(cfg)  # a bad certificate or key is an error now, not at the first connection
    return cfg


def ssl_context(cfg: WebConfig) -> ssl.SSLContext | None:
    """The server-side TLS context of ``tls_server_config`` (None without one)."""
    tls = cfg.tls_server_config
    if tls is None:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = TLS_VERSIONS[tls.min_version]
    if tls.max_version:
        ctx.maximum_version = TLS_VERSIONS[tls.max_version]
    try:
        ctx.load_cert_chain(tls.cert_file, tls.key_file)
        if tls.client_ca_file:
            ctx.load_verify_locations(tls.client_ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise WebConfigError(f"tls_server_config: cannot load the certificate or key: {exc}") from None
    ctx.verify_mode = CLIENT_AUTH[tls.client_auth_type]
    return ctx


RELOAD_EVERY_SECONDS = 2.0  # how often, at most, a handshake looks at the certificate files


def _stamp(paths: list[str]) -> tuple[tuple[int, int, int], ...]:
    """What changes when a file is replaced (a Kubernetes Secret's symlink swap included)."""
    out = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            out.append((0, 0, -1))
        else:
            out.append((st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(out)


def reloading_ssl_context(cfg: WebConfig, every: float = RELOAD_EVERY_SECONDS) -> ssl.SSLContext | None:
    """``ssl_context(cfg)`` that follows its certificate, key and client CA files without a restart:
    a handshake (``sni_callback``, called for every ClientHello) looks at the files' stat at most
    every ``every`` seconds and, when they changed, switches the connection (and the ones after it)
    to a context loaded from the new files. A pair that does not load (a half-written rotation) is
    logged and the current context kept; the next look tries again."""
    first = ssl_context(cfg)
    tls = cfg.tls_server_config
    if first is None or tls is None:
        return None
    paths = [p for p in (tls.cert_file, tls.key_file, tls.client_ca_file) if p]
    lock = threading.Lock()
    state: dict[str, Any] = {"ctx": first, "stamp": _stamp(paths), "looked": time.monotonic()}

    def current() -> ssl.SSLContext:
        with lock:
            now = time.monotonic()
            if now - state["looked"] < every:
                return state["ctx"]  # type: ignore[no-any-return]
            state["looked"] = now
            stamp = _stamp(paths)
            if stamp == state["stamp"]:
                return state["ctx"]  # type: ignore[no-any-return]
            try:
                fresh = ssl_context(cfg)
            except WebConfigError as exc:
                log.warning("keeping the current TLS certificate: %s", exc)
                return state["ctx"]  # type: ignore[no-any-return]
            fresh.sni_callback = pick  # type: ignore[union-attr]
            state.update(ctx=fresh, stamp=stamp)
            log.info("TLS certificate reloaded from %s", tls.cert_file)
            return fresh  # type: ignore[return-value]

    def pick(sock: ssl.SSLObject | ssl.SSLSocket, _name: str | None, _ctx: ssl.SSLContext) -> None:
        ctx = current()
        if sock.context is not ctx:
            sock.context = ctx
        return None

    first.sni_callback = pick  # type: ignore[assignment]
    return first


class BasicAuth:
    """Checks ``Authorization: Basic`` against bcrypt hashes, caching successes (bounded)."""

    CACHE = 1024

    def __init__(self, users: dict[str, str]) -> None:
        self.users = {u: h.encode() for u, h in users.items()}
        self._ok: set[bytes] = set()
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self.users)

    def check(self, header: str | None) -> bool:
        import bcrypt

        creds = _basic_credentials(header)
        if creds is None:
            return False
        user, password = creds
        hashed = self.users.get(user)
        if hashed is None:
            bcrypt.checkpw(b"x", next(iter(self.users.values())))  # same cost for unknown users
            return False
        key = hashlib.sha256(user.encode() + b"\0" + password + b"\0" + hashed).digest()
        with self._lock:
            if key in self._ok:
                return True
        try:
            ok = bcrypt.checkpw(password, hashed)
        except ValueError:
            return False
        if ok:
            with self._lock:
                if len(self._ok) >= self.CACHE:
                    self._ok.clear()
                self._ok.add(key)
        return ok


def _basic_credentials(header: str | None) -> tuple[str, bytes] | None:
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        raw = base64.b64decode(header[6:].strip(), validate=True)
    except ValueError:
        return None
    user, sep, password = raw.partition(b":")
    if not sep:
        return None
    return user.decode("utf-8", "replace"), password


def bearer_matches(header: str | None, token: str) -> bool:
    """``Authorization: Bearer <token>``, compared in constant time."""
    if not header or header[:7].lower() != "bearer ":
        return False
    return hmac.compare_digest(header[7:].strip().encode(), token.encode())
