"""The `collapse-watch` Typer app: its consoles, ``--version``, usage errors and ``main()``.

Exit codes: 0 success; 1 the check failed (e.g. collapse suspected); 2 usage or input error;
`compare` also 3 watch and 4 inconclusive (collector.vocabulary.EXIT_CODES); 70 an unexpected
internal error (``COLLAPSE_WATCH_DEBUG=1`` prints its traceback); 74 standard output closed or gone
before everything was written (a pipe's reader left); 130 interrupted (Ctrl-C).

Start-up stays light: this module and the command modules import only typer, rich's console, the
standard library and the floor (collector.vocabulary); a command imports what it uses when it runs.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer
from rich.text import Text

from collector.gate import GateError
from collector.render import SafeConsole
from collector.vocabulary import EXIT_IOERR, EXIT_SOFTWARE, EXIT_USAGE

EXIT_INTERRUPTED = 130  # typer's own code for a command ended by Ctrl-C (128 + SIGINT)

if TYPE_CHECKING:
    from collector.trends import Verdict

app = typer.Typer(
    name="collapse-watch",
    help="Watch deployed language models for model collapse: loss of output diversity across versions.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)


# Off a terminal (CI logs, pipes) tables get room instead of being cut at 80-120 columns.
# SafeConsole: outside text never reaches the terminal with a raw control character (render/__init__).
def output_width() -> int | None:
    """The table width off a terminal: ``COLUMNS`` when it is a usable width, else 200 (a bad
    ``COLUMNS`` such as 0, -1 or ``abc`` must never hide output or stop the command)."""
    if sys.stdout is not None and sys.stdout.isatty():
        return None
    raw = (os.environ.get("COLUMNS") or "").strip()
    return int(raw) if raw.isdigit() and 20 <= int(raw) <= 10_000 else 200


out = SafeConsole(width=output_width())
err = SafeConsole(stderr=True, soft_wrap=True)

P = ParamSpec("P")
R = TypeVar("R")


def show_version(value: bool) -> None:
    if value:
        from collector import __version__

        out.print(f"collapse-watch {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=show_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Watch deployed language models for model collapse: loss of output diversity across versions."""


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    err.print(Text.assemble(("error:", "bold red"), " ", message), highlight=False)
    return typer.Exit(code)


def usage_errors(command: Callable[P, R]) -> Callable[P, R]:
    """A command whose ``GateError`` (a usage or input problem) exits 2 with its message."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except GateError as exc:
            raise fail(str(exc)) from None

    return run


def print_json(data: Any) -> None:
    """A command's JSON document on standard output: highlighted by rich on a terminal; elsewhere
    (a pipe, a file, CI) the same text written at once, without rich's parse and re-layout of the
    document (0.1-0.2 s of a 60 kB comparison)."""
    if out.is_terminal:
        out.print_json(data=data)
        return
    from collector.render import json_text

    write_all(json_text(data, ascii_only=not writes_utf8(sys.stdout)) + "\n")


def writes_utf8(stream: Any) -> bool:
    """Whether ``stream`` encodes UTF-8. Elsewhere (``PYTHONIOENCODING=ascii``, a latin-1 locale)
    JSON is written with ``\\uNNNN`` escapes: a character the encoding lacks would otherwise become
    a ``\\xNN`` escape that no JSON parser takes."""
    import codecs

    try:
        return codecs.lookup(stream.encoding or "utf-8").name == "utf-8"
    except LookupError:
        return False


def write_all(text: str) -> None:
    """All of ``text`` on standard output, or ``OutputGone`` (see ``GuardedStdout``)."""
    sys.stdout.write(text)
    sys.stdout.flush()


def warn(message: str) -> None:
    err.print(f"warning: {message}", highlight=False, markup=False)


def print_verdict(model: str, verdict: Verdict) -> None:
    from collector.render.tables import VERDICT_STYLE

    err.print(Text.assemble(f"{model}: ", (verdict.status, VERDICT_STYLE[verdict.status])))


class OutputGone(Exception):
    """Standard output cannot be written (its reader left, the disk is full). Not an ``OSError``:
    click turns a broken pipe into exit 1, which a gate's caller reads as collapse suspected."""


class QuietStderr:
    """``sys.stderr`` that a failed write never breaks: a closed pipe or a full disk behind standard
    error costs the messages, never the exit code (74, 2 or 70 would otherwise become 1, which a
    gate's caller reads as collapse suspected). After the first failure it writes to /dev/null."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError:
            self._discard()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError:
            self._discard()

    def _discard(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()  # what was buffered goes to /dev/null, not to a second error at exit

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class GuardedStdout:
    """``sys.stdout`` that writes all it is given or raises ``OutputGone``.

    Text goes to the binary stream in a loop: a pipe whose reader leaves during a large write takes
    part of it without an error, and Python's buffered writer returns that short count and drops
    the rest (``compare --json | head -c 10`` exited 1). A non-blocking stdout (inherited from a
    Node or CI parent) takes what fits and says "would block": the loop waits until it is writable
    again, as a blocking one would, instead of taking a full pipe for a reader that left."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        binary = getattr(self._stream, "buffer", None)
        try:
            if binary is None:  # a text-only stream: its own write is whole
                return self._stream.write(text)
            self._drain(binary)  # anything written to the text layer directly goes first
            left = memoryview(text.encode(self._stream.encoding or "utf-8", self._stream.errors or "strict"))
            while left:
                try:
                    taken = binary.write(left)
                except BlockingIOError as exc:
                    taken = exc.characters_written
                if not taken:
                    _wait_writable(binary)
                left = left[taken or 0 :]
            self._flush(binary)
        except OSError as exc:
            raise OutputGone(exc.strerror or type(exc).__name__) from None
        return len(text)

    def flush(self) -> None:
        binary = getattr(self._stream, "buffer", None)
        try:
            if binary is None:
                self._stream.flush()
            else:
                self._drain(binary)
        except OSError as exc:
            raise OutputGone(exc.strerror or type(exc).__name__) from None

    def _drain(self, binary: Any) -> None:
        """The text layer's pending text, then the binary buffer, out to the descriptor."""
        with contextlib.suppress(BlockingIOError):  # the text is in the binary buffer: waited on below
            self._stream.flush()
        self._flush(binary)

    @staticmethod
    def _flush(binary: Any) -> None:
        while True:
            try:
                binary.flush()
                return
            except BlockingIOError:
                _wait_writable(binary)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _wait_writable(binary: Any) -> None:
    """Until ``binary``'s descriptor takes bytes again, or a second has passed: the caller writes
    again either way, and that write tells a reader that left (EPIPE) from a slow one. A pipe whose
    reader left reads as writable at once; a socket whose peer shut its reading side never does,
    hence the second (without it, such a stdout hung for ever)."""
    import select

    try:
        select.select([], [binary.fileno()], [], 1.0)
    except (OSError, ValueError):  # no descriptor to wait on: a short pause instead
        import time

        time.sleep(0.01)


def main() -> None:
    for stream in (sys.stdout, sys.stderr):  # a lone surrogate (undecodable file name) never kills a print
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if sys.stdout is None:  # started with stdout closed (`>&-`): say so, never a verdict's exit code
        err.print("error: standard output is closed; nothing was run", highlight=False)
        sys.exit(EXIT_IOERR)
    sys.stdout = GuardedStdout(sys.stdout)  # type: ignore[assignment]
    if sys.stderr is not None:
        sys.stderr = QuietStderr(sys.stderr)  # type: ignore[assignment]
    try:
        app()
    except OutputGone as exc:  # `| head -1`, a full disk: what was decided stands, the output did not
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.__stdout__.fileno())  # no second error at exit
        err.print(
            f"error: cannot write to standard output ({exc}); the output is incomplete", highlight=False
        )
        sys.exit(EXIT_IOERR)
    except KeyboardInterrupt:  # outside a command (typer ends one interrupted with 130, silently)
        err.print("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except SystemExit as exc:
        if exc.code == EXIT_INTERRUPTED:
            err.print("interrupted")
        raise
    except Exception as exc:  # a bug or an unforeseen failure: exit 70, never 1 (= collapse suspected)
        from collector import environment

        if environment.debug():
            import traceback

            err.print(Text("".join(traceback.format_exception(exc))), highlight=False)
        first = str(exc).splitlines()[0] if str(exc).strip() else ""
        message = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
        err.print(
            Text.assemble(
                ("error:", "bold red"), " ", message, " (COLLAPSE_WATCH_DEBUG=1 shows the traceback)"
            ),
            highlight=False,
        )
        sys.exit(EXIT_SOFTWARE)
