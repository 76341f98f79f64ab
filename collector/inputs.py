"""Reading files of model outputs (JSONL or CSV) into samples, with errors that name the line.

A record has ``prompt`` and ``output``; optional ``prompt_id`` (defaults to
:func:`collector.probes.prompt_id` of the prompt text, the id the probe set and the pull sources
use, so outputs of the same prompt group together and pair with stored runs), ``id``, ``model`` and ``version``.
Blank outputs are kept (they are real model behaviour) and counted by the scorer.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collector import json_input
from collector.metrics.base import Sample
from collector.probes import prompt_id


class InputError(ValueError):
    """A file of outputs could not be read; the message names the file and line."""


@dataclass(frozen=True)
class Record:
    """One line of an outputs file."""

    sample: Sample
    line: int
    id: str | None = None
    model: str | None = None
    version: str | None = None


def _as_text(value: Any, field: str, where: str) -> str:
    if value is None:
        raise InputError(f"{where}: field '{field}' is null")
    if not isinstance(value, str):
        raise InputError(f"{where}: field '{field}' must be a string, got {type(value).__name__}")
    if value.isascii():
        return value
    try:  # strict UTF-8 refuses exactly the surrogate code points, at C speed
        value.encode("utf-8")
    except UnicodeEncodeError as exc:  # a JSON escape such as "\ud800" that is not half of a valid pair
        bad = exc.start
        raise InputError(
            f"{where}: field '{field}' holds invalid Unicode (lone surrogate "
            f"\\u{ord(value[bad]):04x} at character {bad + 1})"
        ) from None
    return value


def _record(obj: Any, where: str, line: int) -> Record:
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    missing = [f for f in ("prompt", "output") if f not in obj]
    if missing:
        raise InputError(f"{where}: missing field(s) {', '.join(repr(m) for m in missing)}")
    prompt = _as_text(obj["prompt"], "prompt", where)
    output = _as_text(obj["output"], "output", where)
    pid = obj.get("prompt_id")
    if json_input.non_finite(pid):
        raise InputError(f"{where}: prompt_id {pid} is not a finite number (write it as a string)")
    pid = str(pid) if pid not in (None, "") else prompt_id(prompt)
    opt = {k: (str(obj[k]) if obj.get(k) not in (None, "") else None) for k in ("id", "model", "version")}
    return Record(Sample(prompt_id=pid, output=output, prompt=prompt), line=line, **opt)


def _read_jsonl(path: Path) -> list[Record]:
    records = []
    with path.open("rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            where = f"{path}:{line_no}"
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"{where}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
            if not text.strip():
                continue
            try:
                obj = json_input.loads(text)
            except json.JSONDecodeError as exc:
                raise InputError(f"{where}: invalid JSON ({exc.msg}, column {exc.colno})") from None
            records.append(_record(obj, where, line_no))
    return records


def _read_csv(path: Path) -> list[Record]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None:
                return []
            return [_record(row, f"{path}:{reader.line_num}", reader.line_num) for row in reader]
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise InputError(f"{path}: invalid CSV ({exc})") from None


def read_records(path: str | Path) -> list[Record]:
    """Read a JSONL (``.jsonl``/``.json``/``.ndjson``) or CSV (``.csv``) file of outputs."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file")
    try:
        records = _read_csv(path) if path.suffix.lower() == ".csv" else _read_jsonl(path)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    if not records:
        raise InputError(f"{path}: no records (expected one object per line with 'prompt' and 'output')")
    return records
