"""The one typed configuration of collapse-watch, loaded from YAML plus the environment.

A wing of its own, in three parts: ``schema`` (the pydantic models: what each key means and its own
check), ``loading`` (YAML + environment, paths relative to the config file, every error at once with
its line, ``errors``), ``checking`` (``config check``: what a valid file still cannot do on this
machine).  ``identity`` hashes a config for the runs it produces.  Importing it pulls in neither the
store's engine nor SQLAlchemy.  Every name callers import is re-exported here.
"""

from __future__ import annotations

from collector.config.checking import Problem, check_config, environment_problems
from collector.config.errors import ConfigError
from collector.config.identity import config_hash
from collector.config.loading import DEFAULT_STATE_DIRNAME, config_from_dict, load_config, parse_config
from collector.config.schema import (
    ACTIVE_SOURCE_TYPES,
    MEANINGLESS_MODEL_NAMES,
    PULL_MIN_SAMPLES,
    PULL_SOURCE_TYPES,
    AlertReceiverConfig,
    Config,
    Decoding,
    EmbeddingServerConfig,
    JsonlFields,
    JsonlSourceConfig,
    ModelConfig,
    ModelName,
    OpenAISourceConfig,
    ResolvedPath,
    Schedule,
    SourceConfig,
    SqlSourceConfig,
    TransformersSourceConfig,
    VersionLabel,
    parse_duration,
    valid_host,
)
from collector.vocabulary import DATABASE_URL_ENV

__all__ = [
    "ACTIVE_SOURCE_TYPES",
    "DATABASE_URL_ENV",
    "DEFAULT_STATE_DIRNAME",
    "MEANINGLESS_MODEL_NAMES",
    "PULL_MIN_SAMPLES",
    "PULL_SOURCE_TYPES",
    "AlertReceiverConfig",
    "Config",
    "ConfigError",
    "Decoding",
    "EmbeddingServerConfig",
    "JsonlFields",
    "JsonlSourceConfig",
    "ModelConfig",
    "ModelName",
    "OpenAISourceConfig",
    "Problem",
    "ResolvedPath",
    "Schedule",
    "SourceConfig",
    "SqlSourceConfig",
    "TransformersSourceConfig",
    "VersionLabel",
    "check_config",
    "config_from_dict",
    "config_hash",
    "environment_problems",
    "load_config",
    "parse_config",
    "parse_duration",
    "valid_host",
]
