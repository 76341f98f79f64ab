"""Checking a configuration: what a valid config still cannot do on this machine (issue #22).

``check_config(path)`` is ``config check``: the file's problems (``collector.config.loading``), else
``environment_problems(cfg, connect=...)``, which is also what ``run`` and ``collect`` refuse to start
on (exit 2) when a problem is ``fatal`` (it can never succeed, so a scheduler ticking on it would only
fail for ever).  Not fatal: a jsonl glob that matches nothing yet (the log may appear later).  With
``connect`` it also opens the database and reads one row of every SQL source (a missing table, a
column not selected or of the wrong type).
"""

from __future__ import annotations

import glob
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from collector.config.errors import ConfigError
from collector.config.loading import load_config
from collector.config.schema import (
    Config,
    JsonlSourceConfig,
    ModelConfig,
    SqlSourceConfig,
    TransformersSourceConfig,
)
from collector.database_url import redact_url, resolve_url


def check_config(
    path: str | os.PathLike[str], *, connect: bool = False, warnings: list[str] | None = None
) -> list[str]:
    """Every problem with the file, including ones only visible on this machine; [] when fine.
    What is worth saying but does not fail the check is appended to ``warnings`` when given.

    Beyond validation: ``environment_problems`` (key variables, probe files, checkpoints, globs,
    metric names, the listen address, the web config); with ``connect`` also what needs the
    database or a SQL source.
    """
    try:
        cfg = load_config(path)
    except ConfigError as e:
        return list(e.errors)
    found = environment_problems(cfg, connect=connect)
    if warnings is not None:
        warnings += [p.text for p in found if p.warning]
    return [p.text for p in found if not p.warning]


@dataclass(frozen=True)
class Problem:
    text: str
    fatal: bool = True
    warning: bool = False  # printed by ``config check`` as a warning; never fails it


def environment_problems(cfg: Config, *, connect: bool = False) -> list[Problem]:
    """Every problem of ``cfg`` on this machine (see the module docstring)."""
    problems = _keys(cfg) + _listener(cfg)
    known = _known_metrics()
    for i, m in enumerate(cfg.models):
        problems += _model(f"models[{i}] ({m.name})", m, known, connect=connect)
    if connect:
        problems += _database(cfg)
    return problems


def _model(where: str, m: ModelConfig, known: set[str] | None, *, connect: bool) -> list[Problem]:
    """One model's problems: its checkpoint, version, log files, metric names, probes, SQL source."""
    problems = []
    src = m.source
    if isinstance(src, TransformersSourceConfig) and not Path(src.path).is_dir():
        problems.append(Problem(f"{where}.source.path: no checkpoint directory at {src.path}"))
    problems += _version(where, m)
    if isinstance(src, JsonlSourceConfig) and not glob.glob(src.path, recursive=True):
        problems.append(Problem(f"{where}.source.path: no file matches {src.path}", fatal=False))
    problems += _metric_names(where, m, known) + _probes(where, m)
    if connect and isinstance(src, SqlSourceConfig):
        problems += [Problem(f"{where}.source: {p}") for p in _sql_source(src)]
    return problems


def _metric_names(where: str, m: ModelConfig, known: set[str] | None) -> list[Problem]:
    """Names in ``metrics:`` that the suite does not have (unchecked where it cannot be imported)."""
    if known is None or m.metrics == "default":
        return []
    unknown = [n for n in m.metrics if n not in known]
    if not unknown:
        return []
    names = ", ".join(sorted(known))
    return [Problem(f"{where}.metrics: unknown metric(s) {', '.join(unknown)}; known: {names}")]


def _probes(where: str, m: ModelConfig) -> list[Problem]:
    """A probe file that is missing or does not load."""
    if m.probes == "default":
        return []
    if not Path(m.probes).is_file():
        return [Problem(f"{where}.probes: no probe file at {m.probes}")]
    from collector.probes import ProbeError, load_probes

    try:
        load_probes(m.probes)
    except (ProbeError, OSError, UnicodeDecodeError, ValueError) as exc:
        return [Problem(f"{where}.probes: {exc}")]
    return []


def _version(where: str, m: ModelConfig) -> list[Problem]:
    """A pull model with no ``version:`` files only records that carry their own; with no version
    field either, every record would be quarantined (issue #22: no invented ``unknown`` version)."""
    src = m.source
    if m.version is not None or m.version_from != "config":
        return []
    if isinstance(src, JsonlSourceConfig):
        field, key = src.fields.version, "source.fields.version"
    elif isinstance(src, SqlSourceConfig):
        field, key = src.version_column, "source.version_column"
    else:
        return []
    if field is None:
        return [
            Problem(
                f"{where}.version: not set, and {key} is null: every record would be quarantined "
                "(no version to file it under); set `version:`"
            )
        ]
    return [
        Problem(
            f"{where}.version: not set: records without a {field!r} field will be quarantined "
            "(set `version:` to file them under it)",
            fatal=False,
            warning=True,
        )
    ]


def _known_metrics() -> set[str] | None:
    """Names of the metric suite, or None when the metrics package cannot be imported here."""
    try:
        from collector.metrics.registry import metric_names

        return set(metric_names())
    except ImportError:
        return None


def _keys(cfg: Config) -> list[Problem]:
    # here, not at the top: collector.credentials imports the config package (this module with it)
    from collector.credentials import KeyProblem, alerts_token, key_envs, read_key

    out = []
    for where, env in key_envs(cfg):
        try:
            key = read_key(env)
        except KeyProblem as exc:
            out.append(Problem(f"{where}: {exc}"))
        else:
            out += _placeholder(f"{where}: the key in {env}", key)
    try:
        token = alerts_token(cfg)
    except KeyProblem as exc:
        out.append(Problem(f"alert_receiver: {exc}"))
    else:
        receiver = cfg.alert_receiver
        source = receiver.bearer_token_file or f"${receiver.bearer_token_env}"
        out += _placeholder(f"alert_receiver: the bearer token in {source}", token)
    out += _placeholder("database_url: the password", _database_password(cfg))
    return out


PLACEHOLDER = "CHANGE-ME"  # the shipped example secrets' placeholder (deploy/, docs/)


def _placeholder(what: str, secret: str | None) -> list[Problem]:
    """A secret still holding the shipped placeholder: anyone who read the docs knows it."""
    if secret and PLACEHOLDER.lower() in secret.lower():
        return [
            Problem(
                f"{what} is a placeholder (it contains {PLACEHOLDER}, as the shipped examples do): "
                "set a real secret, e.g. `openssl rand -hex 32`"
            )
        ]
    return []


def _database_password(cfg: Config) -> str | None:
    from sqlalchemy.engine import make_url

    try:
        return make_url(resolve_url(cfg.database_url)).password  # type: ignore[return-value]
    except Exception:  # not a URL SQLAlchemy understands: the database check names that
        return None


def _listener(cfg: Config) -> list[Problem]:
    """The listen address must be this machine's; the web config must load."""
    out = []
    host = cfg.metrics_host
    try:
        infos = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return [Problem(f"metrics_host: cannot resolve {host!r}: {exc.strerror}")]
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind((addr[0], 0))  # any port: only whether the address is this machine's
        except OSError as exc:
            out.append(Problem(f"metrics_host: cannot listen on {host!r}: {exc.strerror or exc}"))
    web = None
    if cfg.web_config_file:
        from collector.web_config import WebConfigError, load_web_config

        try:
            web = load_web_config(cfg.web_config_file)
        except WebConfigError as exc:
            out.append(Problem(f"web_config_file: {exc}"))
            return out
    if not out and not _loopback_only(host) and not (web and web.basic_auth_users):
        out.append(
            Problem(
                f"metrics_host: {host} listens beyond this machine with no basic_auth_users: "
                f"anyone who can reach port {cfg.metrics_port} reads /metrics (set web_config_file with "
                "basic_auth_users, or metrics_host: 127.0.0.1; docs/security.md)",
                fatal=False,
                warning=True,
            )
        )
    return out


def _loopback_only(host: str) -> bool:
    """Whether every address ``host`` stands for is a loopback one (0.0.0.0 and :: are not)."""
    import ipaddress

    try:
        infos = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        return all(ipaddress.ip_address(str(i[4][0]).split("%")[0]).is_loopback for i in infos)
    except (OSError, ValueError):
        return False


def _sql_source(src: SqlSourceConfig) -> list[str]:
    from collector.sources.base import SourceError
    from collector.sources.sql import SqlSource

    try:
        source = SqlSource(src)
    except (SourceError, ValueError) as exc:
        return [str(exc)]
    try:
        return source.check()
    finally:
        source.close()


def _database(cfg: Config) -> list[Problem]:
    from sqlalchemy import create_engine, text

    from collector.store.engine import connect_bound

    url = resolve_url(cfg.database_url)
    if url.startswith("sqlite"):  # connecting would create the file: check its directory instead
        from sqlalchemy.engine import make_url

        db = make_url(url).database
        if db and db != ":memory:" and not Path(db).resolve().parent.is_dir():
            return [Problem(f"database_url: no directory for the SQLite file {db}")]
        return []
    try:
        engine = create_engine(url, connect_args=connect_bound(url))  # a hung server: a bounded wait
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        return [Problem(f"database_url: cannot connect to {redact_url(url)}: {detail[0] if detail else exc}")]
    return []
