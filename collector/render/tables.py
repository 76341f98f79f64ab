"""Rich tables for scored results."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from rich import box
from rich.table import Table
from rich.text import Text

from collector.comparison import BatchComparison
from collector.metrics.result import MetricValue, SuiteResult
from collector.render import visible

if TYPE_CHECKING:
    from collector.readout.snapshot import Snapshot
    from collector.runner import RunReport
from collector.trends.change import change, clip_value_interval, format_change, format_interval
from collector.vocabulary import HEADLINE_METRICS, STATUSES


def plain(text: str | None) -> Text | None:
    """Text from outside (a model, version, file name) as a renderable that is never parsed as
    markup; None stays None."""
    return None if text is None else Text(visible(text))


def fmt(x: float, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}g}" if abs(x) >= 1e4 else f"{x:.{digits}f}"


def fmt_ci(lo: float, hi: float) -> str:
    if math.isnan(lo) or math.isnan(hi):
        return "–"
    return f"[{fmt(lo)}, {fmt(hi)}]"


def suite_table(result: SuiteResult, title: str | None = None) -> Table:
    """One row per metric, grouped by family: within and across values with their 95% intervals."""
    table = Table(title=plain(title), title_justify="left", header_style="bold", box=box.SIMPLE_HEAD)
    table.add_column("metric")
    table.add_column("within", justify="right")
    table.add_column("95% CI", justify="right", style="dim")
    table.add_column("across", justify="right")
    table.add_column("95% CI", justify="right", style="dim")
    table.add_column("diverse", justify="center", header_style="bold dim")
    by_metric: dict[str, dict[str, MetricValue]] = {}
    for v in result.values:
        by_metric.setdefault(v.metric, {})[v.scope] = v
    family = None
    for name, scopes in by_metric.items():
        first = next(iter(scopes.values()))
        if family is not None and first.family != family:
            table.add_section()
        family = first.family
        cells: list[str] = []
        for scope in ("within", "across"):
            v = scopes.get(scope)
            cells += (
                [fmt(v.value), fmt_ci(*clip_value_interval(name, v.ci_low, v.ci_high))] if v else ["–", "–"]
            )
        table.add_row(name, *cells, "↑" if first.higher_is_diverse else "↓")
    return table


def suite_json(result: SuiteResult) -> dict[str, object]:
    """The documented machine-readable shape of a scored file."""

    def num(x: float) -> float | None:
        return None if math.isnan(x) else x

    metrics: dict[str, dict[str, object]] = {}
    for v in result.values:
        entry = metrics.setdefault(v.metric, {})
        entry[v.scope] = num(v.value)
        entry[f"{v.scope}_ci"] = [num(x) for x in clip_value_interval(v.metric, v.ci_low, v.ci_high)]
        entry["family"] = v.family
        entry["higher_is_diverse"] = v.higher_is_diverse
    return {
        "n_samples": result.n_samples,
        "n_prompts": result.n_prompts,
        "n_blank": result.n_blank,
        "bootstrap": {"replicates": result.n_bootstrap, "seed": result.seed, "confidence": 0.95},
        "metrics": metrics,
    }


def pct(x: float, digits: int = 1) -> str:
    """A signed percentage with a true minus sign (``−6.4%``; ``digits=0``: ``−6%`` for narrow tables)."""
    return "–" if math.isnan(x) else f"{x * 100:+.{digits}f}%".replace("-", "−")


# A verdict's terminal style, per status of collector.vocabulary.STATUSES in its order.
VERDICT_STYLE = dict(zip(STATUSES, ("bold green", "bold yellow", "bold red", "bold magenta"), strict=True))

CHANGE_CAPTION = (
    "change in the metric's own direction: pp = percentage points (rates bounded in [0, 1]), "
    "× = candidate / baseline (other metrics); diverse: the direction that is more diverse "
    "(/metrics and --json's diversity_change: the same change, signed negative = less diverse); "
    "red: a significant decline in diversity"
)


def comparison_title(cmp: BatchComparison) -> str:
    """``B vs A (24 shared prompts; left out: 2 only in A, 0 only in B)``."""
    text = f"{cmp.candidate} vs {cmp.baseline} ({cmp.n_shared_prompts} shared prompts"
    cov = cmp.coverage
    if cov is not None and (cov.only_baseline or cov.only_candidate):
        text += f"; left out: {cov.only_baseline} only in {cmp.baseline}, {cov.only_candidate} only in {cmp.candidate}"
    return text + ")"


def comparison_table(cmp: BatchComparison) -> Table:
    """Per metric and scope: baseline, candidate, the change on the metric's scale, its CI, p."""
    table = Table(
        title=Text(comparison_title(cmp)),
        title_justify="left",
        header_style="bold",
        caption=CHANGE_CAPTION,
        caption_justify="left",
    )
    for col, justify in (
        ("metric", "left"),
        ("scope", "left"),
        ("baseline", "right"),
        ("candidate", "right"),
        ("change", "right"),
        ("95% CI", "right"),
        ("p", "right"),
        ("diverse", "center"),
        ("", "left"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in cmp.rows:
        c = r.comparison
        flag = "[red]declined[/]" if c.significant_decline else ""
        style = "red" if c.significant_decline else None
        table.add_row(
            r.metric,
            r.scope,
            fmt(c.base_mean),
            fmt(c.cand_mean),
            format_change(r.metric, c.change),
            format_interval(r.metric, c.change_ci_low, c.change_ci_high),
            "–" if not c.scorable else f"{c.p_value:.3f}",
            "↑" if c.higher_is_diverse else "↓",
            flag,
            style=style,
        )
    return table


def finite(value: object) -> object:
    """``value`` with every NaN or infinite float (at any depth) as None: JSON has no NaN."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def comparison_json(cmp: BatchComparison) -> dict[str, object]:
    def num(x: float) -> float | None:
        return None if math.isnan(x) or math.isinf(x) else x

    cov = cmp.coverage
    return {
        "baseline": cmp.baseline,
        "candidate": cmp.candidate,
        "n_shared_prompts": cmp.n_shared_prompts,
        "prompts_only_in_baseline": cov.only_baseline if cov else 0,
        "prompts_only_in_candidate": cov.only_candidate if cov else 0,
        "verdict": cmp.verdict.status,
        "reasons": cmp.verdict.reasons,
        "prompts": finite(cmp.prompts.as_dict()) if cmp.prompts is not None else None,
        "shared_affix": None
        if cmp.affix is None or cmp.without_affix is None
        else {
            "kind": cmp.affix.kind,
            "text": cmp.affix.text,
            "share": cmp.affix.share,
            "baseline_share": cmp.affix.baseline_share,
            "closing": None
            if cmp.affix.closing is None
            else {
                "text": cmp.affix.closing.text,
                "share": cmp.affix.closing.share,
                "baseline_share": cmp.affix.closing.baseline_share,
            },
            "verdict_with": cmp.verdict.status,
            "verdict_without": cmp.without_affix.status,
            "reasons_without": cmp.without_affix.reasons,
        },
        "metrics": [
            {
                "metric": r.metric,
                "scope": r.scope,
                "family": r.family,
                "higher_is_diverse": r.comparison.higher_is_diverse,
                "baseline": num(r.comparison.base_mean),
                "candidate": num(r.comparison.cand_mean),
                "scale": r.comparison.scale,
                "change": num(r.comparison.change),
                "change_ci": [num(r.comparison.change_ci_low), num(r.comparison.change_ci_high)],
                "change_text": format_change(r.metric, r.comparison.change),
                "relative_change": num(r.comparison.rel_change),
                # the stored and exported change (CHANGE_UNIT): the same scale, negative = less diverse
                "diversity_change": num(change),
                "diversity_change_ci": [num(low), num(high)],
                "p_value": num(r.comparison.p_value) if r.comparison.scorable else None,
                "significant_decline": r.comparison.significant_decline,
                "min_detectable": num(r.comparison.min_detectable),
            }
            for r in cmp.rows
            for change, low, high in [r.diversity_change]
        ],
    }


RUN_STYLE = {
    "succeeded": "green",
    "partial": "yellow",
    "failed": "bold red",
    "interrupted": "yellow",
    "no_data": "yellow",
}


def runs_table(reports: list[RunReport]) -> Table:
    """One row per collection run."""
    table = Table(title="collection runs", title_justify="left", header_style="bold", box=box.SIMPLE_HEAD)
    for col in ("model", "version", "run", "status", "samples", "errors", "seconds", "error"):
        table.add_column(col, justify="right" if col in ("run", "samples", "errors", "seconds") else "left")
    for r in reports:
        table.add_row(
            Text(r.model),
            Text(r.version or "?"),
            str(r.run_id) if r.run_id is not None else "–",
            Text(r.status, style=RUN_STYLE.get(r.status, "")),
            str(r.n_samples),
            str(r.n_errors),
            f"{r.duration_seconds:.1f}",
            Text(r.error or ""),  # plain text: an error may contain [brackets]
        )
    return table


def fleet_table(snapshot: Snapshot, title: str | None = None) -> Table:
    """Model, version, headline values (within), their change vs baseline, verdict: what /metrics shows."""
    table = Table(
        title=plain(title),
        title_justify="left",
        header_style="bold",
        box=box.SIMPLE_HEAD,
        caption="within-prompt values; (change vs the baseline version in the metric's own direction: "
        "pp = percentage points, × = factor; red: a significant decline in diversity)",
        caption_justify="left",
    )
    table.add_column("model", no_wrap=True)
    table.add_column("version", no_wrap=True)
    for m in HEADLINE_METRICS:
        table.add_column(m.replace("_", " "), justify="right")  # headers wrap at the spaces
    table.add_column("verdict", no_wrap=True)
    values = {(v.model, v.version, v.metric): v.value for v in snapshot.values if v.scope == "within"}
    changes = {
        (c.model, c.version, c.metric): c
        for c in snapshot.changes
        if c.scope == "within" and c.reference == "baseline"
    }
    for v in sorted(snapshot.versions, key=lambda r: (r.model, r.ordinal)):
        cells = []
        base_version = snapshot.baselines.get(v.model)
        for m in HEADLINE_METRICS:
            val = values.get((v.model, v.version, m))
            c = changes.get((v.model, v.version, m))
            base = values.get((v.model, base_version, m)) if base_version else None
            text = "…" if val is None else fmt(val, 3)
            if c is not None and val is not None and base is not None:
                shown = format_change(m, change(m, base, val), digits=0)
                text += f" [red]({shown})[/]" if c.significant_decline else f" ({shown})"
            cells.append(text)
        verdict = v.verdict or "…"
        table.add_row(
            Text(v.model), Text(v.version), *cells, Text(verdict, style=VERDICT_STYLE.get(verdict, ""))
        )
    return table
