"""A small persistent JSON state (read offsets, watermarks), written atomically.

``save`` writes a temporary file in the same directory, fsyncs it, ``os.replace``-s it over the
old one and fsyncs the directory, so a crash leaves either the old or the new state, never half.
One process per state file: nothing here locks.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from collector import json_input


class StateError(Exception):
    """The state file exists but cannot be read."""


class JsonState:
    """A JSON object stored at ``path``; a missing file reads as ``{}``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as e:
            raise StateError(f"cannot read state file {self.path}: {e.strerror or e}") from None
        try:
            data = json_input.loads(text)
        except json.JSONDecodeError as e:
            raise StateError(
                f"state file {self.path} is not valid JSON ({e}); move it away to start over"
            ) from None
        if not isinstance(data, dict):
            raise StateError(f"state file {self.path} does not hold a JSON object")
        return data

    def save(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        try:
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
