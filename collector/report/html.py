"""Render a model's report as one self-contained HTML page (inline CSS and SVG, no scripts)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

from collector.report.svg import Series, line_chart

HEADLINE = ("distinct_2", "self_bleu", "compression_ratio", "embedding_mean_distance", "vendi_score")


@dataclass(frozen=True)
class MetricPoint:
    value: float
    ci_low: float
    ci_high: float


@dataclass
class VersionView:
    label: str
    verdict: str | None = None
    reasons: list[str] = field(default_factory=list)
    # metric -> scope -> point
    points: dict[str, dict[str, MetricPoint]] = field(default_factory=dict)
    # metric -> diversity-oriented change vs baseline (within scope), and whether it declined
    change: dict[str, float] = field(default_factory=dict)
    declined: set[str] = field(default_factory=set)


@dataclass
class ReportData:
    model: str
    baseline: str
    generated_at: str
    versions: list[VersionView]
    higher_is_diverse: dict[str, bool]
    samples_baseline: list[tuple[str, str]] = field(default_factory=list)  # (prompt, output)
    samples_latest: list[tuple[str, str]] = field(default_factory=list)
    database: str = ""
    # (received, alert, version, severity, status, summary) of the model's latest alert notifications
    alerts: list[tuple[str, str, str, str, str, str]] = field(default_factory=list)


CSS = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#111827;background:#f9fafb}
header{background:#111827;color:#f9fafb;padding:18px 28px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#9ca3af}main{padding:20px 28px;max-width:1200px}
.verdict{display:inline-block;padding:4px 12px;border-radius:14px;font-weight:600}
.ok{background:#dcfce7;color:#166534}.watch{background:#fef9c3;color:#854d0e}
.collapse_suspected{background:#fee2e2;color:#991b1b}
section{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:16px 20px;margin:16px 0}
h2{font-size:17px;margin:0 0 10px}ul.reasons{margin:8px 0 0 18px;padding:0}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:10px}
svg.chart{width:100%;height:auto;background:#fff}svg .t{font-size:12px;font-weight:600;fill:#111827}
svg .ax{font-size:10px;fill:#6b7280}svg .lg{font-size:10px;font-weight:600}svg .grid{stroke:#f3f4f6}
svg .flag{fill:#dc2626}table{border-collapse:collapse;width:100%;font-size:13px}
td,th{border-bottom:1px solid #e5e7eb;padding:6px 8px;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}.neg{color:#b91c1c;font-weight:600}
.side{display:grid;grid-template-columns:1fr 1fr;gap:14px}.out{white-space:pre-wrap;font-size:13px}
.prompt{color:#6b7280;font-size:12px;margin-top:10px}
"""


def _pct(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "–"
    return f"{x * 100:+.1f}%".replace("-", "−")


def _charts(data: ReportData) -> str:
    labels = [v.label for v in data.versions]
    metrics = sorted({m for v in data.versions for m in v.points}, key=lambda m: (m not in HEADLINE, m))
    charts = []
    for metric in metrics:
        series = []
        for scope in ("within", "across"):
            pts = [v.points.get(metric, {}).get(scope) for v in data.versions]
            nan = float("nan")
            series.append(
                Series(
                    scope,
                    [p.value if p else nan for p in pts],
                    [p.ci_low if p else nan for p in pts],
                    [p.ci_high if p else nan for p in pts],
                )
            )
        flagged = {i for i, v in enumerate(data.versions) if metric in v.declined}
        arrow = "↑" if data.higher_is_diverse.get(metric, True) else "↓"
        charts.append(line_chart(f"{metric} {arrow}", labels, series, flagged))
    return "".join(charts)


def _versions_table(data: ReportData) -> str:
    head = "".join(f"<th>{escape(m)} vs {escape(data.baseline)}</th>" for m in HEADLINE)
    rows = []
    for v in data.versions:
        cells = "".join(
            f'<td class="num{" neg" if m in v.declined else ""}">{_pct(v.change.get(m))}</td>'
            for m in HEADLINE
        )
        verdict = (
            f'<span class="verdict {escape(v.verdict)}">{escape(v.verdict)}</span>' if v.verdict else "–"
        )
        rows.append(f"<tr><td>{escape(v.label)}</td><td>{verdict}</td>{cells}</tr>")
    return f"<table><tr><th>version</th><th>verdict</th>{head}</tr>{''.join(rows)}</table>"


def _samples(title: str, samples: list[tuple[str, str]]) -> str:
    items = "".join(
        f'<div class="prompt">{escape(p)}</div><div class="out">{escape(o)}</div>' for p, o in samples
    )
    return f"<div><h3>{escape(title)}</h3>{items or '<p>No stored text (pruned or none).</p>'}</div>"


def _alerts(data: ReportData) -> str:
    """The alert history section (what Alertmanager delivered to the collector), if any."""
    if not data.alerts:
        return ""
    head = "".join(
        f"<th>{h}</th>" for h in ("received (UTC)", "alert", "version", "severity", "status", "summary")
    )
    rows = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in data.alerts)
    return (
        f'<section id="alerts"><h2>Alerts received (latest {len(data.alerts)})</h2>'
        f"<table><tr>{head}</tr>{rows}</table></section>"
    )


def render(data: ReportData) -> str:
    """The whole page."""
    latest = data.versions[-1] if data.versions else VersionView(label="–")
    status = latest.verdict or "unknown"
    reasons = "".join(f"<li>{escape(r)}</li>" for r in latest.reasons)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>collapse-watch: {escape(data.model)}</title><style>{CSS}</style></head>
<body><header><h1>collapse-watch report: {escape(data.model)}</h1>
<p>{len(data.versions)} versions · baseline {escape(data.baseline)} · generated {escape(data.generated_at)}
{(" · " + escape(data.database)) if data.database else ""}</p></header><main>
<section id="verdict"><h2>Latest version {escape(latest.label)}:
<span class="verdict {escape(status)}">{escape(status)}</span></h2><ul class="reasons">{reasons}</ul></section>
<section id="versions"><h2>Headline metrics by version (change vs baseline; negative = less diverse)</h2>
{_versions_table(data)}</section>
{_alerts(data)}
<section id="plots"><h2>Every metric across versions</h2>
<p>↑ or ↓ after a name: the direction that means more diverse. Shaded: 95% intervals.
Red dot under a version: a significant decline against the baseline.</p>
<div class="charts">{_charts(data)}</div></section>
<section id="samples"><h2>Sample outputs, side by side</h2><div class="side">
{_samples(f"baseline {data.baseline}", data.samples_baseline)}{_samples(f"latest {latest.label}", data.samples_latest)}
</div></section></main></body></html>
"""
