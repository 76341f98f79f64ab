"""The HTML report, built from a real store and rendered by a real headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from assessment_data import FAST, store_file

from collector.assessment import assess_model
from collector.report.load import ReportError, load_report, write_report
from collector.store import Store
from collector.store.migrate import upgrade

DATA = Path(__file__).parent / "data"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A SQLite history of the real sharpening series (lexical metrics, assessed after each run)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('report') / 'history.db'}"
    upgrade(url)
    s = Store(url)
    for v in (1, 2, 3, 4):
        store_file(s, "sharpening-bot", f"v{v}", f"series_v{v}")
        assess_model(s, "sharpening-bot", **FAST)
    return s


def test_report_data_follows_the_store(store: Store) -> None:
    data = load_report(store, "sharpening-bot")
    assert [v.label for v in data.versions] == ["v1", "v2", "v3", "v4"]
    assert data.baseline == "v1"
    latest = data.versions[-1]
    assert latest.verdict == store.verdict_of(store.latest_completed_run("sharpening-bot", "v4")).status
    assert "distinct_2" in latest.declined
    assert latest.points["distinct_2"]["within"].ci_low < latest.points["distinct_2"]["within"].value
    assert data.samples  # aligned: each row is one prompt, its baseline and its latest output
    v1 = {s.output for s in store.run_samples(store.latest_completed_run("sharpening-bot", "v1"))}
    v4 = {s.output for s in store.run_samples(store.latest_completed_run("sharpening-bot", "v4"))}
    prompts = {s.prompt for s in store.run_samples(store.latest_completed_run("sharpening-bot", "v1"))}
    assert all(p in prompts and b in v1 and c in v4 for p, b, c in data.samples)
    from collector.report.html import render

    page = render(data)
    assert "pp</td>" in page and "×" in page  # changes on each metric's scale, not percentages
    with pytest.raises(ReportError, match="no stored versions"):
        load_report(store, "no-such-model")


def test_two_models_whose_file_names_would_clash_get_two_reports(tmp_path: Path) -> None:
    """`a[b` and `a]b` both make `a_b`: each report keeps its own file (the second used to replace
    the first without a word), and a name that needs no change keeps its plain file name."""
    import collapse_watch

    url = f"sqlite:///{tmp_path / 'h.db'}"
    outputs = [f"answer number {i} to the question" for i in range(8)]
    with collapse_watch.History(url) as history:
        for name in ("a[b", "a]b", "plain-bot"):
            history.record(name, "v1", outputs, prompts=["p1", "p2"] * 4, embeddings=False)
    store = Store(url)
    pages = [write_report(store, name, tmp_path / "out") for name in ("a[b", "a]b", "plain-bot")]
    assert len({p.name for p in pages}) == 3 and pages[2].name == "plain-bot.html"
    assert all(p.name.startswith("a_b-") for p in pages[:2])
    assert "a[b" in pages[0].read_text(encoding="utf-8") and "a]b" in pages[1].read_text(encoding="utf-8")


def test_chromium_renders_every_plot(store: Store, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    page = write_report(store, "sharpening-bot", tmp_path / "out")
    assert page.name == "sharpening-bot.html" and not list(page.parent.glob("*.tmp"))
    html = page.read_text(encoding="utf-8")
    assert "<script" not in html  # self-contained: no scripts, no external resources
    assert not re.search(r'(src|href)="(https?:)?//', html)
    flags = [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(
        [chromium, *flags, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    n_metrics = len(load_report(store, "sharpening-bot").versions[-1].points)
    charts = re.findall(r'<svg class="chart"', dom.stdout)
    assert len(charts) == 2 * n_metrics >= 20  # every metric, one axis per scope, parsed by the browser
    assert dom.stdout.count("<polyline") >= n_metrics  # each chart has at least one line
    assert "collapse-watch report: sharpening-bot" in dom.stdout
    shot = tmp_path / "page.png"
    proc = subprocess.run(
        [chromium, *flags, "--window-size=1280,1600", f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0 and shot.stat().st_size > 50_000  # a rendered page, not a blank one
