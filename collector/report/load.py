"""Build a model's report from the store and write it as one HTML file."""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime
from pathlib import Path

from collector.report.html import MetricPoint, PromptView, ReportData, VersionView, render
from collector.store import Store, StoreError
from collector.store.engine import redact_url
from collector.trends.change import format_change

SAMPLES_SHOWN = 6


class ReportError(RuntimeError):
    """The report cannot be made (e.g. no stored runs for the model)."""


def latest_verdict(store: Store, model: str) -> tuple[str, list[str]] | None:
    """(status, reasons) of the model's latest assessed version, or None."""
    for label, _ordinal in reversed(store.version_order(model)):
        run_id = store.latest_completed_run(model, label)
        verdict = store.verdict_of(run_id) if run_id is not None else None
        if verdict is not None:
            return verdict.status, list(verdict.reasons)
    return None


def _nan(x: float | None) -> float:
    return float("nan") if x is None else float(x)


def _first_outputs(store: Store, run_id: int | None) -> dict[str, tuple[str, str]]:
    """prompt key -> (prompt, the first stored output) of a run."""
    seen: dict[str, tuple[str, str]] = {}
    if run_id is None:
        return seen
    for s in store.run_samples(run_id):
        if s.output is not None and s.prompt_key not in seen:
            seen[s.prompt_key] = (s.prompt, s.output)
    return seen


def paired_samples(store: Store, base_run: int | None, latest_run: int | None) -> list[tuple[str, str, str]]:
    """(prompt, baseline output, latest output) for the first prompts both runs answered."""
    base, latest = _first_outputs(store, base_run), _first_outputs(store, latest_run)
    shared = sorted(set(base) & set(latest))[:SAMPLES_SHOWN]
    return [(base[k][0], base[k][1], latest[k][1]) for k in shared]


PROMPTS_SHOWN = 20  # collapsed prompts in the per-prompt view
OUTPUTS_SHOWN = 4  # outputs per side of each


def _outputs_by_prompt(store: Store, run_id: int | None, keys: set[str]) -> dict[str, tuple[str, list[str]]]:
    """prompt key -> (prompt, up to OUTPUTS_SHOWN stored outputs) of a run, for ``keys``."""
    out: dict[str, tuple[str, list[str]]] = {}
    if run_id is None:
        return out
    for s in store.run_samples(run_id):
        if s.prompt_key in keys and s.output is not None:
            texts = out.setdefault(s.prompt_key, (s.prompt, []))[1]
            if len(texts) < OUTPUTS_SHOWN:
                texts.append(s.output)
    return out


def collapsed_prompt_views(store: Store, latest_run: int | None) -> tuple[list[PromptView], int]:
    """The latest run's collapsed prompts (at most PROMPTS_SHOWN) and the number of prompts tested."""
    if latest_run is None:
        return [], 0
    findings = store.prompt_findings_of(latest_run)
    tested = len({f.prompt_key for f in findings})
    changes: dict[str, list[str]] = {}
    worst: dict[str, float] = {}
    base_run = None
    for f in findings:
        if f.collapsed:
            changes.setdefault(f.prompt_key, []).append(f"{f.metric} {format_change(f.metric, f.change)}")
            worst[f.prompt_key] = min(worst.get(f.prompt_key, math.inf), f.change)
            base_run = f.reference_run_id
    keys = sorted(changes, key=lambda k: worst[k])[:PROMPTS_SHOWN]
    base = _outputs_by_prompt(store, base_run, set(keys))
    cand = _outputs_by_prompt(store, latest_run, set(keys))
    views = [
        PromptView(
            k,
            cand.get(k, base.get(k, ("", [])))[0],
            ", ".join(changes[k]),
            base.get(k, ("", []))[1],
            cand.get(k, ("", []))[1],
        )
        for k in keys
    ]
    return views, tested


def load_report(store: Store, model: str) -> ReportData:
    """Everything the page shows, from the model's latest completed run of each version."""
    try:
        order = store.version_order(model)
    except StoreError as exc:
        raise ReportError(f"no stored versions of model {model!r} ({exc})") from None
    if not order:
        raise ReportError(f"no stored versions of model {model!r}")
    baseline = store.baseline_version(model) or order[0][0]
    rows = store.latest_metrics(model)
    directions = {r["metric"]: bool(r.get("higher_is_diverse", True)) for r in rows}
    views: list[VersionView] = []
    runs: dict[str, int | None] = {}
    for label, _ordinal in order:
        run_id = store.latest_completed_run(model, label)
        runs[label] = run_id
        if run_id is None:
            continue
        from collector.store.embeddings import run_identities

        view = VersionView(label=label, embedder=run_identities(store.engine, [run_id]).get(run_id))
        for r in rows:
            if r["version"] == label:
                view.points.setdefault(r["metric"], {})[r["scope"]] = MetricPoint(
                    _nan(r["value"]), _nan(r["ci_low"]), _nan(r["ci_high"])
                )
        verdict = store.verdict_of(run_id)
        if verdict is not None:
            view.verdict, view.reasons = verdict.status, list(verdict.reasons)
        for c in store.comparisons_of(run_id):
            if c.reference == "baseline" and c.scope == "within" and c.significant_decline:
                view.declined.add(c.metric)
        views.append(view)
    if not views:
        raise ReportError(f"model {model!r} has no completed run")
    prompt_views, tested = collapsed_prompt_views(store, runs.get(views[-1].label))
    return ReportData(
        prompts=prompt_views,
        prompts_tested=tested,
        model=model,
        baseline=baseline,
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        versions=views,
        higher_is_diverse=directions,
        samples=paired_samples(store, runs.get(baseline), runs.get(views[-1].label)),
        database=redact_url(str(store.engine.url)),
        alerts=_alerts(store, model),
    )


def _alerts(store: Store, model: str, limit: int = 20) -> list[tuple[str, str, str, str, str, str]]:
    """The model's latest alert notifications from the alert history, newest first."""
    from collector.store.alerts import AlertHistory

    return [
        (
            e.received_at.strftime("%Y-%m-%d %H:%M:%S"),
            e.alertname,
            e.version or "",
            e.severity or "",
            e.status,
            e.summary or "",
        )
        for e in AlertHistory(store.engine).recent(model, limit=limit)
    ]


def write_report(store: Store, model: str, out_dir: Path) -> Path:
    """Write ``<out_dir>/<model>.html`` (atomically) and return its path; a model name with a
    character other than letters, digits and ``-_.`` gets ``_`` for it and a hash of the name."""
    out_dir.mkdir(parents=True, exist_ok=True)
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in model)
    if safe != model:  # two names that differ only where they were made safe never share a file
        safe = f"{safe}-{hashlib.sha256(model.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"
    path = out_dir / f"{safe}.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(render(load_report(store, model)), encoding="utf-8")
    tmp.replace(path)
    return path
