"""The gate's second process (``collector.parallel``): the same results as one process, and every
fault of the child (an exception, a kill, a result that cannot be sent) costs time, never a result.
The faults are injected into the real forked child; the comparison runs on real SmolLM2 outputs."""

from __future__ import annotations

import json
import os
import signal
import sys
from functools import partial
from pathlib import Path

import pytest

from collector import parallel
from collector.comparison import compare_batches
from collector.gate import score_side
from collector.inputs import read_records
from collector.metrics.registry import select_metrics
from tests.cli_process import cli

DATA = Path(__file__).parent / "data"
PARENT = os.getpid()
two_cores = pytest.mark.skipif(not parallel.can_fork(2), reason="needs Linux and two usable cores")


def pid() -> int:
    return os.getpid()


def fails_in_child(value: int) -> int:
    if os.getpid() != PARENT:
        raise RuntimeError("only in the child")
    return value


def killed_in_child(value: int) -> int:
    if os.getpid() != PARENT:
        os.kill(os.getpid(), signal.SIGKILL)
    return value


def unpicklable_in_child() -> object:
    return (lambda: None) if os.getpid() != PARENT else "here"


def children() -> set[int]:
    """This process's children, zombies included (read from /proc). The test session may hold
    children of its own (a server fixture), so a test compares the sets before and after."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == PARENT:
            found.add(int(entry.name))
    return found


@pytest.fixture
def no_child_left():
    """Call it after the work: True when every child the work started has ended and been reaped."""
    before = children()
    return lambda: children() <= before


@two_cores
def test_the_second_list_runs_in_another_process_at_the_same_time(no_child_left) -> None:
    here, there = parallel.in_two([pid, pid], [pid])
    assert here == [PARENT, PARENT] and there[0] != PARENT
    assert no_child_left()


def test_one_worker_or_one_list_never_forks() -> None:
    assert parallel.in_two([pid], [pid], workers=1) == ([PARENT], [PARENT])
    assert parallel.in_two([pid], [], workers=2) == ([PARENT], [])
    assert not parallel.can_fork(1)


@two_cores
@pytest.mark.parametrize(
    ("job", "expected"),
    [(partial(fails_in_child, 7), 7), (partial(killed_in_child, 8), 8), (unpicklable_in_child, "here")],
    ids=["raises", "killed", "unpicklable"],
)
def test_a_failed_child_costs_time_not_the_result(job, expected, no_child_left) -> None:
    here, there = parallel.in_two([pid], [job])
    assert here == [PARENT] and there == [expected]  # recomputed here
    assert no_child_left()


@two_cores
def test_an_error_here_ends_and_reaps_the_child(no_child_left) -> None:
    def boom() -> None:
        raise KeyError("here")

    def slow() -> None:
        import time

        time.sleep(30)

    with pytest.raises(KeyError):
        parallel.in_two([boom], [slow])
    assert no_child_left()  # killed and waited for, not left sleeping for 30 s


def test_balance_puts_the_heaviest_first_on_the_lighter_side() -> None:
    assert parallel.balance([1.0, 1.0, 0.6, 1.3]) == ([2, 3], [0, 1])
    assert parallel.balance([1.0, 1.0, 0.6, 1.3, 0.2]) == ([2, 3, 4], [0, 1])
    assert parallel.balance([]) == ([], [])
    jobs = [(w, partial(int, w * 10)) for w in (0.5, 2.0, 1.0)]
    assert parallel.run_balanced(jobs, workers=2) == [5, 20, 10]


def sides(a: str, b: str, metrics: list[str] | None):
    return [score_side(p, [r.sample for r in read_records(DATA / p)], metrics, None, 0) for p in (a, b)]


@two_cores
def test_a_comparison_on_two_processes_is_the_one_process_comparison_bit_for_bit(no_child_left) -> None:
    """Every row (value, interval, p-value), every per-prompt test and the verdict, on real outputs
    of a collapsing series (v1 -> v4) where the per-prompt evidence matters."""
    names = [m.name for m in select_metrics(None) if not m.needs_embeddings]
    base, cand = sides("series_v1.jsonl", "series_v4.jsonl", names)
    one = compare_batches(base, cand, select_metrics(names), seed=3, workers=1)
    two = compare_batches(base, cand, select_metrics(names), seed=3, workers=2)
    assert repr(one.rows) == repr(two.rows)
    assert one.verdict == two.verdict and one.verdict.status != "ok"
    assert repr(one.prompts) == repr(two.prompts) and one.prompts is not None
    assert no_child_left()


def test_the_command_gives_the_same_answer_on_one_process_or_two() -> None:
    a, b = str(DATA / "series_v1.jsonl"), str(DATA / "control_b.jsonl")
    runs = [
        cli("compare", a, b, "--no-embeddings", "--json", env={"COLLAPSE_WATCH_WORKERS": w}) for w in "12"
    ]
    assert runs[0].returncode == runs[1].returncode and runs[0].stdout == runs[1].stdout, runs[1].stderr
    assert json.loads(runs[0].stdout)["verdict"]


@pytest.mark.parametrize("value", ["0", "000", "-1", "two", "1.5", "2 processes", "٣", "x" * 5000])
def test_a_bad_workers_variable_is_a_usage_error_naming_it(value: str) -> None:
    a = str(DATA / "series_v1.jsonl")
    proc = cli("compare", a, a, "--no-embeddings", env={"COLLAPSE_WATCH_WORKERS": value})
    assert proc.returncode == 2 and "COLLAPSE_WATCH_WORKERS" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("value", ["", " ", "2\n", "01", "9" * 5000])
def test_blank_or_any_whole_number_of_workers_is_taken(value: str) -> None:
    a = str(DATA / "series_v1.jsonl")
    proc = cli("compare", a, a, "--no-embeddings", env={"COLLAPSE_WATCH_WORKERS": value})
    assert proc.returncode == 0, proc.stderr


def test_the_comparison_keeps_numpy_on_one_blas_thread_unless_told() -> None:
    code = (
        "import os, sys\n"
        "from collector.cli.app import main\n"
        "sys.argv = ['collapse-watch', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(os.environ.get('OPENBLAS_NUM_THREADS'), file=sys.stderr)\n"
    )
    a = str(DATA / "series_v1.jsonl")
    import subprocess

    for given, seen in ((None, "1"), ("2", "2")):
        env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
        if given:
            env["OPENBLAS_NUM_THREADS"] = given
        proc = subprocess.run(
            [sys.executable, "-c", code, "compare", a, a, "--no-embeddings", "--json"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert proc.stderr.strip().splitlines()[-1] == seen, proc.stderr


def stops_in_child(value: int) -> int:
    if os.getpid() != PARENT:
        os.kill(os.getpid(), signal.SIGSTOP)  # a child that never finishes (stopped, deadlocked)
    return value


@two_cores
def test_a_stopped_child_is_killed_after_the_wait_and_its_share_computed_here(
    monkeypatch, no_child_left
) -> None:
    monkeypatch.setattr(parallel, "WAIT_FLOOR_SECONDS", 1.0)
    here, there = parallel.in_two([pid], [partial(stops_in_child, 9)])
    assert here == [PARENT] and there == [9]
    assert no_child_left()


@two_cores
def test_the_child_dies_with_its_parent(tmp_path: Path) -> None:
    """The parent killed alone (SIGKILL, as the OOM killer does): the kernel ends the child too,
    instead of leaving it computing as an orphan."""
    import subprocess
    import time

    marker = tmp_path / "child.pid"
    script = (
        "import os, time\n"
        "from collector.parallel import in_two\n"
        f"def child():\n    open({str(marker)!r}, 'w').write(str(os.getpid()))\n    time.sleep(60)\n"
        "in_two([lambda: time.sleep(60)], [child])\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        for _ in range(200):
            if marker.exists() and marker.read_text():
                break
            time.sleep(0.05)
        child = int(marker.read_text())
        proc.kill()
        proc.wait(timeout=10)
        for _ in range(100):
            try:
                state = Path(f"/proc/{child}/stat").read_text().split(")")[-1].split()[0]
            except FileNotFoundError:
                state = "gone"
            if state in ("gone", "Z", "X"):
                break
            time.sleep(0.05)
        assert state in ("gone", "Z", "X"), f"the orphaned child is still {state}"
    finally:
        proc.kill()
