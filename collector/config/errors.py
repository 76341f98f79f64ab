"""How a configuration problem is reported: ``ConfigError``, one line per problem with its path in the
file and its line number, e.g.::

    config.yml: 2 errors
      models[0].schedule.every (line 12): invalid duration '30x' (expected e.g. 30s, 15m, 1h, 2h30m)
      models[1].sourse (line 20): unknown key 'sourse' (did you mean 'source'?)

The line numbers come from the composed YAML (``root``); without it a problem has its path only.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ValidationError

from collector.config.schema import Config


class ConfigError(Exception):
    """The configuration could not be loaded; ``errors`` holds one line per problem."""

    def __init__(self, source: str, errors: list[str]) -> None:
        self.source = source
        self.errors = errors
        noun = "error" if len(errors) == 1 else "errors"
        super().__init__(f"{source}: {len(errors)} {noun}\n" + "\n".join(f"  {e}" for e in errors))


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
    """The one model type inside ``Annotated[...]`` / ``X | None``; a true union as it is."""
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
    """One pydantic error in the file's words (unknown keys get a 'did you mean')."""
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


def validation_errors(exc: ValidationError, root: yaml.Node | None) -> list[str]:
    """Every validation error as ``path (line N): message``."""
    out = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        path, line = _format_loc(loc, root)
        where = f"{path} (line {line})" if line is not None else path
        out.append(f"{where}: {_message(err)}")
    return out


def duplicate_names(data: dict[str, Any], root: yaml.Node | None) -> list[str]:
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


def line_of(error: str) -> int:
    """The line an error names, for sorting (one naming none goes last)."""
    m = re.search(r"\(line (\d+)\):", error)
    return int(m.group(1)) if m else 10**9


def duplicate_keys(node: yaml.Node | None, path: str = "") -> list[str]:
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
            out += duplicate_keys(v, here)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            out += duplicate_keys(v, f"{path}[{i}]")
    return out
