"""Tail JSONL request logs: a file or a glob, read incrementally across restarts and rotation.

Per file the state remembers ``(device, inode)``, the byte offset and line number reached, and a
SHA-1 fingerprint of the file's first bytes (up to 256).  On each ``pull``:

* files are found by the glob (oldest modification first); a tracked file that no longer matches
  (``app.log`` renamed to ``app.log.1`` by logrotate) is looked up by inode in its old directory and
  its unread tail is read first, so nothing written before the rename is lost;
* a file whose size is below the remembered offset, or whose first bytes changed (copytruncate, or
  an inode reused by a new file), is read again from the start; before that, its rotated copies
  (``app.log.1``, ``app.log.2``, … or dated ``app.log-20261206``) are searched newest first for the
  one with the old first bytes and at least the old offset's length: it takes over the old position
  and the copies newer than it (further rotations between two passes) are read whole, so the lines
  written since the last pass are read once, whether the glob matches the copies or not; a
  compressed copy cannot be read and is logged as lost (``_adopt_copies``, ``lost_copies``), and a
  compressed file the glob matches is skipped with a warning;
* only complete lines are consumed: a last line without ``\\n`` waits until it is finished;
* a malformed line (not UTF-8, not JSON, not an object, prompt/output missing or not strings)
  becomes an outcome with ``error`` = ``"<file>:<line>: <reason>"`` and is listed in ``malformed``.

The offsets reach the state file only on ``commit()`` (see ``collector.sources.base``).  Every
outcome's ``source_key`` is ``jsonl:<dev>:<inode>:<offset>:<sha1 of the line>``, stable on
re-delivery.  Known limits: a copytruncated file that regrows past the old offset with identical
first 256 bytes is not noticed; a file rotated away with an unfinished last line keeps it unread.
"""

from __future__ import annotations

import copy
import glob
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from collector import json_input
from collector.config import JsonlFields, JsonlSourceConfig
from collector.probes import prompt_id as prompt_id_of
from collector.sources.base import SampleOutcome
from collector.state import JsonState

FINGERPRINT_BYTES = 256
CHUNK = 1 << 20
EXCERPT_BYTES = 200
log = logging.getLogger(__name__)


@dataclass
class _Cursor:
    path: str
    offset: int = 0
    line: int = 0
    fp: str = ""
    fp_len: int = 0

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> _Cursor:
        return cls(str(d["path"]), int(d["offset"]), int(d["line"]), str(d["fp"]), int(d["fp_len"]))


def _fingerprint(f: BinaryIO, length: int) -> tuple[str, int]:
    f.seek(0)
    head = f.read(length)
    return hashlib.sha1(head).hexdigest(), len(head)


COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".Z")
_STAMP = r"([-_.])(\d[\d_.-]*?)"


def rotated_chain(path: str) -> list[str]:
    """The rotated copies of ``path`` beside it, newest first: ``path.1``, ``path.2``, … (numbered),
    then the dated ones logrotate's ``dateext`` makes (``path-20261206``…, latest first); each may
    end in a compression suffix."""
    directory, base = os.path.split(path)
    pattern = re.compile(re.escape(base) + _STAMP + "(" + "|".join(re.escape(c) for c in COMPRESSED) + ")?")
    found = []
    try:
        names = os.listdir(directory or ".")
    except OSError:
        return []
    for name in names:
        m = pattern.fullmatch(name)
        if m is None:
            continue
        digits = re.sub(r"\D", "", m.group(2))
        numbered = m.group(1) == "." and len(digits) < 8
        found.append(((0, int(digits)) if numbered else (1, -int(digits)), os.path.join(directory, name)))
    return [p for _, p in sorted(found)]


class JsonlSource:
    """A pull source over JSONL files."""

    kind = "jsonl"

    def __init__(self, cfg: JsonlSourceConfig, *, state_file: str | os.PathLike[str] | None = None) -> None:
        path = state_file or cfg.state_file
        if path is None:
            raise ValueError("a jsonl source needs a state_file (load_config assigns one by default)")
        self.cfg = cfg
        self.fields: JsonlFields = cfg.fields
        self.state = JsonState(path)
        raw = self.state.load().get("files", {})
        self._committed: dict[str, _Cursor] = {k: _Cursor.from_json(v) for k, v in raw.items()}
        self._pending = copy.deepcopy(self._committed)
        self.malformed: list[str] = []
        self.lost_copies: list[str] = []  # compressed rotated copies that held unread lines
        self._compressed_seen: set[str] = set()
        self._matched = True

    # -- contract ---------------------------------------------------------------------------------

    def pull(self, limit: int | None = None) -> Iterator[SampleOutcome]:
        """Yield records after the current position (at most ``limit``), advancing it in memory."""
        if limit is not None and limit <= 0:
            return
        emitted = 0
        counters: dict[str, int] = {}
        for path in self._files_in_order():
            for out in self._read_file(path, counters):
                yield out
                emitted += 1
                if limit is not None and emitted >= limit:
                    return

    def commit(self) -> None:
        """Persist the position of everything yielded so far (atomically)."""
        self.state.save(self.position())
        self._committed = copy.deepcopy(self._pending)

    def position(self) -> dict[str, Any]:
        """The position of everything yielded so far, JSON-safe (what ``commit`` saves)."""
        return {"version": 1, "files": {k: dict(vars(c)) for k, c in self._pending.items()}}

    def restore(self, position: dict[str, Any]) -> None:
        """Continue from ``position`` (as returned by ``position()``), e.g. one kept in the database."""
        files = position.get("files", {})
        self._committed = {k: _Cursor.from_json(v) for k, v in files.items()}
        self._pending = copy.deepcopy(self._committed)

    def no_data_reason(self) -> str | None:
        """Why the last pull could not read anything at all (no file matches the glob), else None."""
        return None if self._matched else f"no file matches {self.cfg.path}"

    def close(self) -> None:
        pass

    # -- discovery --------------------------------------------------------------------------------

    def _files_in_order(self) -> list[str]:
        matched = []
        for p in glob.glob(self.cfg.path, recursive=True):
            if p.endswith(COMPRESSED):  # a compressed rotated copy (glob app.log*): not JSONL text
                if p not in self._compressed_seen:
                    self._compressed_seen.add(p)
                    log.warning("%s is compressed and cannot be read: skipped", p)
                continue
            try:
                st = os.stat(p)
            except OSError:
                continue
            if os.path.isfile(p):
                matched.append((st.st_mtime, p, f"{st.st_dev}:{st.st_ino}"))
        matched.sort()
        self._matched = bool(matched)
        seen = {key for _, _, key in matched}
        rotated = [path for key, path in self._adopt_copies() if key not in seen]
        for key, cur in list(self._pending.items()):
            if key in seen:
                continue
            moved = self._find_by_inode(key, Path(cur.path).parent)
            if moved is None:
                del self._pending[key]  # deleted (or compressed): nothing more to read
            else:
                rotated.append(moved)
        return rotated + [p for _, p, _ in matched]

    def _adopt_copies(self) -> list[tuple[str, str]]:
        """Rotated copies of tracked files that were truncated (logrotate ``copytruncate``).

        A tracked file now shorter than its offset, or whose first bytes changed, was truncated or
        replaced.  Its rotated copies beside it (``app.log.1``, ``app.log.2``, … or the dated
        ``app.log-20261206``, newest first) are searched for the one with the old first bytes and
        at least the old offset's length (as Filebeat and Vector recognise a file by a fingerprint
        of its head, not by its name): it takes over the old position, and every untracked copy
        newer than it (made by further rotations before this pass) is read from its start.  So the
        lines written since the last pass are read once, whether the glob matches the copies
        (``app.log*``) or not (``app.log``), and nothing already read is read again.  A compressed
        copy (``.gz`` and the like) cannot be read: it is logged as lost and listed in
        ``lost_copies``.  Returns the adopted copies' ``(key, path)``.
        """
        copies: list[tuple[str, str]] = []
        for key, cur in list(self._pending.items()):
            if cur.fp_len == 0 or not self._was_truncated(key, cur):
                continue
            found, newer, lost = self._search_chain(cur)
            if found is None and not lost:
                found = self._find_copy(cur)  # a copy named otherwise (logrotate ``extension``)
            if found is None and not lost:
                log.warning(
                    "%s was truncated and no rotated copy holds its old first bytes: the lines written "
                    "after byte %d since the last pass cannot be found",
                    cur.path,
                    cur.offset,
                )
                continue
            for path in lost:
                log.warning(
                    "%s was truncated (copytruncate) and its rotated copy %s is compressed, which cannot "
                    "be read: the unread lines in it are lost",
                    cur.path,
                    path,
                )
                self.lost_copies.append(path)
            if found is not None:
                copy_key, copy_path = found
                self._pending[copy_key] = _Cursor(copy_path, cur.offset, cur.line, cur.fp, cur.fp_len)
                copies.append(found)
            for newer_key, newer_path in newer:
                self._pending[newer_key] = _Cursor(newer_path)
                copies.append((newer_key, newer_path))
        return copies

    @staticmethod
    def _was_truncated(key: str, cur: _Cursor) -> bool:
        try:
            with open(cur.path, "rb") as f:
                st = os.fstat(f.fileno())
                if f"{st.st_dev}:{st.st_ino}" != key:
                    return False  # renamed away (read by inode) or replaced by a new file
                return st.st_size < cur.offset or _fingerprint(f, cur.fp_len)[0] != cur.fp
        except OSError:
            return False

    def _search_chain(self, cur: _Cursor) -> tuple[tuple[str, str] | None, list[tuple[str, str]], list[str]]:
        """Walk ``cur``'s rotated copies newest first, up to the first one already tracked (read
        before).  Returns the copy holding the old position (or None), the untracked copies newer
        than it (to read whole) and the compressed copies met on the way (lost).  When no copy holds
        the old position, the newer copies are those before the first compressed one (presumed to
        hold it); with no compressed copy either, none (an old copy is never read by a guess)."""
        tracked = set(self._pending)
        newer: list[tuple[str, str]] = []
        lost: list[str] = []
        for path in rotated_chain(cur.path):
            try:
                with open(path, "rb") as f:
                    st = os.fstat(f.fileno())
                    key = f"{st.st_dev}:{st.st_ino}"
                    if key in tracked:
                        break
                    if path.endswith(COMPRESSED):
                        lost.append(path)
                        continue
                    if st.st_size >= cur.offset and _fingerprint(f, cur.fp_len) == (cur.fp, cur.fp_len):
                        return (key, path), newer, lost
                    if not lost:
                        newer.append((key, path))
            except OSError:
                continue
        return None, (newer if lost else []), lost[:1]

    def _find_copy(self, cur: _Cursor) -> tuple[str, str] | None:
        """Any untracked file beside ``cur`` with its old first bytes (a copy named otherwise)."""
        tracked = set(self._pending)
        directory = Path(cur.path).parent
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            return None
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
                if not entry.is_file(follow_symlinks=False) or f"{st.st_dev}:{st.st_ino}" in tracked:
                    continue
                if st.st_size < cur.offset:
                    continue
                with open(entry.path, "rb") as f:
                    if _fingerprint(f, cur.fp_len) == (cur.fp, cur.fp_len):
                        return f"{st.st_dev}:{st.st_ino}", entry.path
            except OSError:
                continue
        return None

    @staticmethod
    def _find_by_inode(key: str, directory: Path) -> str | None:
        dev, ino = (int(x) for x in key.split(":"))
        try:
            with os.scandir(directory) as it:
                for entry in it:
                    st = entry.stat(follow_symlinks=False)
                    if st.st_ino == ino and st.st_dev == dev and entry.is_file(follow_symlinks=False):
                        return entry.path
        except OSError:
            return None
        return None

    # -- reading ----------------------------------------------------------------------------------

    def _cursor_for(self, f: BinaryIO, path: str) -> tuple[str, _Cursor]:
        st = os.fstat(f.fileno())
        key = f"{st.st_dev}:{st.st_ino}"
        cur = self._pending.get(key)
        if cur is not None:
            fp, _ = _fingerprint(f, cur.fp_len)
            if st.st_size < cur.offset or fp != cur.fp:
                cur = None  # truncated or replaced: start over
        if cur is None:
            cur = _Cursor(path)
        cur.path = path
        cur.fp, cur.fp_len = _fingerprint(f, FINGERPRINT_BYTES)
        self._pending[key] = cur
        return key, cur

    def _read_file(self, path: str, counters: dict[str, int]) -> Iterator[SampleOutcome]:
        try:
            f = open(path, "rb")  # noqa: SIM115 - held open across yields
        except OSError:
            return
        limit = self.cfg.max_line_bytes
        with f:
            key, cur = self._cursor_for(f, path)
            f.seek(cur.offset)
            buf = b""
            skipped = 0  # bytes of an over-long line read so far (its head is in ``head``)
            head = b""
            while True:
                chunk = f.read(CHUNK)
                if not chunk:
                    break
                if skipped:
                    nl = chunk.find(b"\n")
                    if nl < 0:
                        skipped += len(chunk)
                        continue
                    yield self._line(head, skipped + nl, path, key, cur, counters)
                    chunk, skipped, head = chunk[nl + 1 :], 0, b""
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for raw in lines:
                    out = self._line(raw, len(raw), path, key, cur, counters)
                    if out is not None:
                        yield out
                if len(buf) > limit:  # an unfinished line already over the limit: stop holding it
                    skipped, head, buf = len(buf), buf[:EXCERPT_BYTES], b""

    def _line(
        self, raw: bytes, size: int, path: str, key: str, cur: _Cursor, counters: dict[str, int]
    ) -> SampleOutcome | None:
        """The outcome of one complete line of ``size`` bytes (``raw``: it, or its head when over
        ``max_line_bytes``), advancing the cursor past it; None for a blank line."""
        start = cur.offset
        cur.offset += size + 1
        cur.line += 1
        source_key = f"jsonl:{key}:{start}:{hashlib.sha1(raw).hexdigest()[:16]}"
        if size > self.cfg.max_line_bytes:
            msg = (
                f"{path}:{cur.line}: line of {size} bytes is over max_line_bytes ({self.cfg.max_line_bytes})"
            )
            self.malformed.append(msg)
            excerpt = raw[:EXCERPT_BYTES].decode("utf-8", "replace")
            out = SampleOutcome("", "", 0, error=msg, source_key=source_key, excerpt=excerpt)
            out.location = f"{path}:{cur.line}"
            return out
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            return None
        try:
            out = self._outcome(raw, path, cur.line, source_key, counters)
        except Exception as exc:  # one odd record must never stop the pull
            msg = f"{path}:{cur.line}: unreadable record ({type(exc).__name__}: {exc})"
            self.malformed.append(msg)
            out = SampleOutcome("", "", 0, error=msg, source_key=source_key)
        out.location = f"{path}:{cur.line}"
        return out

    def _outcome(
        self, raw: bytes, path: str, line: int, source_key: str, counters: dict[str, int]
    ) -> SampleOutcome:
        def bad(reason: str) -> SampleOutcome:
            msg = f"{path}:{line}: {reason}"
            self.malformed.append(msg)
            excerpt = raw[:EXCERPT_BYTES].decode("utf-8", "replace")
            return SampleOutcome("", "", 0, error=msg, source_key=source_key, excerpt=excerpt)

        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            return bad(f"not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})")
        try:
            rec = json_input.loads(text)
        except json.JSONDecodeError as e:
            return bad(f"invalid JSON ({e.msg} at column {e.colno})")
        if not isinstance(rec, dict):
            return bad(f"expected a JSON object, got {type(rec).__name__}")
        f = self.fields
        missing = [k for k in (f.prompt, f.output) if not isinstance(rec.get(k), str)]
        if missing:
            return bad("missing or non-string " + ", ".join(repr(k) for k in missing))
        prompt, output = rec[f.prompt], rec[f.output]
        pid = rec.get(f.prompt_id) if f.prompt_id else None
        if json_input.non_finite(pid):
            return bad(f"{f.prompt_id!r} is {pid}, not a finite number (write it as a string)")
        prompt_id = str(pid) if pid is not None else prompt_id_of(prompt)
        index = counters.get(prompt_id, 0)
        counters[prompt_id] = index + 1
        version = rec.get(f.version) if f.version else None
        model = rec.get(f.model) if f.model else None
        return SampleOutcome(
            prompt_id,
            prompt,
            index,
            output=output,
            version=_label(version),
            model_reported=_label(model),
            source_key=source_key,
        )


def _label(value: Any) -> str | None:
    """A record's version or model field as text; absent, null or empty means "not given" (the
    config's ``version`` then applies)."""
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
