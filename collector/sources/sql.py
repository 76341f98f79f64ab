"""Pull logged outputs from a SQL database, incrementally by a watermark column.

The configured query is wrapped::

    SELECT * FROM (<query>) AS cw_src
    [WHERE cw_src.<watermark> > :cw_watermark]     -- omitted on the very first pull
    ORDER BY cw_src.<watermark> [LIMIT :cw_limit]

so the first pull reads every row and later pulls only rows with a larger watermark.  The query may
also reference ``:watermark`` itself (to let the database use an index early); it is bound to the
last watermark, which is NULL on the first pull, so on PostgreSQL write it with a cast, e.g.
``WHERE :watermark IS NULL OR id > CAST(:watermark AS bigint)``.

Rows are ordered by the watermark, and the stored watermark only advances past a value once every
row with that value was delivered (a ``limit`` never splits a group of equal values), so equal
timestamps are safe.  Rows inserted later with a watermark *below* the stored one are never seen:
prefer an identity column or a commit-ordered sequence as the watermark.  The watermark reaches the
state file only on ``commit()``; ``source_key`` is ``sql:<watermark>:<hash of the row>``.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from collector.config import SqlSourceConfig
from collector.probes import prompt_id as prompt_id_of
from collector.sources.base import SampleOutcome, SourceError
from collector.state import JsonState


def dump_watermark(value: Any) -> dict[str, Any] | None:
    """A JSON-safe, type-preserving form of a watermark value."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise SourceError("a boolean column cannot be a watermark")
    if isinstance(value, int):
        return {"type": "int", "value": value}
    if isinstance(value, float):
        return {"type": "float", "value": value}
    if isinstance(value, Decimal):
        return {"type": "decimal", "value": str(value)}
    if isinstance(value, datetime):
        return {"type": "datetime", "value": value.isoformat()}
    if isinstance(value, date):
        return {"type": "date", "value": value.isoformat()}
    if isinstance(value, str):
        return {"type": "str", "value": value}
    raise SourceError(
        f"unsupported watermark type {type(value).__name__} (use an integer, timestamp or text)"
    )


def load_watermark(data: dict[str, Any] | None) -> Any:
    if data is None:
        return None
    kind, value = data["type"], data["value"]
    loaders = {
        "int": int,
        "float": float,
        "decimal": Decimal,
        "datetime": datetime.fromisoformat,
        "date": date.fromisoformat,
        "str": str,
    }
    return loaders[kind](value)


class SqlSource:
    """A pull source over a SQL query."""

    kind = "sql"

    def __init__(self, cfg: SqlSourceConfig, *, state_file: str | None = None) -> None:
        path = state_file or cfg.state_file
        if path is None:
            raise ValueError("a sql source needs a state_file (load_config assigns one by default)")
        self.cfg = cfg
        self.where = make_url(cfg.url).render_as_string(hide_password=True)
        self.state = JsonState(path)
        self._committed = load_watermark(self.state.load().get("watermark"))
        self._pending = self._committed
        self.malformed: list[str] = []
        try:
            self.engine: Engine = create_engine(cfg.url, pool_pre_ping=True)
        except (SQLAlchemyError, ImportError, ValueError) as e:
            raise SourceError(f"sql source {self.where}: cannot create an engine: {e}") from None

    @property
    def watermark(self) -> Any:
        """The watermark of everything delivered so far (committed or not)."""
        return self._pending

    def _statement(self, after: Any, limit: int | None) -> tuple[str, dict[str, Any]]:
        col = self.engine.dialect.identifier_preparer.quote(self.cfg.watermark_column)
        sql = f"SELECT * FROM ({self.cfg.query}) AS cw_src"
        params: dict[str, Any] = {}
        if re.search(r"(?<!:):watermark\b", self.cfg.query):
            params["watermark"] = after
        if after is not None:
            sql += f" WHERE cw_src.{col} > :cw_watermark"
            params["cw_watermark"] = after
        sql += f" ORDER BY cw_src.{col}"
        if limit is not None:
            sql += " LIMIT :cw_limit"
            params["cw_limit"] = limit
        return sql, params

    def _fetch(self, after: Any, limit: int | None) -> list[dict[str, Any]]:
        return self._fetch_typed(after, limit)[0]

    def check(self) -> list[str]:
        """What would make every pull fail, found by reading one row (``config check --connect``):
        the query fails (no such table), a needed column is not selected, or prompt/output/the
        watermark have types the source cannot use."""
        try:
            rows, types = self._fetch_typed(None, 1)
        except SourceError as exc:
            return [str(exc)]
        problems = []
        textual = {25, 1042, 1043, 19, 142, 114, 3802}  # PostgreSQL text, char, varchar, name, xml, json(b)
        for col in ("prompt", "output"):
            oid = types.get(col)
            if isinstance(oid, int) and oid not in textual:
                problems.append(f"sql source {self.where}: column {col} is not text (type oid {oid})")
            elif rows and rows[0].get(col) is not None and not isinstance(rows[0][col], str):
                kind = type(rows[0][col]).__name__
                problems.append(f"sql source {self.where}: column {col} holds {kind}, not text")
        if rows:
            try:
                dump_watermark(rows[0][self.cfg.watermark_column])
            except SourceError as exc:
                problems.append(f"sql source {self.where}: watermark {self.cfg.watermark_column}: {exc}")
        return problems

    def _fetch_typed(self, after: Any, limit: int | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        sql, params = self._statement(after, limit)
        try:
            with self.engine.connect() as conn:
                result = conn.execute(text(sql), params)
                description = result.cursor.description if result.cursor is not None else None
                rows = [dict(r._mapping) for r in result]
        except SQLAlchemyError as e:
            detail = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
            raise SourceError(f"sql source {self.where}: query failed: {detail}") from None
        types = {d[0]: d[1] for d in description or []}
        self._need(list(types))
        return rows, types

    def _need(self, columns: list[str]) -> None:
        need = ["prompt", "output", self.cfg.watermark_column]
        if self.cfg.version_column:
            need.append(self.cfg.version_column)
        missing = [c for c in need if c not in columns]
        if missing:
            raise SourceError(
                f"sql source {self.where}: the query does not select {', '.join(missing)} "
                f"(it selects: {', '.join(columns)})"
            )

    def _trim(self, rows: list[dict[str, Any]], after: Any, limit: int | None) -> list[dict[str, Any]]:
        """Never split a group of equal watermarks at the limit."""
        wm = self.cfg.watermark_column
        if limit is None or len(rows) < limit or not rows:
            return rows
        last = rows[-1][wm]
        if rows[0][wm] != last:
            return [r for r in rows if r[wm] != last]
        # the whole page is one value: fetch the whole group
        group = self._fetch(after, None)
        return [r for r in group if r[wm] == last]

    def pull(self, limit: int | None = None) -> Iterator[SampleOutcome]:
        """Yield rows with a watermark above the current one, in watermark order."""
        if limit is not None and limit <= 0:
            return
        after = self._pending
        rows = self._trim(self._fetch(after, limit), after, limit)
        wm = self.cfg.watermark_column
        counters: dict[str, int] = {}
        for i, row in enumerate(rows):
            if i > 0 and rows[i - 1][wm] != row[wm]:
                self._pending = rows[i - 1][wm]  # the previous group is complete
            dump_watermark(row[wm])  # unsupported types fail before anything is delivered
            yield self._outcome(row, counters)
        if rows:
            self._pending = rows[-1][wm]

    def _outcome(self, row: dict[str, Any], counters: dict[str, int]) -> SampleOutcome:
        wm_value = row[self.cfg.watermark_column]
        prompt, output = row["prompt"], row["output"]
        key_src = "\x00".join(str(row.get(c)) for c in ("prompt_id", "prompt", "output"))
        digest = hashlib.sha1(key_src.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        source_key = f"sql:{wm_value}:{digest}"
        if not isinstance(prompt, str) or not isinstance(output, str):
            msg = f"{self.where}: row with {self.cfg.watermark_column}={wm_value}: prompt/output is not text"
            self.malformed.append(msg)
            excerpt = repr({k: row.get(k) for k in ("prompt", "output")})[:200]
            return SampleOutcome("", "", 0, error=msg, source_key=source_key, excerpt=excerpt)
        pid = row.get("prompt_id")
        prompt_id = str(pid) if pid is not None else prompt_id_of(prompt)
        index = counters.get(prompt_id, 0)
        counters[prompt_id] = index + 1
        version = row.get(self.cfg.version_column) if self.cfg.version_column else None
        out = SampleOutcome(
            prompt_id,
            prompt,
            index,
            output=output,
            version=str(version) if version is not None else None,
            model_reported=str(row["model"]) if row.get("model") is not None else None,
            source_key=source_key,
        )
        out.location = f"{self.where} row {self.cfg.watermark_column}={wm_value}"
        if isinstance(wm_value, datetime):
            out.created_at = wm_value
        return out

    def commit(self) -> None:
        """Persist the watermark of everything yielded so far (atomically)."""
        self.state.save(self.position())
        self._committed = copy.copy(self._pending)

    def position(self) -> dict[str, Any]:
        """The watermark of everything yielded so far, JSON-safe (what ``commit`` saves)."""
        return {"version": 1, "watermark": dump_watermark(self._pending)}

    def restore(self, position: dict[str, Any]) -> None:
        """Continue after the watermark in ``position`` (as returned by ``position()``)."""
        self._committed = load_watermark(position.get("watermark"))
        self._pending = self._committed

    def close(self) -> None:
        self.engine.dispose()
