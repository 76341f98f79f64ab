"""Loading the configuration: YAML plus the environment, validated whole, paths made absolute.

``load_config(path)`` validates the whole file at once and raises ``ConfigError`` listing *every*
problem with its path in the file and its line number (``collector.config.errors``).  Relative paths
in the file are resolved against the directory of the config file; ``COLLAPSE_WATCH_DATABASE_URL``
overrides ``database_url``; a pull source without a ``state_file`` gets one under the state directory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from collector import environment
from collector.config.errors import (
    ConfigError,
    duplicate_keys,
    duplicate_names,
    line_of,
    validation_errors,
)
from collector.config.schema import Config, JsonlSourceConfig, SqlSourceConfig

DEFAULT_STATE_DIRNAME = ".collapse-watch"


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
    data = _with_environment(data)
    dup_keys = duplicate_keys(root)
    try:
        cfg = Config.model_validate(data, context={"base_dir": base})
    except ValidationError as e:
        errors = validation_errors(e, root)
        errors += [d for d in duplicate_names(data, root) if d not in errors]
        raise ConfigError(source, sorted(errors + dup_keys, key=line_of)) from None
    if dup_keys:
        raise ConfigError(source, dup_keys)
    return _with_state_files(cfg, base)


def _with_environment(data: dict[str, Any]) -> dict[str, Any]:
    """The settings with what the environment overrides: ``COLLAPSE_WATCH_DATABASE_URL``."""
    env_url = environment.database_url()
    return {**data, "database_url": env_url} if env_url else dict(data)


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
    try:
        return config_from_dict(data, base_dir=base_dir, source=source, root=root)
    except RecursionError:  # an alias that contains itself (`a: &a [*a]`): no value can be read from it
        raise ConfigError(source, ["not a usable config: an alias refers to itself"]) from None


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


def _default_state_dir(cfg: Config, base_dir: Path) -> Path:
    """``state_dir``; else beside a SQLite database file; else beside the config file."""
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
