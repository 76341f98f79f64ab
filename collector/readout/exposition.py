"""The Prometheus text format (0.0.4), written fast: what ``GET /metrics`` answers.

``prometheus_client.generate_latest`` validates and escapes every label name of every sample
(about 10 µs a line here); at 50 models × 10 versions a scrape has ~15,000 lines, so that alone
would take longer than the 0.2 s scrape budget.  The collector's families are built by this
project with fixed, valid label names, so ``render`` only escapes label *values* and writes the
same text (``tests/test_exposition.py`` checks it against ``generate_latest`` line for line).
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from collector.store.text import REPLACEMENT, safe_label

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_TYPES = {"info": "gauge", "stateset": "gauge", "gaugehistogram": "histogram", "unknown": "untyped"}


def _escape(value: str) -> str:
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value


def _help(doc: str) -> str:
    return doc.replace("\\", r"\\").replace("\n", r"\n")


def render(collectors: Iterable[Collector]) -> bytes:
    """The text exposition of every family the collectors yield (a registry is one)."""
    out: list[str] = []
    for collector in collectors:
        for fam in collector.collect():
            name, kind = fam.name, fam.type
            if kind == "counter":
                name += "_total"
            elif kind == "info":
                name += "_info"
            kind = _TYPES.get(kind, kind)
            out.append(f"# HELP {name} {_help(fam.documentation)}\n# TYPE {name} {kind}\n")
            for s in fam.samples:
                if s.name.endswith("_created") and s.name != name:
                    continue  # generate_latest moves these to families of their own; none here use them
                if s.labels:
                    labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(s.labels.items()))
                    out.append(f"{s.name}{{{labels}}} {floatToGoString(s.value)}\n")
                else:
                    out.append(f"{s.name} {floatToGoString(s.value)}\n")
    text = "".join(out)
    if "\x00" in text:  # a NUL is no valid exposition; text from outside never breaks the scrape
        text = text.replace("\x00", REPLACEMENT)
    try:
        return text.encode()
    except UnicodeEncodeError:  # a lone surrogate in a label value
        return safe_label(text).encode()
