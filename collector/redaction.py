"""Removing secret values (API keys, auth headers) from any text before it is stored, logged or printed.

A secret can reach a message in more than its plain form: an HTTP library quotes an illegal header
as ``b'Bearer sk-...\\n'`` (escaped), or shows only part of it.  ``redact`` replaces the value as
given, stripped, escaped (``repr``), and each of its whitespace-separated pieces of 6+ characters.
"""

from __future__ import annotations

from collections.abc import Iterable

MASK = "***"
MIN_PIECE = 6


def _forms(secret: str) -> set[str]:
    forms = {secret, secret.strip(), repr(secret)[1:-1], repr(secret.strip())[1:-1]}
    forms |= {repr(secret.encode("utf-8", "replace"))[2:-1]}
    forms |= {p for p in secret.split() if len(p) >= MIN_PIECE}
    return {f for f in forms if len(f) >= MIN_PIECE or (f and f == secret)}


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every form of every secret replaced by ``***`` (longest first)."""
    forms: set[str] = set()
    for s in secrets:
        if s:
            forms |= _forms(s)
    for f in sorted(forms, key=len, reverse=True):
        text = text.replace(f, MASK)
    return text
