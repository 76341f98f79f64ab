"""The overview dashboard (``collapse-watch-overview``): the verdict of every model's latest version,
each headline metric's change vs baseline (worst first), the worst declines over all metrics."""

from __future__ import annotations

from collector.grafana.board import dashboard, variable_datasource, variable_model, variable_scope
from collector.grafana.panels import (
    LATEST,
    MODEL_LINK,
    VERDICT_MAPPINGS,
    Dashboard,
    Panel,
    bars,
    layout,
    panel,
    stat,
    status_mappings,
    table_rows,
    target,
    thresholds,
)
from collector.vocabulary import HEADLINE_METRICS


def overview_dashboard() -> Dashboard:
    """Every model at a glance: verdicts, headline changes vs baseline, worst declines first."""
    sel = 'model=~"$model"'
    verdict_stat = panel(
        "stat",
        "Collapse suspected (latest version)",
        "1 (red) when the latest version of the model has verdict collapse_suspected "
        "(collapse_watch_collapse_suspected); alert CollapseWatchCollapseSuspected fires after 5 minutes.",
        [target(f"collapse_watch_collapse_suspected{{{sel}}}", "{{model}}", instant=True)],
        "none",
        mappings=VERDICT_MAPPINGS,
        thresholds=thresholds((None, "green"), (1, "red")),
        options=stat("value_and_name"),
    )
    verdict_table = panel(
        "table",
        "Verdict per model and version",
        "The verdict (ok / watch / collapse_suspected / inconclusive: too little data to decide) of every "
        "exported version, latest first per model. "
        "Source: collapse_watch_verdict == 1.",
        [target(f"collapse_watch_verdict{{{sel}}} == 1", instant=True)],
        "none",
        transformations=table_rows("Value", order={"model": 0, "version": 1, "verdict": 2}),
        custom={"cellOptions": {"type": "auto"}},
        overrides=[
            {
                "matcher": {"id": "byName", "options": "model"},
                "properties": [{"id": "links", "value": [MODEL_LINK]}],
            },
            {
                "matcher": {"id": "byName", "options": "verdict"},
                "properties": [
                    {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                    {"id": "mappings", "value": status_mappings()},
                ],
            },
        ],
    )
    declined_count = panel(
        "bargauge",
        "Headline metrics declined vs baseline (latest version)",
        "How many of the five headline metrics of each model's latest version are significantly less diverse "
        "than the baseline, as the verdict counted them (collapse_watch_diversity_declined: interval below 0, "
        "p < alpha and at least a 5% change; either scope). The alerts read the verdict itself.",
        [
            target(
                "sort_desc(count by (model) (max by (model, version, metric) ("
                f'collapse_watch_diversity_declined{{{sel},metric=~"{"|".join(HEADLINE_METRICS)}"}} '
                f"and on(model, version) {LATEST}) == 1))",
                "{{model}}",
                instant=True,
            )
        ],
        "none",
        thresholds=thresholds((None, "green"), (1, "orange"), (2, "red")),
        options=bars(),
        min_=0,
    )
    change_panels: list[tuple[Panel, int, int]] = []
    for metric in HEADLINE_METRICS:
        change_panels.append(
            (
                panel(
                    "bargauge",
                    f"{metric}: change vs baseline ($scope)",
                    f"Change (rates: points; else relative) of {metric} in the latest version vs the model's baseline, in "
                    "diversity orientation (negative = less diverse, whatever the metric's own direction); "
                    "worst first.",
                    [
                        target(
                            f'sort(collapse_watch_diversity_change{{{sel},metric="{metric}",'
                            f'scope="$scope",reference="baseline"}} and on(model, version) {LATEST})',
                            "{{model}} {{version}}",
                            instant=True,
                        )
                    ],
                    "percentunit",
                    thresholds=thresholds((None, "red"), (-0.1, "orange"), (-0.02, "green")),
                    options=bars(),
                ),
                8,
                7,
            )
        )
    worst = panel(
        "table",
        "Worst declines vs baseline (all metrics, latest versions)",
        "The 15 largest declines vs baseline over every metric and scope of the latest versions, most "
        "negative (least diverse) first; diversity orientation, so every metric reads the same way.",
        [
            target(
                f'bottomk(15, collapse_watch_diversity_change{{{sel},reference="baseline"}} '
                f"and on(model, version) {LATEST})",
                instant=True,
            )
        ],
        "percentunit",
        transformations=table_rows(
            "reference",
            order={"model": 0, "version": 1, "metric": 2, "scope": 3, "Value": 4},
            rename={"Value": "change vs baseline"},
            sort_by="change vs baseline",
            descending=False,
        ),
        thresholds=thresholds((None, "red"), (-0.1, "orange"), (-0.02, "green")),
        custom={"cellOptions": {"type": "color-text"}},
    )
    panels = layout(
        [
            [(verdict_stat, 8, 6), (verdict_table, 10, 6), (declined_count, 6, 6)],
            change_panels[:3],
            [*change_panels[3:], (worst, 8, 7)],
        ]
    )
    return dashboard(
        "overview",
        "collapse-watch / overview",
        "Verdicts and headline diversity changes of every watched model.",
        [variable_datasource(), variable_model(multi=True), variable_scope()],
        panels,
    )
