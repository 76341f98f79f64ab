"""A progress bar that hands the caller a plain ``update(done, total)`` callback.

On a terminal it draws a bar; off a terminal (CI logs, cron mail) it prints a plain line now and then
(every ``PLAIN_EVERY_SECONDS`` and at the end), so a long run is never silent.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

Update = Callable[[int, int], None]
PLAIN_EVERY_SECONDS = 10.0


def plain_progress(description: str, console: Console, every: float = PLAIN_EVERY_SECONDS) -> Update:
    """``update(done, total)`` that prints ``description: done/total`` on the first update, then at
    most every ``every`` seconds, and always when ``done == total``."""
    last = [-math.inf]

    def update(done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - last[0] >= every:
            last[0] = now
            console.print(f"{description}: {done}/{total}", highlight=False, markup=False)

    return update


@contextmanager
def progress_bar(description: str, console: Console, disable: bool = False) -> Iterator[Update]:
    """Yield ``update(done, total)``: a bar on a terminal, plain lines off one, nothing if disabled."""
    if disable:
        yield lambda done, total: None
        return
    if not console.is_terminal:
        yield plain_progress(description, console)
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    with progress:
        task = progress.add_task(escape(description), total=None)  # a name is text, not markup
        yield lambda done, total: progress.update(task, completed=done, total=total)
