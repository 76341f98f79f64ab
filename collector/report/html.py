"""Render a model's report as one self-contained HTML page (inline CSS and SVG, no scripts)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html import escape as _html_escape

from collector.report.svg import Series, line_chart
from collector.trends.change import change, format_change
from collector.vocabulary import HEADLINE_METRICS

#: Characters a page would obey or hide rather than show: C0/C1 controls (tab and newline kept),
#: zero-width and line/paragraph separators, bidi embeddings, overrides and isolates, BOM.
_HIDDEN = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060\u2066-\u2069\ufeff]"
)


def escape(text: str) -> str:
    """Outside text as HTML text: markup escaped, and every control or bidi character written as
    visible text (``\\x1b`` for ESC, ``U+202E`` for a right-to-left override), never raw."""
    shown = _HIDDEN.sub(
        lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0xA0 else f"U+{ord(m.group()):04X}", text
    )
    return _html_escape(shown)


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
    # metrics whose within-scope change vs the baseline was a significant decline
    declined: set[str] = field(default_factory=set)
    embedder: str | None = None  # the embedding identity label its run was scored with (None: unknown)


@dataclass(frozen=True)
class PromptView:
    """A prompt of the latest version that collapsed: its change and outputs on both sides."""

    key: str
    prompt: str
    change: str  # e.g. "distinct_2 −38.0 pp, vendi_score ×0.31"
    baseline_outputs: list[str]
    latest_outputs: list[str]


@dataclass
class ReportData:
    model: str
    baseline: str
    generated_at: str
    versions: list[VersionView]
    higher_is_diverse: dict[str, bool]
    # (prompt, baseline output, latest output): the same prompt on both sides
    samples: list[tuple[str, str, str]] = field(default_factory=list)
    database: str = ""
    # (received, alert, version, severity, status, summary) of the model's latest alert notifications
    alerts: list[tuple[str, str, str, str, str, str]] = field(default_factory=list)
    # the latest version's collapsed prompts (worst first) and how many prompts were tested
    prompts: list[PromptView] = field(default_factory=list)
    prompts_tested: int = 0


CSS = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#111827;background:#f9fafb}
header{background:#111827;color:#f9fafb;padding:18px 28px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#9ca3af}main{padding:20px 28px;max-width:1200px}
.verdict{display:inline-block;padding:4px 12px;border-radius:14px;font-weight:600}
.ok{background:#dcfce7;color:#166534}.watch{background:#fef9c3;color:#854d0e}
.collapse_suspected{background:#fee2e2;color:#991b1b}.inconclusive{background:#f3e8ff;color:#6b21a8}
section{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:16px 20px;margin:16px 0}
h2{font-size:17px;margin:0 0 10px}ul.reasons{margin:8px 0 0 18px;padding:0}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:10px}
svg.chart{width:100%;height:auto;background:#fff}svg .t{font-size:12px;font-weight:600;fill:#111827}
svg .ax{font-size:10px;fill:#6b7280}svg .lg{font-size:10px;font-weight:600}svg .grid{stroke:#f3f4f6}
svg .flag{fill:#dc2626}table{border-collapse:collapse;width:100%;font-size:13px}
td,th{border-bottom:1px solid #e5e7eb;padding:6px 8px;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}.neg{color:#b91c1c;font-weight:600}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:10px}.fig{border:1px solid #f3f4f6;border-radius:6px}
.fig h3{font-size:13px;margin:6px 8px 0}td.out{white-space:pre-wrap;font-size:13px;width:44%}
td.prompt{color:#6b7280;font-size:12px}.key{font-size:11px;color:#9ca3af}.one{border-bottom:1px solid #e5e7eb;padding:2px 0}
"""


def _charts(data: ReportData) -> str:
    """Per metric, one chart per scope, each on its own axis: within-prompt and pooled values of a
    metric can differ several-fold (Vendi ≈ 3 within, ≈ 50 across), and one shared axis flattens the
    smaller into a line."""
    labels = [v.label for v in data.versions]
    metrics = sorted(
        {m for v in data.versions for m in v.points}, key=lambda m: (m not in HEADLINE_METRICS, m)
    )
    figures = []
    nan = float("nan")
    for metric in metrics:
        flagged = {i for i, v in enumerate(data.versions) if metric in v.declined}
        arrow = "↑" if data.higher_is_diverse.get(metric, True) else "↓"
        charts = []
        for scope in ("within", "across"):
            pts = [v.points.get(metric, {}).get(scope) for v in data.versions]
            series = Series(
                scope,
                [p.value if p else nan for p in pts],
                [p.ci_low if p else nan for p in pts],
                [p.ci_high if p else nan for p in pts],
            )
            charts.append(
                line_chart(
                    f"{metric} {arrow} · {scope}", labels, [series], flagged if scope == "within" else None
                )
            )
        figures.append(
            f'<div class="fig"><h3>{escape(metric)} {arrow}</h3><div class="pair">{"".join(charts)}</div></div>'
        )
    return "".join(figures)


def _change_text(data: ReportData, v: VersionView, metric: str) -> str:
    """The within-scope change vs the baseline version on the metric's scale (pp or ×)."""
    base_view = next((b for b in data.versions if b.label == data.baseline), None)
    base = base_view.points.get(metric, {}).get("within") if base_view else None
    cand = v.points.get(metric, {}).get("within")
    if base is None or cand is None or v.label == data.baseline:
        return "–"
    if base_view is not None and _other_embedder(metric, base_view.embedder, v.embedder):
        return "other embedder"  # embedding values of two identities are not on one scale
    return format_change(metric, change(metric, base.value, cand.value))


def _other_embedder(metric: str, a: str | None, b: str | None) -> bool:
    from collector.metrics.registry import metric_names, needs_embeddings

    if a is None or b is None or a == b or metric not in set(metric_names()):
        return False
    return needs_embeddings([metric])


def _versions_table(data: ReportData) -> str:
    head = "".join(
        f"<th>{escape(m)} {'↑' if data.higher_is_diverse.get(m, True) else '↓'} vs {escape(data.baseline)}</th>"
        for m in HEADLINE_METRICS
    )
    rows = []
    for v in data.versions:
        cells = "".join(
            f'<td class="num{" neg" if m in v.declined else ""}">{escape(_change_text(data, v, m))}</td>'
            for m in HEADLINE_METRICS
        )
        verdict = (
            f'<span class="verdict {escape(v.verdict)}">{escape(v.verdict)}</span>' if v.verdict else "–"
        )
        rows.append(f"<tr><td>{escape(v.label)}</td><td>{verdict}</td>{cells}</tr>")
    return f"<table><tr><th>version</th><th>verdict</th>{head}</tr>{''.join(rows)}</table>"


def _samples(data: ReportData, latest: str) -> str:
    rows = "".join(
        f'<tr><td class="prompt">{escape(p)}</td><td class="out">{escape(b)}</td><td class="out">{escape(c)}</td></tr>'
        for p, b, c in data.samples
    )
    if not rows:
        return "<p>No prompt with stored text on both sides (pruned, or no shared prompt).</p>"
    head = (
        f"<tr><th>prompt</th><th>baseline {escape(data.baseline)}</th><th>latest {escape(latest)}</th></tr>"
    )
    return f"<table>{head}{rows}</table>"


def _outputs(texts: list[str]) -> str:
    return "".join(f'<div class="one">{escape(t)}</div>' for t in texts) or "–"


def _prompts(data: ReportData, latest: str) -> str:
    """The per-prompt view: which prompts collapsed, their change, their outputs side by side."""
    if not data.prompts_tested:
        return ""
    if not data.prompts:
        return (
            f'<section id="prompts"><h2>Prompts that collapsed: 0 of {data.prompts_tested}</h2>'
            "<p>No prompt collapsed on its own.</p></section>"
        )
    rows = "".join(
        f'<tr><td class="prompt">{escape(p.prompt or p.key)}<div class="key">{escape(p.key)}</div></td>'
        f'<td class="num neg">{escape(p.change)}</td><td class="out">{_outputs(p.baseline_outputs)}</td>'
        f'<td class="out">{_outputs(p.latest_outputs)}</td></tr>'
        for p in data.prompts
    )
    head = (
        f"<tr><th>prompt</th><th>change</th><th>baseline {escape(data.baseline)}</th>"
        f"<th>latest {escape(latest)}</th></tr>"
    )
    return (
        f'<section id="prompts"><h2>Prompts that collapsed: {len(data.prompts)} of {data.prompts_tested}</h2>'
        "<p>Each headline metric declined on the prompt's own outputs beyond its floor, at the per-prompt "
        f"false-discovery rate (the worst first).</p><table>{head}{rows}</table></section>"
    )


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
<section id="versions"><h2>Headline metrics by version: change vs the baseline</h2>
<p>In each metric's own direction: pp = percentage points (rates in [0, 1]), × = factor (other metrics);
↑ or ↓: the direction that means more diverse; red: a significant decline in diversity.</p>
{_versions_table(data)}</section>
{_prompts(data, latest.label)}
{_alerts(data)}
<section id="plots"><h2>Every metric across versions</h2>
<p>↑ or ↓ after a name: the direction that means more diverse. Each scope on its own axis: within
(per-prompt values, averaged) and across (all outputs pooled). Shaded: 95% intervals.
Red dot under a version: a significant decline against the baseline.</p>
<div class="charts">{_charts(data)}</div></section>
<section id="samples"><h2>Sample outputs, side by side for the same prompt</h2>
{_samples(data, latest.label)}</section></main></body></html>
"""
