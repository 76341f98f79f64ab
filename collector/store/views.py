"""The SQL views for ad-hoc analysis (portable: the same text runs on SQLite and PostgreSQL).

Only runs whose status is 'succeeded' or 'partial' feed the metric views, so a run that crashed or
is still running never looks complete. Documented with example queries in docs/sql.md.
"""

from __future__ import annotations

from collector.vocabulary import COMPLETED_RUN_STATUSES, FAILED_RUN_STATUSES


def _sql_in(values: tuple[str, ...]) -> str:
    """``('a', 'b')``: a tuple of statuses as an SQL list."""
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


VIEWS: dict[str, str] = {
    "v_metric_history": """
SELECT mo.id AS model_id, mo.name AS model, mv.id AS version_id, mv.label AS version,
       mv.ordinal AS version_ordinal, r.id AS run_id, r.started_at AS run_started_at,
       r.status AS run_status, v.metric, v.scope, v.value, v.ci_low, v.ci_high,
       v.n_samples, v.n_prompts, v.family, v.higher_is_diverse
FROM metric_values v
JOIN runs r ON r.id = v.run_id
JOIN model_versions mv ON mv.id = v.version_id
JOIN models mo ON mo.id = mv.model_id
WHERE r.status IN """
    + _sql_in(COMPLETED_RUN_STATUSES)
    + """
""",
    "v_latest_metrics": """
SELECT h.* FROM v_metric_history h
WHERE NOT EXISTS (
  SELECT 1 FROM v_metric_history h2
  WHERE h2.version_id = h.version_id AND h2.metric = h.metric AND h2.scope = h.scope
    AND h2.run_id > h.run_id)
""",
    "v_failed_runs": """
SELECT r.id AS run_id, mo.name AS model, mv.label AS version, r.status, r.error,
       r.started_at, r.finished_at, r.n_samples, r.n_errors, r.source_kind, r.config_hash
FROM runs r
JOIN model_versions mv ON mv.id = r.version_id
JOIN models mo ON mo.id = r.model_id
WHERE r.status IN """
    + _sql_in(FAILED_RUN_STATUSES)
    + """
""",
    "v_duplicate_samples": """
SELECT mo.name AS model, mv.label AS version, s.run_id, s.text_id, t.sha256,
       COUNT(*) AS n_copies, MIN(s.id) AS first_sample_id
FROM samples s
JOIN texts t ON t.id = s.text_id
JOIN model_versions mv ON mv.id = s.version_id
JOIN models mo ON mo.id = mv.model_id
GROUP BY mo.name, mv.label, s.run_id, s.text_id, t.sha256
HAVING COUNT(*) > 1
""",
    "v_metric_vs_baseline": """
SELECT l.model, l.version, l.version_ordinal, l.metric, l.scope, l.value,
       b.version AS baseline_version, b.value AS baseline_value,
       l.value - b.value AS delta,
       CASE WHEN b.value <> 0 THEN (l.value - b.value) / ABS(b.value) END AS relative_change,
       l.higher_is_diverse
FROM v_latest_metrics l
JOIN models mo ON mo.id = l.model_id
JOIN v_latest_metrics b
  ON b.model_id = l.model_id AND b.metric = l.metric AND b.scope = l.scope
 AND b.version_id = COALESCE(mo.baseline_version_id,
       (SELECT mv.id FROM model_versions mv WHERE mv.model_id = mo.id
        AND mv.ordinal = (SELECT MIN(mv2.ordinal) FROM model_versions mv2 WHERE mv2.model_id = mo.id)))
""",
}
ORDER = list(VIEWS)  # dependency order for creation; drop in reverse

#: Views over tables of later migrations, created by that migration (the views above are rebuilt
#: by older migrations too, before these tables exist).  A later migration that rebuilds ``runs``
#: on SQLite drops and recreates these as well.
LATER_VIEWS: dict[str, str] = {
    "v_prompt_findings": """
SELECT mo.name AS model, mv.label AS version, f.run_id, rv.label AS baseline_version,
       f.reference_run_id AS baseline_run_id, f.prompt_key, p.body AS prompt, f.metric,
       f.baseline_value, f.candidate_value, f.change, f.p_value, f.adjusted_p, f.collapsed
FROM prompt_findings f
JOIN runs r ON r.id = f.run_id
JOIN model_versions mv ON mv.id = f.version_id
JOIN models mo ON mo.id = mv.model_id
JOIN runs rr ON rr.id = f.reference_run_id
JOIN model_versions rv ON rv.id = rr.version_id
LEFT JOIN prompts p ON p.id = f.prompt_id
""",
}


def create_views(execute) -> None:  # type: ignore[no-untyped-def]
    """Create every view with ``execute(sql)`` (alembic's ``op.execute`` or a connection's)."""
    for name in ORDER:
        execute(f"CREATE VIEW {name} AS {VIEWS[name].strip()}")


def drop_views(execute) -> None:  # type: ignore[no-untyped-def]
    """Drop every view, dependants first."""
    for name in reversed(ORDER):
        execute(f"DROP VIEW IF EXISTS {name}")
