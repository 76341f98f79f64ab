"""Two independent pieces of work on two cores: one here, one in a forked child at the same time.

The release gate's comparison is a handful of independent computations on data already in memory
(each side's half-sample replicates, the tail family, each headline metric's per-prompt permutation
tests). ``in_two`` runs one list of them in this process and the other in a child forked for it,
which shares the data copy-on-write and sends its results back pickled: the same functions on the
same data, so the same values, in less time when a second core is free.

Only where it is safe and useful: Linux (``fork`` without macOS's framework caveats), at least two
usable cores, and ``workers >= 2``. The child only computes: it never writes to the terminal,
the database or a file, never runs the parent's ``atexit`` handlers or flushes its buffers
(``os._exit``), and dies with the parent (``PR_SET_PDEATHSIG``). Anything that goes wrong in it
(an exception, a crash, a kill, an unpicklable result, a stop or a hang past a generous wait)
costs time, never a result: the parent ends it and computes that list itself.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

Job = Callable[[], Any]
PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)
# How long the parent waits for the child once its own share is done: a floor plus a multiple of
# its own time (a child on a starved core is slower, never 10x); then it is killed, and its share
# computed here, so a stopped or deadlocked child costs time, never the answer.
WAIT_FLOOR_SECONDS = 10.0
WAIT_FACTOR = 10.0


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. a container's cpuset), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def can_fork(workers: int) -> bool:
    """Whether ``in_two`` may use a second process for ``workers``."""
    return workers >= 2 and sys.platform == "linux" and hasattr(os, "fork") and usable_cores() >= 2


def _run_all(jobs: Sequence[Job]) -> list[Any]:
    return [job() for job in jobs]


def _die_with(parent: int) -> None:
    """Have the kernel kill this child when its parent dies (Linux ``PR_SET_PDEATHSIG``): a parent
    killed alone (the OOM killer, ``systemctl kill --kill-whom=main``) leaves no orphan computing."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request was made
        os._exit(1)


def _child(jobs: Sequence[Job], fd: int, parent: int) -> None:
    """In the forked child: run ``jobs``, write ``(True, results)`` or ``(False, why)``, exit."""
    code = 0
    try:
        _die_with(parent)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C ends the child at once (if not ignored)
        try:
            payload = pickle.dumps((True, _run_all(jobs)), protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException as exc:
            payload = pickle.dumps((False, f"{type(exc).__name__}: {exc}"))
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _read_result(fd: int, deadline: float) -> tuple[bool, Any]:
    """What the child wrote on ``fd`` by ``deadline`` (``time.monotonic``): ``(True, results)``, or
    ``(False, why)`` when it wrote nothing (killed, crashed), something unreadable (cut short), or
    had not finished by then (stopped, hung)."""
    chunks: list[bytes] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return False, "the worker process did not finish in time"
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    data = b"".join(chunks)
    if not data:
        return False, "the worker process ended without a result"
    try:
        return pickle.loads(data)
    except Exception as exc:
        return False, f"unreadable worker result ({type(exc).__name__})"


def balance(weights: Sequence[float]) -> tuple[list[int], list[int]]:
    """Job indices for here and for there: the heaviest first, each to the less loaded side (here
    on a tie), each side's indices in their original order."""
    load = [0.0, 0.0]
    sides: tuple[list[int], list[int]] = ([], [])
    for i in sorted(range(len(weights)), key=lambda i: -weights[i]):
        side = 0 if load[0] <= load[1] else 1
        load[side] += weights[i]
        sides[side].append(i)
    return sorted(sides[0]), sorted(sides[1])


def run_balanced(jobs: Sequence[tuple[float, Job]], *, workers: int = 2) -> list[Any]:
    """The results of ``(weight, job)`` pairs in their order, split over two processes by weight
    (``balance``, ``in_two``) when ``can_fork(workers)``, else run in turn."""
    if not can_fork(workers):
        return _run_all([job for _, job in jobs])
    here, there = balance([w for w, _ in jobs])
    mine, theirs = in_two([jobs[i][1] for i in here], [jobs[i][1] for i in there], workers=workers)
    out: list[Any] = [None] * len(jobs)
    for i, value in zip(here + there, mine + theirs, strict=True):
        out[i] = value
    return out


def in_two(here: Sequence[Job], there: Sequence[Job], *, workers: int = 2) -> tuple[list[Any], list[Any]]:
    """The results of ``here`` (run in this process) and of ``there`` (run in a forked child at the
    same time when ``can_fork(workers)``, else here after ``here``), each in its list's order."""
    if not there or not here or not can_fork(workers):
        return _run_all(here), _run_all(there)
    read_fd, write_fd = os.pipe()
    parent = os.getpid()
    try:
        pid = os.fork()
    except OSError:  # no memory or process slots for a child: one process it is
        os.close(read_fd)
        os.close(write_fd)
        return _run_all(here), _run_all(there)
    if pid == 0:
        os.close(read_fd)
        _child(there, write_fd, parent)
    os.close(write_fd)
    ok = False
    try:
        started = time.monotonic()
        mine = _run_all(here)
        # the child's share is about ours: wait for it a generous multiple of our own time
        patience = WAIT_FLOOR_SECONDS + WAIT_FACTOR * (time.monotonic() - started)
        ok, theirs = _read_result(read_fd, time.monotonic() + patience)
    finally:
        os.close(read_fd)
        if not ok:  # an error or Ctrl-C here, or a child that failed or hangs: end it
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)  # never a zombie
    return mine, theirs if ok else _run_all(there)


__all__ = ["Job", "balance", "can_fork", "in_two", "run_balanced", "usable_cores"]
