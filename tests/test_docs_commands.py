"""Every ``collapse-watch …`` command cited in README.md and docs/ exists and its arguments parse.

Commands are taken from code: inline code spans and lines of shell blocks (```` ```bash ````, or no
language; ```` ```text ```` blocks are program output) that start with
``collapse-watch`` (after an optional ``$ ``); a trailing ``# comment`` is dropped.  Each is parsed
by the real CLI (click's parser, nothing executed): an unknown command or option, or a missing
argument, fails with the file and the line it came from.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer
from typer._click.exceptions import BadParameter, UsageError  # typer's own click

from collector.cli import app

REPO = Path(__file__).resolve().parents[1]
SHELL_BLOCKS = {"", "bash", "sh", "shell", "console"}
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def cited_commands() -> list[tuple[str, str]]:
    """(where, command line) of every cited command."""
    found: list[tuple[str, str]] = []
    for path in DOCS:
        in_block = shell = False
        for n, line in enumerate(path.read_text().splitlines(), start=1):
            where = f"{path.relative_to(REPO)}:{n}"
            if line.lstrip().startswith("```"):
                in_block = not in_block
                shell = in_block and line.strip()[3:] in SHELL_BLOCKS
                continue
            if in_block and not shell:  # program output (```text), not commands
                continue
            if in_block and shell:
                text = line.strip().removeprefix("$ ")
                if text.startswith("collapse-watch "):
                    found.append((where, text.split(" #", 1)[0].strip()))
                continue
            found += [(where, span) for span in re.findall(r"`(collapse-watch [^`]+)`", line)]
    return found


def parse(command: str) -> None:
    """Resolve the subcommands and parse the options and arguments, without running anything."""
    args = shlex.split(command)[1:]
    cmd = typer.main.get_command(app)
    ctx = cmd.make_context("collapse-watch", list(args))
    while hasattr(cmd, "resolve_command"):  # a group: the next word is a subcommand
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
        assert rest, f"`{command}` names a group, not a command"
        name, sub, rest = cmd.resolve_command(ctx, rest)
        assert sub is not None, f"unknown command {name!r}"
        cmd = sub
        try:
            ctx = cmd.make_context(name, list(rest), parent=ctx)
        except BadParameter:  # prose cites `collapse-watch run` without its arguments, or PORT
            return  # the command and its options exist; unknown ones raise other usage errors


COMMANDS = cited_commands()


def test_the_docs_cite_commands() -> None:
    assert len(COMMANDS) >= 15
    assert any("history" in c for _, c in COMMANDS) and any("report" in c for _, c in COMMANDS)


@pytest.mark.parametrize(("where", "command"), COMMANDS, ids=[w for w, _ in COMMANDS])
def test_cited_command_exists_and_parses(where: str, command: str) -> None:
    try:
        parse(command)
    except (UsageError, AssertionError) as exc:
        pytest.fail(f"{where}: `{command}` does not parse: {exc}")


@pytest.mark.parametrize("command", ["collapse-watch runs --model m", "collapse-watch report --model m"])
def test_the_check_catches_commands_that_do_not_exist(command: str) -> None:
    with pytest.raises((UsageError, AssertionError)):
        parse(command)
