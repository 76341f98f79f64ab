"""The one typed configuration of collapse-watch, loaded from YAML plus the environment.

``load_config(path)`` validates the whole file at once and raises ``ConfigError`` listing *every*
problem with its path in the file and its line number, e.g.::

    config.yml: 2 errors
      models[0].schedule.every (line 12): invalid duration '30x' (expected e.g. 30s, 15m, 1h, 2h30m)
      models[1].sourse (line 20): unknown key 'sourse' (did you mean 'source'?)

Relative paths in the file (probes, jsonl paths, state files, checkpoint directories) are resolved
against the directory of the config file.  ``COLLAPSE_WATCH_DATABASE_URL`` overrides
``database_url``.  Secrets never live in the file: an OpenAI-compatible source names the
*environment variable* holding its API key (``api_key_env``).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from collector.store.engine import redact_url
from collector.store.text import check_label

DATABASE_URL_ENV = "COLLAPSE_WATCH_DATABASE_URL"
DEFAULT_STATE_DIRNAME = ".collapse-watch"


class ConfigError(Exception):
    """The configuration could not be loaded; ``errors`` holds one line per problem."""

    def __init__(self, source: str, errors: list[str]) -> None:
        self.source = source
        self.errors = errors
        noun = "error" if len(errors) == 1 else "errors"
        super().__init__(f"{source}: {len(errors)} {noun}\n" + "\n".join(f"  {e}" for e in errors))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _resolve(value: str | None, info: ValidationInfo) -> str | None:
    """Resolve a relative path against the config file's directory (``context['base_dir']``)."""
    if value is None:
        return None
    base = (info.context or {}).get("base_dir")
    try:
        p = Path(value).expanduser()
    except RuntimeError:  # "~name" of no such user (or no home directory): a relative path, as written
        p = Path(value)
    if base is not None and not p.is_absolute():
        p = Path(base) / p
    return str(p)


# --- sources -------------------------------------------------------------------------------------


class OpenAISourceConfig(_Strict):
    """An OpenAI-compatible HTTP endpoint (vLLM, llama.cpp server, TGI, OpenAI)."""

    type: Literal["openai"]
    base_url: str = Field(description="e.g. http://127.0.0.1:8000/v1 (a trailing /v1 is optional)")
    model: str
    api_key_env: str | None = None
    endpoint: Literal["chat", "completions"] = "chat"
    timeout_seconds: float = Field(60.0, gt=0)
    max_retries: int = Field(4, ge=0, le=20)
    concurrency: int = Field(4, ge=1, le=256)
    rate_limit_per_second: float | None = Field(None, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError(f"invalid base_url {v!r} (expected http://host:port/v1)")
        return v.rstrip("/")


class EmbeddingServerConfig(_Strict):
    """A remote OpenAI-compatible ``/v1/embeddings`` server (text-embeddings-inference, vLLM,
    Infinity, Ollama, OpenAI) used instead of the local sentence-transformers model."""

    base_url: str = Field(description="e.g. http://127.0.0.1:7997/v1 (a trailing /v1 is optional)")
    model: str
    api_key_env: str | None = None
    batch_size: int = Field(64, ge=1, le=4096)
    timeout_seconds: float = Field(60.0, gt=0)
    max_retries: int = Field(4, ge=0, le=20)
    concurrency: int = Field(4, ge=1, le=256)
    rate_limit_per_second: float | None = Field(None, gt=0)

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        return OpenAISourceConfig._url(v)


class TransformersSourceConfig(_Strict):
    """A local Hugging Face checkpoint directory, sampled in-process."""

    type: Literal["transformers"]
    path: str
    device: str = "cpu"
    batch_size: int = Field(8, ge=1)

    @field_validator("path")
    @classmethod
    def _path(cls, v: str, info: ValidationInfo) -> str:
        return _resolve(v, info) or v


class JsonlFields(_Strict):
    """Which keys of a JSONL record hold what; optional ones may be null to ignore them."""

    prompt: str = "prompt"
    output: str = "output"
    version: str | None = "version"
    model: str | None = "model"
    prompt_id: str | None = "prompt_id"


class JsonlSourceConfig(_Strict):
    """Tail JSONL request logs (a file or a glob); remembers its read offsets in ``state_file``."""

    type: Literal["jsonl"]
    path: str
    state_file: str | None = None
    fields: JsonlFields = Field(default_factory=JsonlFields)
    # a longer line is quarantined with its size, never held in memory whole (issue #22)
    max_line_bytes: int = Field(1_048_576, ge=1024, le=1 << 30)

    @field_validator("path", "state_file")
    @classmethod
    def _paths(cls, v: str | None, info: ValidationInfo) -> str | None:
        return _resolve(v, info)


class SqlSourceConfig(_Strict):
    """Pull logged outputs from a SQL table; remembers the largest watermark seen in ``state_file``.

    ``query`` must select ``prompt``, ``output`` and the watermark column (optionally ``prompt_id``,
    ``model`` and ``version_column``).  The source wraps it as
    ``SELECT * FROM (query) WHERE watermark > :last ORDER BY watermark``, so the query need not
    filter itself; it *may* reference ``:watermark`` (bound to the last value, NULL on the first pull).
    """

    type: Literal["sql"]
    url: str
    query: str
    watermark_column: str
    version_column: str | None = None
    state_file: str | None = None

    @field_validator("state_file")
    @classmethod
    def _paths(cls, v: str | None, info: ValidationInfo) -> str | None:
        return _resolve(v, info)

    @field_validator("query")
    @classmethod
    def _query(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("query is empty")
        return v.strip().rstrip(";")

    @field_validator("watermark_column", "version_column")
    @classmethod
    def _ident(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
            raise ValueError(f"invalid column name {v!r} (expected a plain identifier)")
        return v


SourceConfig = Annotated[
    OpenAISourceConfig | TransformersSourceConfig | JsonlSourceConfig | SqlSourceConfig,
    Field(discriminator="type"),
]
ACTIVE_SOURCE_TYPES = ("openai", "transformers")

# --- schedule, decoding --------------------------------------------------------------------------

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> int:
    """'45s' -> 45, '30m' -> 1800, '2h30m' -> 9000, '1d' -> 86400; ValueError otherwise."""
    m = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if not m or not any(m.groups()):
        raise ValueError(f"invalid duration {text!r} (expected e.g. 30s, 15m, 1h, 2h30m)")
    d, h, mi, s = (int(g or 0) for g in m.groups())
    seconds = ((d * 24 + h) * 60 + mi) * 60 + s
    if seconds <= 0:
        raise ValueError(f"invalid duration {text!r} (must be longer than 0s)")
    return seconds


class Schedule(_Strict):
    """When to collect: exactly one of ``every`` (a duration) or ``cron`` (5-field crontab)."""

    every: str | None = None
    cron: str | None = None

    @field_validator("every")
    @classmethod
    def _every(cls, v: str | None) -> str | None:
        if v is not None:
            parse_duration(v)
        return v

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is not None:
            from apscheduler.triggers.cron import CronTrigger

            try:
                CronTrigger.from_crontab(v)
            except ValueError as e:
                raise ValueError(f"invalid cron expression {v!r}: {e}") from None
        return v

    @model_validator(mode="after")
    def _one(self) -> Schedule:
        if (self.every is None) == (self.cron is None):
            raise ValueError("give exactly one of 'every' (e.g. 30m) or 'cron' (e.g. '0 * * * *')")
        return self

    @property
    def every_seconds(self) -> int | None:
        return parse_duration(self.every) if self.every is not None else None


class Decoding(_Strict):
    """Sampling parameters passed to the model.  With ``seed`` set, sample i uses ``seed + i``."""

    temperature: float = Field(1.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int = Field(256, ge=1)
    seed: int | None = None
    stop: list[str] | None = None


# --- models --------------------------------------------------------------------------------------


def _model_name(v: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:/@+-]*", v):
        raise ValueError(f"invalid model name {v!r} (letters, digits and _.:/@+- only)")
    return v


def _version_label(v: str) -> str:
    return check_label(v, "version label")  # the store's one rule for labels


def _model_label(v: str) -> str:
    return check_label(v, "model name")


# The labels the store keeps: a model name is also limited to characters a file name and a URL take.
ModelName = Annotated[str, AfterValidator(_model_label), AfterValidator(_model_name)]
VersionLabel = Annotated[str, AfterValidator(_version_label)]


PULL_SOURCE_TYPES = ("jsonl", "sql")
PULL_MIN_SAMPLES = 2
# embedding_model values that name no model (YAML gives `none`, `off`, `no` as strings here)
MEANINGLESS_MODEL_NAMES = frozenset(
    {"", "none", "null", "nil", "off", "no", "false", "disabled", "disable", "0", "~"}
)


class ModelConfig(_Strict):
    """One watched model: where its outputs come from and how they are scored."""

    name: ModelName
    source: SourceConfig
    version: VersionLabel | None = None
    version_from: str = "config"
    schedule: Schedule | None = None
    samples_per_prompt: int = Field(4, ge=1)
    probes: str = "default"
    decoding: Decoding = Field(default_factory=Decoding)
    metrics: list[str] | Literal["default"] = "default"
    min_samples: int | None = Field(None, ge=1)
    baseline_version: VersionLabel | None = None
    # issue #11: a run's wall-clock budget, and how many samples one run scores at most (pull sources:
    # a uniform reservoir per version; every line is still stored). See docs/reliability.md.
    run_timeout_seconds: float | None = Field(None, gt=0)
    max_scored_samples: int = Field(5000, ge=10)
    # issue #26: collapsed prompts (each headline metric declined on the prompt's own outputs, at the
    # per-prompt FDR) that give at least watch; 0 turns the rule off.  See docs/metrics.md.
    min_collapsed_prompts: int = Field(2, ge=0)
    min_collapsed_share: float = Field(0.0, ge=0, le=1)

    @field_validator("version_from")
    @classmethod
    def _version_from(cls, v: str) -> str:
        if v in ("config", "response_model"):
            return v
        m = re.fullmatch(r"header:([A-Za-z0-9!#$%&'*+.^_`|~-]+)", v)
        if not m:
            raise ValueError(
                f"invalid version_from {v!r} (expected 'config', 'response_model' or 'header:X-Name')"
            )
        return v

    @field_validator("probes")
    @classmethod
    def _probes(cls, v: str, info: ValidationInfo) -> str:
        return v if v == "default" else (_resolve(v, info) or v)

    @field_validator("metrics", mode="before")
    @classmethod
    def _metrics(cls, v: Any) -> Any:
        if v == "default":
            return v
        if not isinstance(v, list) or not v or not all(isinstance(x, str) and x for x in v):
            raise ValueError("metrics must be 'default' or a non-empty list of metric names")
        dup = sorted({x for x in v if v.count(x) > 1})
        if dup:
            raise ValueError(f"metric(s) listed twice: {', '.join(dup)}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ModelConfig:
        if self.version_from != "config" and self.source.type != "openai":
            raise ValueError(
                f"version_from {self.version_from!r} needs an openai source "
                f"(a {self.source.type} source reads the version from its records)"
            )
        return self

    def effective_min_samples(self, n_prompts: int) -> int:
        """Fewest successful samples a run needs: ``min_samples``; else, for a sampling source, half
        of those it asked for (``n_prompts * samples_per_prompt``); for a pull source (``jsonl``,
        ``sql``), which asks for nothing, ``PULL_MIN_SAMPLES`` (2, the fewest outputs any metric
        scores): a log holds what was served, and ``samples_per_prompt`` says nothing about it.
        Whether the outputs suffice for a decision is the verdict's to say (``inconclusive``)."""
        if self.min_samples is not None:
            return self.min_samples
        if self.source.type in PULL_SOURCE_TYPES:
            return PULL_MIN_SAMPLES
        return max(1, math.ceil(0.5 * n_prompts * self.samples_per_prompt))

    @property
    def version_header(self) -> str | None:
        return self.version_from.split(":", 1)[1] if self.version_from.startswith("header:") else None


class AlertReceiverConfig(_Strict):
    """Who may ``POST /alerts`` (docs/security.md): a bearer token read from ``bearer_token_env`` or
    ``bearer_token_file`` (what Alertmanager's webhook ``http_config.authorization`` sends), and/or
    the web config's basic-auth users.  With neither, only loopback clients may post."""

    bearer_token_env: str | None = None
    bearer_token_file: str | None = None

    @field_validator("bearer_token_file")
    @classmethod
    def _file(cls, v: str | None, info: ValidationInfo) -> str | None:
        return _resolve(v, info)

    @model_validator(mode="after")
    def _one(self) -> AlertReceiverConfig:
        if self.bearer_token_env and self.bearer_token_file:
            raise ValueError("give bearer_token_env or bearer_token_file, not both")
        return self


_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)


def valid_host(value: str) -> str:
    """An IP address or a host name to listen on; ValueError naming it otherwise."""
    import ipaddress

    v = value.strip()
    try:
        ipaddress.ip_address(v.strip("[]"))
        return v.strip("[]")
    except ValueError:
        pass
    if not _HOSTNAME.match(v):
        raise ValueError(
            f"invalid metrics_host {value!r} (expected an IP address such as 127.0.0.1, or a host name)"
        )
    return v


class Config(_Strict):
    """The whole file."""

    database_url: str | None = None
    metrics_port: int = Field(9108, ge=1, le=65535)
    # loopback unless said otherwise: the listener is only put on a network on purpose (docs/security.md)
    metrics_host: str = "127.0.0.1"
    web_config_file: str | None = None  # exporter-toolkit web config: TLS, basic_auth_users
    alert_receiver: AlertReceiverConfig = Field(default_factory=AlertReceiverConfig)
    metrics_detail: Literal["summary", "full"] = Field(
        "summary",
        description="Series exported per model: summary (<= 300: the latest version's metrics and "
        "its change vs baseline) or full (every family for the last 10 versions).",
    )
    retention_days: int | None = Field(None, ge=1)
    embedding_model: str = "default"
    # local engine and precision: auto (OpenVINO bf16 where installed and native, else torch bf16 /
    # fp32), openvino, bf16 (torch) or fp32 (plain sentence-transformers); part of the embedding identity
    embedding_backend: Literal["auto", "openvino", "bf16", "fp32"] = "auto"
    embedding_server: EmbeddingServerConfig | None = None  # remote embeddings instead of the local model
    state_dir: str | None = None
    shutdown_grace_seconds: float = Field(10.0, gt=0, le=600)  # SIGTERM: runs finish or are marked within
    models: list[ModelConfig] = Field(default_factory=list)

    @field_validator("state_dir", "web_config_file")
    @classmethod
    def _state_dir(cls, v: str | None, info: ValidationInfo) -> str | None:
        return _resolve(v, info)

    @field_validator("metrics_host")
    @classmethod
    def _host(cls, v: str) -> str:
        return valid_host(v)

    @field_validator("embedding_model")
    @classmethod
    def _embedding_model(cls, v: str) -> str:
        if v.strip().lower() in MEANINGLESS_MODEL_NAMES:
            raise ValueError(
                f"{v!r} is not a model: use 'default', a sentence-transformers name or a local path "
                "(embeddings cannot be switched off here; to skip the embedding metrics leave them out "
                "of each model's `metrics:`)"
            )
        return v

    @field_validator("models")
    @classmethod
    def _unique(cls, v: list[ModelConfig]) -> list[ModelConfig]:
        names = [m.name for m in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"model name(s) used more than once: {', '.join(dup)}")
        return v

    def model(self, name: str) -> ModelConfig:
        """The model called ``name``; KeyError listing the known names otherwise."""
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(f"no model {name!r} in the config (known: {', '.join(self.model_names) or 'none'})")

    @property
    def model_names(self) -> list[str]:
        return [m.name for m in self.models]


# --- loading and error reporting -----------------------------------------------------------------


def _default_state_dir(cfg: Config, base_dir: Path) -> Path:
    if cfg.state_dir:
        return Path(cfg.state_dir)
    url = cfg.database_url or ""
    m = re.match(r"^sqlite(?:\+\w+)?:///(.+)$", url)
    if m and m.group(1) != ":memory:":
        db = Path(m.group(1))
        return (db if db.is_absolute() else base_dir / db).parent / DEFAULT_STATE_DIRNAME
    return base_dir / DEFAULT_STATE_DIRNAME


def _with_state_files(cfg: Config, base_dir: Path) -> Config:
    """Give every pull source without a ``state_file`` one under the state directory."""
    state_dir = _default_state_dir(cfg, base_dir)
    models = []
    for m in cfg.models:
        src = m.source
        if isinstance(src, JsonlSourceConfig | SqlSourceConfig) and src.state_file is None:
            safe = re.sub(r"[^A-Za-z0-9_.-]", "_", m.name)
            src = src.model_copy(update={"state_file": str(state_dir / f"{safe}.{src.type}-state.json")})
            m = m.model_copy(update={"source": src})
        models.append(m)
    return cfg.model_copy(update={"models": models, "state_dir": str(state_dir)})


def _format_loc(loc: tuple[Any, ...], root: yaml.Node | None) -> tuple[str, int | None]:
    """Turn a pydantic error location into ``models[0].source.url`` and a 1-based YAML line.

    Discriminator tags that pydantic inserts (``source.openai.url``) are dropped by noticing that
    the mapping has ``type: openai``.  The line is the deepest node that exists in the file.
    """
    parts: list[str] = []
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for elem in loc:
        if isinstance(node, yaml.MappingNode) and isinstance(elem, str):
            keys = {k.value: (k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode)}
            if elem not in keys and "type" in keys and getattr(keys["type"][1], "value", None) == elem:
                continue  # the discriminated-union tag
            parts.append(f".{elem}" if parts else elem)
            if elem in keys:
                key_node, node = keys[elem]
                line = key_node.start_mark.line + 1
            else:
                node = None
        elif isinstance(node, yaml.SequenceNode) and isinstance(elem, int):
            parts.append(f"[{elem}]")
            if 0 <= elem < len(node.value):
                node = node.value[elem]
                line = node.start_mark.line + 1
            else:
                node = None
        else:
            if isinstance(elem, int):
                parts.append(f"[{elem}]")
            elif node is not None and isinstance(node, yaml.SequenceNode):
                continue  # a union-member label such as 'list[str]'
            else:
                parts.append(f".{elem}" if parts else str(elem))
            node = None
    return "".join(parts) or "(top level)", line


def _unwrap(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model at ``loc`` (for 'did you mean' hints on unknown keys)."""
    tp: Any = Config
    for elem in loc:
        tp = _unwrap(tp)
        if isinstance(elem, int):
            tp = typing.get_args(tp)[0] if typing.get_origin(tp) is list else None
        elif typing.get_origin(tp) in (typing.Union, types.UnionType):
            tp = next(
                (
                    a
                    for a in typing.get_args(tp)
                    if isinstance(a, type)
                    and issubclass(a, BaseModel)
                    and "type" in a.model_fields
                    and elem in typing.get_args(a.model_fields["type"].annotation)
                ),
                None,
            )
        elif isinstance(tp, type) and issubclass(tp, BaseModel) and elem in tp.model_fields:
            tp = tp.model_fields[elem].annotation
        else:
            return []
        if tp is None:
            return []
    tp = _unwrap(tp)
    return list(tp.model_fields) if isinstance(tp, type) and issubclass(tp, BaseModel) else []


def _message(err: dict[str, Any]) -> str:
    kind = err["type"]
    loc = err["loc"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _fields_at(loc[:-1])
        near = difflib.get_close_matches(key, allowed, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        return (
            f"unknown key {key!r}{hint}; allowed: {', '.join(allowed)}" if allowed else f"unknown key {key!r}"
        )
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        return f"unknown source type {err['input'].get('type')!r} (expected {err['ctx']['expected_tags']})"
    if kind == "union_tag_not_found":
        return "source needs a 'type': one of openai, transformers, jsonl, sql"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


def _errors(exc: ValidationError, root: yaml.Node | None) -> list[str]:
    out = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        path, line = _format_loc(loc, root)
        where = f"{path} (line {line})" if line is not None else path
        out.append(f"{where}: {_message(err)}")
    return out


def _duplicate_names(data: dict[str, Any], root: yaml.Node | None) -> list[str]:
    """Duplicate model names, found on the raw data (pydantic skips list checks once an item fails)."""
    models = data.get("models")
    if not isinstance(models, list):
        return []
    names = [m.get("name") for m in models if isinstance(m, dict) and isinstance(m.get("name"), str)]
    dup = sorted({n for n in names if names.count(n) > 1})
    if not dup:
        return []
    path, line = _format_loc(("models",), root)
    return [f"{path} (line {line}): model name(s) used more than once: {', '.join(dup)}"]


def _line_of(error: str) -> int:
    m = re.search(r"\(line (\d+)\):", error)
    return int(m.group(1)) if m else 10**9


def _duplicate_keys(node: yaml.Node | None, path: str = "") -> list[str]:
    """Keys given twice in one mapping (PyYAML would silently keep the last)."""
    out: list[str] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for k, v in node.value:
            key = str(k.value)
            here = f"{path}.{key}" if path else key
            if key in seen:
                out.append(f"{here} (line {k.start_mark.line + 1}): key given twice in the same mapping")
            seen.add(key)
            out += _duplicate_keys(v, here)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            out += _duplicate_keys(v, f"{path}[{i}]")
    return out


def config_from_dict(
    data: dict[str, Any],
    *,
    base_dir: str | os.PathLike[str] | None = None,
    source: str = "<config>",
    root: yaml.Node | None = None,
) -> Config:
    """Validate already-parsed settings (the environment still overrides ``database_url``).

    Relative paths are resolved against ``base_dir`` (default: the working directory) and pull
    sources get their default ``state_file``.  ``root`` (the composed YAML) adds line numbers.
    """
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    data = dict(data)
    env_url = os.environ.get(DATABASE_URL_ENV)
    if env_url:
        data["database_url"] = env_url
    dup_keys = _duplicate_keys(root)
    try:
        cfg = Config.model_validate(data, context={"base_dir": base})
    except ValidationError as e:
        errors = _errors(e, root)
        errors += [d for d in _duplicate_names(data, root) if d not in errors]
        raise ConfigError(source, sorted(errors + dup_keys, key=_line_of)) from None
    if dup_keys:
        raise ConfigError(source, dup_keys)
    return _with_state_files(cfg, base)


def parse_config(
    text: str, *, source: str = "<string>", base_dir: str | os.PathLike[str] | None = None
) -> Config:
    """Validate YAML text; relative paths are resolved against ``base_dir`` (default: cwd)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(source, [f"not valid YAML: {e}"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, [f"(top level): expected a mapping of settings, got {type(data).__name__}"])
    return config_from_dict(data, base_dir=base_dir, source=source, root=root)


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read, validate and resolve the config file; ``ConfigError`` lists every problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(str(p), [f"cannot read the config file: {e.strerror or e}"]) from None
    except UnicodeDecodeError as e:
        raise ConfigError(str(p), [f"the config file is not UTF-8: {e}"]) from None
    return parse_config(text, source=str(p), base_dir=p.resolve().parent)


def check_config(
    path: str | os.PathLike[str], *, connect: bool = False, warnings: list[str] | None = None
) -> list[str]:
    """Every problem with the file, including ones only visible on this machine; [] when fine.
    What is worth saying but does not fail the check is appended to ``warnings`` when given.

    Beyond validation: ``environment_problems`` (key variables, probe files, checkpoints, globs,
    metric names, the listen address, the web config); with ``connect`` also what needs the
    database or a SQL source (``collector.preflight``).
    """
    try:
        cfg = load_config(path)
    except ConfigError as e:
        return list(e.errors)
    from collector.preflight import environment_problems

    found = environment_problems(cfg, connect=connect)
    if warnings is not None:
        warnings += [p.text for p in found if p.warning]
    return [p.text for p in found if not p.warning]


def config_hash(cfg: Config | ModelConfig) -> str:
    """A stable SHA-256 of the effective configuration, minus secrets and storage settings.

    Excluded: the database URL, passwords in SQL URLs, HTTP header *values*, state-file paths and
    everything that only says where things are stored or served (so moving the database does not
    change the hash, while a change of decoding parameters does).
    """
    data = cfg.model_dump(mode="json")

    def scrub_model(m: dict[str, Any]) -> None:
        src = m.get("source", {})
        src.pop("state_file", None)
        if "headers" in src:
            src["headers"] = sorted(src["headers"])
        if "url" in src:
            src["url"] = redact_url(src["url"])

    if isinstance(cfg, Config):
        for key in (
            "database_url",
            "metrics_port",
            "metrics_host",
            "retention_days",
            "state_dir",
            "web_config_file",
            "alert_receiver",
        ):
            data.pop(key, None)
        for m in data["models"]:
            scrub_model(m)
    else:
        scrub_model(data)
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()
