"""Terminal rendering (tables, progress) for the CLI; nothing outside the CLI prints.

Outside text (models, versions, prompts, alert text, file names, error messages) reaches the
terminal only as data: never parsed as rich markup (``rich.text.Text``), and never with a control
character sent raw. ``visible`` writes C0/C1 controls (ESC, CR, BEL, ...) as the visible text
``\\x1b``; ``SafeConsole``, the console every CLI command prints through, applies it to everything it
writes (so a colour, a title change or a clipboard write smuggled in a string is shown, not obeyed),
while rich's own styling still reaches the terminal. ``cell`` also cuts a long table cell.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.segment import Segment
from rich.text import Text

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # C0 but tab and newline, DEL, C1
# What reorders or hides text on a terminal without being a control: bidi embeddings, overrides and
# isolates (U+202A-202E, U+2066-2069), line/paragraph separators, zero-width characters (not the
# joiner U+200D, which emoji sequences need) and the BOM.
_INVISIBLE = re.compile("[\u200b\u200c\u200e\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
CELL_LIMIT = 200  # characters of outside text in one terminal table cell


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` with every C0/C1 control character but tab and newline written as ``\\xNN``, and
    every bidi, separator or zero-width character as ``\\uNNNN``: shown, never obeyed."""
    return _INVISIBLE.sub(_escape, _CONTROL.sub(_escape, text))


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def json_text(data: Any, ascii_only: bool = False) -> str:
    """``data`` as the indented JSON document the commands print (rich's ``print_json`` layout):
    non-ASCII text kept (unless ``ascii_only``: for an output that is not UTF-8), and every
    character ``visible`` would escape written as a JSON ``\\uNNNN`` escape, so the document stays
    valid JSON with the same strings and never reaches a terminal raw."""
    text = json.dumps(data, indent=2, ensure_ascii=ascii_only)
    return _INVISIBLE.sub(_json_escape, _CONTROL.sub(_json_escape, text))


def cell(text: str | None, limit: int = CELL_LIMIT, style: str = "") -> Text:
    """Outside text as one table cell: never markup, controls visible, cut at ``limit``
    characters with the count left out (the full text stays in the database and the report)."""
    text = visible(text or "").replace("\n", "\\n")  # one row per record, whatever the text holds
    if len(text) > limit:
        text = f"{text[:limit]}… (+{len(text) - limit} characters)"
    return Text(text, style=style)


class SafeConsole(Console):
    """A ``Console`` that never writes a control character it was given as text (see module doc)."""

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        return super()._render_buffer(
            seg if seg.control else Segment(visible(seg.text), seg.style, seg.control) for seg in buffer
        )
