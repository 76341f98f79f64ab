"""Where model outputs come from; ``make_source(model_cfg)`` builds the configured one.

See ``collector.sources.base`` for the interface and the pull-source commit contract.
"""

from __future__ import annotations

from collector.config import (
    JsonlSourceConfig,
    ModelConfig,
    OpenAISourceConfig,
    SqlSourceConfig,
    TransformersSourceConfig,
)
from collector.sources.base import (
    PullSource,
    SampleOutcome,
    SampleRequest,
    SamplingSource,
    Source,
    SourceError,
)

__all__ = [
    "PullSource",
    "SampleOutcome",
    "SampleRequest",
    "SamplingSource",
    "Source",
    "SourceError",
    "is_pull",
    "make_source",
]


def make_source(cfg: ModelConfig) -> SamplingSource | PullSource:
    """The source for one configured model (imports heavy dependencies only when needed)."""
    src = cfg.source
    if isinstance(src, OpenAISourceConfig):
        from collector.sources.openai import OpenAISource

        return OpenAISource(src, version=cfg.version, version_from=cfg.version_from)
    if isinstance(src, JsonlSourceConfig):
        from collector.sources.jsonl import JsonlSource

        return JsonlSource(src)
    if isinstance(src, SqlSourceConfig):
        from collector.sources.sql import SqlSource

        return SqlSource(src)
    if isinstance(src, TransformersSourceConfig):
        from collector.sources.transformers import TransformersSource

        return TransformersSource(src, version=cfg.version)
    raise SourceError(f"model {cfg.name!r}: unknown source type {getattr(src, 'type', src)!r}")


def is_pull(source: SamplingSource | PullSource) -> bool:
    """True for sources that read logged outputs (``pull``/``commit``) rather than sample."""
    return hasattr(source, "pull") and hasattr(source, "commit")
