"""Removing secret values (API keys, auth headers, database passwords) from any text before it is
stored, logged or printed.

A secret can reach a message in more than its plain form: an HTTP library quotes an illegal header
as ``b'Bearer sk-...\\n'`` (escaped), a server echoes it JSON-escaped (``\\/`` for ``/``, ``\\u002b``
for ``+``) or URL-encoded (``%2F``), or an error snippet cuts it short.  ``redact`` replaces the
value as given, stripped, ``repr``-escaped, JSON-escaped (with and without ``\\/``), URL-encoded
(``%20`` and ``+`` styles, either case of hex digit), each of its whitespace-separated pieces of 6+
characters, and a text that *ends* with the first 6+ characters of any of those forms (the cut at
a snippet's end).  ``config_secrets`` in ``collector.credentials`` lists what a config names.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "***"
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
MIN_PIECE = 6


def _encodings(s: str) -> set[str]:
    js = json.dumps(s)[1:-1]
    js_ascii = json.dumps(s, ensure_ascii=True)[1:-1]
    forms = {
        s,
        repr(s)[1:-1],
        repr(s.encode("utf-8", "replace"))[2:-1],
        js,
        js_ascii,
        js.replace("/", "\\/"),
        js_ascii.replace("/", "\\/"),
        quote(s, safe=""),
        quote_plus(s, safe=""),
        quote(s),
    }
    forms |= {re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), f) for f in list(forms) if "%" in f}
    return forms


def _forms(secret: str) -> set[str]:
    forms = _encodings(secret) | _encodings(secret.strip())
    forms |= {p for p in secret.split() if len(p) >= MIN_PIECE}
    return {f for f in forms if len(f) >= MIN_PIECE or (f and f == secret)}


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every form of every secret replaced by ``***`` (longest first), including a
    form cut short at the end of the text."""
    forms: set[str] = set()
    for s in secrets:
        if s:
            forms |= _forms(s)
    for f in sorted(forms, key=len, reverse=True):
        text = text.replace(f, MASK)
    return _cut_tail(text, forms)


def _cut_tail(text: str, forms: set[str]) -> str:
    """Mask a prefix of a form (>= MIN_PIECE characters) that the text ends with (a cut snippet)."""
    stripped = text.rstrip()
    for f in sorted(forms, key=len, reverse=True):
        for n in range(min(len(f) - 1, len(stripped)), MIN_PIECE - 1, -1):
            if stripped.endswith(f[:n]):
                return stripped[:-n] + MASK + text[len(stripped) :]
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that redacts ``secrets`` from every record's formatted message (and its
    exception text), so no log line shows a credential the config names."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        # lone surrogates (from log bytes) cannot be written to a strict stream: replaced
        record.msg, record.args = _LONE_SURROGATE.sub("\ufffd", redact(message, self.secrets)), None
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        return True


def redact_logs(secrets: Iterable[str]) -> RedactingFilter:
    """Install a ``RedactingFilter`` on every handler of the root logger (call after logging is
    configured); returns it so a test can remove it."""
    flt = RedactingFilter(secrets)
    for handler in logging.getLogger().handlers:
        handler.addFilter(flt)
    return flt
