"""One definition per shared concept: the floor (``collector/vocabulary.py``) and nothing else.

Two kinds of check.  The users of a concept hold the very object the floor defines (the headline
set of the verdict, the terminal table, the report, the dashboards and /metrics is one tuple), and a
scan of the package's source fails when a second definition appears: a collection literal of the
verdict statuses, of the completed-run statuses or of the headline metrics, the exit-code table, the
database URL variable, or two classes of one name.  A self-checking generator test cannot catch that
drift: each side's copy agrees with itself.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest

from collector import vocabulary as v

PACKAGE = Path(__file__).resolve().parent.parent / "collector"
FLOOR = PACKAGE / "vocabulary.py"


def _sources() -> list[tuple[Path, ast.Module]]:
    return [(p, ast.parse(p.read_text(encoding="utf-8"))) for p in sorted(PACKAGE.rglob("*.py"))]


SOURCES = _sources()


def _strings(node: ast.AST) -> list[str] | None:
    """The string elements of a tuple/list/set literal (None: not such a literal, or not all strings)."""
    if not isinstance(node, ast.Tuple | ast.List | ast.Set) or len(node.elts) < 2:
        return None
    out = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return out if len(out) == len(node.elts) else None


def _copies(pred: object) -> list[str]:
    found = []
    for path, tree in SOURCES:
        if path == FLOOR:
            continue
        for node in ast.walk(tree):
            items = _strings(node)
            if items is not None and pred(set(items)):  # type: ignore[operator]
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {items}")
    return found


def test_the_verdict_statuses_are_listed_once() -> None:
    decided = {"ok", "watch", "collapse_suspected"}
    assert _copies(lambda s: decided <= s) == []


def test_the_run_statuses_and_the_completed_run_rule_are_written_once() -> None:
    sets = [set(v.RUN_STATUSES), set(v.COMPLETED_RUN_STATUSES), set(v.FAILED_RUN_STATUSES)]
    assert _copies(lambda s: s in sets) == []


def test_the_headline_set_is_written_once() -> None:
    headline = set(v.HEADLINE_METRICS)
    assert _copies(lambda s: len(s) >= 2 and s <= headline) == []


def test_the_exit_codes_and_the_database_variable_are_defined_once() -> None:
    found = []
    for path, tree in SOURCES:
        if path == FLOOR:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict) and {k.value for k in node.keys if isinstance(k, ast.Constant)} >= {
                "ok",
                "collapse_suspected",
            }:
                found.append(f"{path.name}:{node.lineno}: a status table")
            if isinstance(node, ast.Constant) and node.value == v.DATABASE_URL_ENV:
                found.append(f"{path.name}:{node.lineno}: {v.DATABASE_URL_ENV}")
    assert found == []


# The Python facade's types (``collapse_watch.Verdict``, ``MetricChange``...) are the public contract:
# plain, stable views built from the internal ones in one place (``api.verdict_of``), so they may
# share a name with the internal type they present.
FACADE = PACKAGE / "api.py"


def test_no_two_classes_share_a_name() -> None:
    names = Counter(
        node.name
        for path, tree in SOURCES
        if path != FACADE
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
    )
    assert sorted(n for n, k in names.items() if k > 1) == []


def test_the_lone_watch_metrics_are_headline_metrics() -> None:
    assert set(v.LONE_WATCH_METRICS) <= set(v.HEADLINE_METRICS)


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("collector.render.tables", "HEADLINE_METRICS"),
        ("collector.report.html", "HEADLINE_METRICS"),
        ("collector.readout.exporter", "HEADLINE_METRICS"),
        ("collector.grafana.dashboards", "HEADLINE_METRICS"),
    ],
)
def test_every_reader_of_the_headline_set_holds_the_one_object(module: str, name: str) -> None:
    import importlib

    assert getattr(importlib.import_module(module), name) is v.HEADLINE_METRICS


def test_the_verdict_default_is_the_lone_watch_set() -> None:
    from collector.trends.verdict import Thresholds

    assert Thresholds().headline_metrics is v.LONE_WATCH_METRICS


def test_the_gate_exit_codes_are_the_floors() -> None:
    import collapse_watch

    assert collapse_watch.EXIT_CODES is v.EXIT_CODES
    assert set(v.EXIT_CODES) == set(v.STATUSES) and set(v.STATUS_RANK) < set(v.STATUSES)
