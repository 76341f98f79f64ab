"""Alert history: every Alertmanager webhook notification the collector receives, kept in SQL.

``AlertHistory(engine).record(payload)`` validates one webhook body (Alertmanager's version 4
format) and stores one row per alert in ONE transaction, firing and resolved alike, so the history
says when each alert started, was re-sent and resolved.  A body that is not a notification raises
``StoreError`` naming the field that is wrong, and nothing is stored.  The view ``v_alert_history``
(docs/sql.md) is what ``collapse-watch history`` and the HTML report read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select

from collector.store import models as m
from collector.store.errors import StoreError
from collector.store.text import LABEL_MAX, fit

ALERT_HISTORY_VIEW = "v_alert_history"
ALERT_HISTORY_SQL = """
SELECT a.id, a.received_at, a.alertname, a.severity, a.model, a.version, a.status,
       a.starts_at, a.ends_at, a.summary, a.receiver, a.fingerprint
FROM alert_notifications a
"""


@dataclass(frozen=True)
class AlertEvent:
    """One row of ``v_alert_history``."""

    received_at: datetime
    alertname: str
    severity: str | None
    model: str | None
    version: str | None
    status: str
    starts_at: datetime | None
    ends_at: datetime | None
    summary: str | None
    receiver: str


def _time(value: Any, where: str) -> datetime | None:
    """An RFC 3339 time of the payload; Alertmanager's zero time (``0001-01-01…``) means none."""
    if value in (None, "") or str(value).startswith("0001-01-01"):
        return None
    try:
        text = str(value).replace("Z", "+00:00")
        if "." in text:  # Go prints up to nanoseconds; Python parses microseconds
            head, _, tail = text.partition(".")
            digits = "".join(c for c in tail if c.isdigit())
            text = f"{head}.{digits[:6].ljust(6, '0')}{tail[len(digits) :]}"
        t = datetime.fromisoformat(text)
    except ValueError:
        raise StoreError(f"alert notification: {where} is not an RFC 3339 time: {value!r}") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


TEXT_MAX = 10_000  # characters kept of a summary, a group key or one label/annotation value


def _text(value: Any, limit: int = TEXT_MAX) -> str:
    """Any JSON value as storable text: strings as they are, anything else as compact JSON; NUL and
    lone surrogates replaced, cut to ``limit`` with a marker (``collector.store.text.fit``)."""
    if not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return fit(value, limit)


def _opt(value: Any, limit: int) -> str | None:
    return None if value is None else _text(value, limit)


def _mapping(value: dict[Any, Any]) -> dict[str, str]:
    return {_text(k, LABEL_MAX): _text(v) for k, v in value.items()}


def _rows(payload: Any, now: datetime) -> list[dict[str, Any]]:
    """The rows of one notification.  Only a body that is not an Alertmanager notification at all
    (no ``alerts`` list, an alert without ``labels.alertname`` or status) raises ``StoreError``;
    every value of one that is is stored, made to fit (issue #22): text cut to its column with
    ``…``, NUL and lone surrogates replaced, an object where text was expected kept as JSON text,
    an unparsable time kept in the annotations as ``collapse_watch_unparsed_<field>``."""
    if not isinstance(payload, dict):
        raise StoreError("alert notification: the body must be a JSON object")
    alerts = payload.get("alerts")
    if not isinstance(alerts, list) or not alerts:
        raise StoreError("alert notification: 'alerts' must be a non-empty list")
    receiver = payload.get("receiver")
    if receiver in (None, ""):
        raise StoreError("alert notification: 'receiver' must be a non-empty string")
    rows = []
    for i, a in enumerate(alerts):
        where = f"alerts[{i}]"
        if not isinstance(a, dict):
            raise StoreError(f"alert notification: {where} must be an object")
        labels, annotations = a.get("labels"), a.get("annotations") or {}
        if not isinstance(labels, dict) or labels.get("alertname") in (None, ""):
            raise StoreError(f"alert notification: {where}.labels.alertname is missing")
        if not isinstance(annotations, dict):
            annotations = {"collapse_watch_unparsed_annotations": annotations}
        status = a.get("status")
        if status not in ("firing", "resolved"):
            raise StoreError(f"alert notification: {where}.status must be firing or resolved, got {status!r}")
        annotations = dict(annotations)
        times = {}
        for field in ("startsAt", "endsAt"):
            try:
                times[field] = _time(a.get(field), f"{where}.{field}")
            except StoreError:
                times[field] = None
                annotations[f"collapse_watch_unparsed_{field}"] = a.get(field)
        rows.append(
            {
                "received_at": now,
                "receiver": _text(receiver, LABEL_MAX),
                "group_key": _text(payload.get("groupKey", "")),
                "status": status,
                "alertname": _text(labels["alertname"], LABEL_MAX),
                "severity": _opt(labels.get("severity"), 40),
                "model": _opt(labels.get("model"), LABEL_MAX),
                "version": _opt(labels.get("version"), LABEL_MAX),
                "fingerprint": _opt(a.get("fingerprint"), 64),
                "starts_at": times["startsAt"],
                "ends_at": times["endsAt"],
                "summary": _opt(annotations.get("summary"), TEXT_MAX),
                "labels": _mapping(labels),
                "annotations": _mapping(annotations),
            }
        )
    return rows


class AlertHistory:
    """Writes and reads ``alert_notifications`` (migration 0005)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, payload: Any) -> int:
        """Store every alert of one webhook notification; returns how many rows were stored."""
        rows = _rows(payload, datetime.now(UTC))
        with self.engine.begin() as conn:
            conn.execute(insert(m.AlertNotification), rows)
        return len(rows)

    def recent(self, model: str | None = None, limit: int = 50) -> list[AlertEvent]:
        """The latest ``limit`` notifications (of ``model`` if given), newest first."""
        a = m.AlertNotification
        q = select(
            a.received_at,
            a.alertname,
            a.severity,
            a.model,
            a.version,
            a.status,
            a.starts_at,
            a.ends_at,
            a.summary,
            a.receiver,
        ).order_by(a.received_at.desc(), a.id.desc())
        if model is not None:
            q = q.where(a.model == model)
        with self.engine.connect() as conn:
            return [AlertEvent(*row) for row in conn.execute(q.limit(limit))]
