"""How a Python string becomes a stored text row, and back, without loss.

* Valid Unicode without NUL is stored in ``body`` (TEXT), byte-for-byte, any length.
* A string with NUL (PostgreSQL TEXT rejects it) or with lone surrogates from
  ``errors='surrogateescape'`` decoding (non-UTF-8 bytes from logs) is stored as its exact bytes in
  ``raw`` and read back with the same error handler, so it round-trips exactly.
* Any other lone surrogate has no byte form: it is rejected with ``StoreError``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

REPLACEMENT = "\ufffd"
CUT_MARKER = "…"  # ends a text cut to fit its column
LABEL_MAX = 200  # characters of a name/label column: models, versions, prompt ids, alert labels
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class TextError(ValueError):
    """A text that cannot be stored without loss."""


@dataclass(frozen=True)
class EncodedText:
    sha256: str
    n_bytes: int
    body: str | None
    raw: bytes | None


def encode_text(text: str, what: str) -> EncodedText:
    """Split ``text`` into the stored columns; ``what`` names it in errors."""
    try:
        data = text.encode("utf-8")
        clean = "\x00" not in text
    except UnicodeEncodeError:
        try:
            data = text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError as exc:
            raise TextError(
                f"{what}: lone surrogate {text[exc.start]!r} at index {exc.start} is neither text nor "
                "an escaped log byte; decode the source with errors='surrogateescape'"
            ) from exc
        clean = False
    digest = hashlib.sha256(data).hexdigest()
    if clean:
        return EncodedText(digest, len(data), text, None)
    return EncodedText(digest, len(data), None, data)


def decode_text(body: str | None, raw: bytes | None) -> str | None:
    """The original string from the stored columns; None when retention pruned it."""
    if body is not None:
        return body
    if raw is not None:
        return bytes(raw).decode("utf-8", "surrogateescape")
    return None


def lone_surrogate_at(text: str) -> int | None:
    """The index of the first lone surrogate in ``text`` (a JSON ``"\\ud800"`` escape, or what a
    tokenizer can decode): no UTF-8 encoder takes it, so no metric can score it. None when none."""
    bad = _LONE_SURROGATE.search(text)
    return None if bad is None else bad.start()


def safe_label(text: str) -> str:
    """``text`` with NUL and lone surrogates replaced by U+FFFD: storable as TEXT on every database."""
    return _LONE_SURROGATE.sub(REPLACEMENT, text.replace("\x00", REPLACEMENT))


# characters a label must not hold: C0/C1 controls but tab (NUL, newlines, ESC…), DEL, line/paragraph
# separators, the bidi embeddings, overrides and isolates that reorder what is printed after them,
# and the invisible characters that make two labels look alike (zero-width space and non-joiner,
# LRM/RLM, word joiner, BOM; the zero-width joiner stays: emoji sequences are made with it)
_LABEL_BREAKERS = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f\u200b\u200c\u200e\u200f\u2028\u2029\u202a-\u202e\u2060\u2066-\u2069\ufeff]"
)

_INVISIBLE = frozenset("\u200b\u200c\u200e\u200f\u2060\ufeff")


def label_problem(label: str) -> str | None:
    """Why ``label`` (a version or model label) cannot be used, or None: a control character
    (tab allowed), a line separator or a bidi override breaks tables, legends and the exposition;
    an invisible character (zero-width, BOM) makes two labels that look alike different."""
    m = _LABEL_BREAKERS.search(label)
    if m is None:
        return None
    kind = "invisible character" if m.group(0) in _INVISIBLE else "control or bidi character"
    return f"holds the {kind} U+{ord(m.group(0)):04X} at character {m.start() + 1}"


def fit(text: str, limit: int) -> str:
    """``safe_label(text)`` cut to at most ``limit`` characters, ending in ``…`` when it was cut."""
    text = safe_label(text)
    return text if len(text) <= limit else text[: limit - len(CUT_MARKER)] + CUT_MARKER


def check_label(value: object, what: str) -> str:
    """``value`` if it can name a model or a version in the store; otherwise ``TypeError`` or
    ``ValueError`` naming ``what``: not a string, empty or only spaces, longer than the column
    (``LABEL_MAX``), or holding what ``label_problem`` refuses (a control character other than tab,
    a line separator, a bidi override) or a lone surrogate.
    The one rule for names a caller chooses (the store's models, the API's and the training
    callbacks' names); names read from collected data are made safe instead (``safe_label``)."""
    if not isinstance(value, str):
        raise TypeError(f"{what}: expected a string, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{what}: must not be empty or only spaces, got {value!r}")
    if len(value) > LABEL_MAX:
        raise ValueError(
            f"{what}: {len(value)} characters, at most {LABEL_MAX} characters: {fit(value, 40)!r}"
        )
    problem = label_problem(value)
    if problem is not None:
        raise ValueError(f"{what} {problem}: {fit(value, 40)!r}")
    if value != value.strip():
        raise ValueError(f"{what}: must not begin or end with spaces, got {fit(value, 40)!r}")
    bad = _LONE_SURROGATE.search(value)
    if bad:
        raise ValueError(
            f"{what}: lone surrogate \\u{ord(bad.group()):04x} at index {bad.start()} in {fit(value, 40)!r}"
        )
    return value
