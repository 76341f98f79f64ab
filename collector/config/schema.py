"""The configuration's schema: one typed, frozen pydantic model per section of the file.

What each key means, its default and its own check live here; reading the YAML and the environment
is ``collector.config.loading``, how a problem is reported (path and line) ``collector.config.errors``,
what a valid file still cannot do on this machine ``collector.config.checking``.

Relative paths (probes, jsonl paths, state files, checkpoint directories, the web config) are
resolved against ``context['base_dir']`` (the config file's directory) while validating.  Secrets
never live in the file: an OpenAI-compatible source names the *environment variable* holding its API
key (``api_key_env``).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from collector.store.text import check_label


class StrictModel(BaseModel):
    """A settings model that refuses unknown keys (a typo is an error) and cannot change once read."""

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


# A path as written in the file, resolved against the config file's directory.
ResolvedPath = Annotated[str, AfterValidator(_resolve)]


# --- sources -------------------------------------------------------------------------------------


class OpenAISourceConfig(StrictModel):
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


class EmbeddingServerConfig(StrictModel):
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


class TransformersSourceConfig(StrictModel):
    """A local Hugging Face checkpoint directory, sampled in-process."""

    type: Literal["transformers"]
    path: ResolvedPath
    device: str = "cpu"
    batch_size: int = Field(8, ge=1)


class JsonlFields(StrictModel):
    """Which keys of a JSONL record hold what; optional ones may be null to ignore them."""

    prompt: str = "prompt"
    output: str = "output"
    version: str | None = "version"
    model: str | None = "model"
    prompt_id: str | None = "prompt_id"


class JsonlSourceConfig(StrictModel):
    """Tail JSONL request logs (a file or a glob); remembers its read offsets in ``state_file``."""

    type: Literal["jsonl"]
    path: ResolvedPath
    state_file: ResolvedPath | None = None
    fields: JsonlFields = Field(default_factory=JsonlFields)
    # a longer line is quarantined with its size, never held in memory whole (issue #22)
    max_line_bytes: int = Field(1_048_576, ge=1024, le=1 << 30)


class SqlSourceConfig(StrictModel):
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
    state_file: ResolvedPath | None = None

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


class Schedule(StrictModel):
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


class Decoding(StrictModel):
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


class ModelConfig(StrictModel):
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


class AlertReceiverConfig(StrictModel):
    """Who may ``POST /alerts`` (docs/security.md): a bearer token read from ``bearer_token_env`` or
    ``bearer_token_file`` (what Alertmanager's webhook ``http_config.authorization`` sends), and/or
    the web config's basic-auth users.  With neither, only loopback clients may post."""

    bearer_token_env: str | None = None
    bearer_token_file: ResolvedPath | None = None

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


class Config(StrictModel):
    """The whole file."""

    database_url: str | None = None
    metrics_port: int = Field(9108, ge=1, le=65535)
    # loopback unless said otherwise: the listener is only put on a network on purpose (docs/security.md)
    metrics_host: str = "127.0.0.1"
    web_config_file: ResolvedPath | None = None  # exporter-toolkit web config: TLS, basic_auth_users
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
    state_dir: ResolvedPath | None = None
    shutdown_grace_seconds: float = Field(10.0, gt=0, le=600)  # SIGTERM: runs finish or are marked within
    models: list[ModelConfig] = Field(default_factory=list)

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
