"""Which process owns a run: ``host:pid:start``, so a restart can tell a dead owner from a live one.

``start`` is the process's start time in clock ticks since boot (``/proc/<pid>/stat`` field 22), so
a pid reused by an unrelated process after a crash does not look like the old owner.  Where /proc is
missing the start is ``0`` and only the pid is checked.
"""

from __future__ import annotations

import os
import socket


def _start_ticks(pid: int) -> int | None:
    """The process's start time (ticks since boot); None if there is no such process; 0 if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except FileNotFoundError:
        return None
    except OSError:
        return 0
    # the command name (field 2) may contain spaces and parentheses: split after the last ")"
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        return int(fields[19])  # field 22 overall
    except (IndexError, ValueError):
        return 0


def current_owner() -> str:
    """This process's owner id."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid) or 0}"


def owner_alive(owner: str) -> bool | None:
    """True/False when ``owner`` is a process on this host that is alive/gone; None if it cannot tell."""
    try:
        host, pid_s, start_s = owner.rsplit(":", 2)
        pid, start = int(pid_s), int(start_s)
    except ValueError:
        return None
    if host != socket.gethostname():
        return None  # another machine (or container): only its heartbeat can tell
    ticks = _start_ticks(pid)
    if ticks is None:
        return False
    if ticks and start and ticks != start:
        return False  # the pid was reused by another process
    if not ticks:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
    return True
