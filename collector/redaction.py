"""Removing secret values (API keys, auth headers, database passwords) from any text before it is
stored, logged or printed.

A secret can reach a message in more than its plain form: an HTTP library quotes an illegal header
as ``b'Bearer sk-...\\n'`` (escaped), a server echoes it JSON-escaped once or more (``\\/`` or
``\\\\\\/`` for ``/``, ``\\u002b`` for ``+``), URL-encoded (``%2F``, ``+`` for a space, even
``%252F`` twice), in another case (``SK-...``), or an error snippet cuts it short.  ``redact``
matches each secret as one pattern in which every character may appear as itself (any case), after
any number of backslashes, as a ``\\uXXXX`` / ``\\xXX`` escape, or percent-encoded to any depth; it
masks every such occurrence (HTML character references included), every whitespace-separated
piece of 6+ characters of the secret, every run of 6+ of its characters left in plain form (an
echo cut at both ends), and a fragment of 6+ characters at the text's edges: a *prefix* of the secret that the text ends with (a
snippet cut inside the key) or a *suffix* it starts with (a snippet that begins inside it), quotes,
brackets and spaces around it allowed.  A secret shorter than 6 characters is masked only verbatim.
``config_secrets`` in ``collector.credentials`` lists what a config names.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable
from html.entities import html5

MASK = "***"
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
MIN_PIECE = 6
# what may stand between a cut fragment and the edge of the text: quotes, brackets, spaces, dots
_EDGE = r"""[\s"'`\]\[(){}<>.,;:!?…]*"""
_CONTROL_ESCAPES = {"\n": "n", "\r": "r", "\t": "t", "\b": "b", "\f": "f"}
# the HTML/XML named references of each character (``&sol;`` for ``/``, ``&plus;`` for ``+``)
_ENTITY_NAMES: dict[str, list[str]] = {}
for _name, _value in html5.items():
    if len(_value) == 1 and _name.endswith(";"):
        _ENTITY_NAMES.setdefault(_value, []).append(_name[:-1])


def _char(c: str) -> str:
    """A pattern for one character of a secret in any of the encodings above (match IGNORECASE)."""
    cp = ord(c)
    escapes = [re.escape(c)]
    if cp < 0x10000:
        escapes.append(f"u{cp:04x}")
    else:
        hi, lo = 0xD800 + ((cp - 0x10000) >> 10), 0xDC00 + ((cp - 0x10000) & 0x3FF)
        escapes += [f"U{cp:08x}", f"u{hi:04x}\\\\+u{lo:04x}"]
    utf8 = c.encode("utf-8", "surrogatepass")
    escapes.append("\\\\*".join(f"x{b:02x}" for b in utf8))
    if c in _CONTROL_ESCAPES:
        escapes.append(_CONTROL_ESCAPES[c])
    # the character itself after any number of backslashes; an escape after at least one
    alts = [f"\\\\*{re.escape(c)}", "\\\\+(?:" + "|".join(escapes[1:]) + ")"]
    alts.append("".join(f"%(?:25)*{b:02x}" for b in utf8))
    if c == " ":
        alts.append(r"\+")
    # an HTML/XML character reference, escaped once or more (``&#x2F;``, ``&#47;``, ``&amp;sol;``)
    refs = [f"#x0*{cp:x}", f"#0*{cp}"] + [re.escape(n) for n in _ENTITY_NAMES.get(c, [])]
    alts.append("&(?:amp;)*(?:" + "|".join(refs) + ");?")
    return "(?:" + "|".join(alts) + ")"


@functools.lru_cache(maxsize=256)
def _patterns(secret: str) -> tuple[re.Pattern[str], re.Pattern[str] | None, re.Pattern[str] | None]:
    """(the whole secret anywhere, a 6+ prefix at the text's end, a 6+ suffix at its start)."""
    chars = [_char(c) for c in secret]
    whole = re.compile("".join(chars), re.IGNORECASE)
    if len(secret) <= MIN_PIECE:
        return whole, None, None
    # prefix: P1..P6 (P7 (P8 (...)?)?)? at the end;  suffix: ((P1)? P2)? ... P(n-5)..Pn at the start
    tail = ""
    for c in reversed(chars[MIN_PIECE:-1]):
        tail = f"(?:{c}{tail})?"
    prefix = re.compile("(" + "".join(chars[:MIN_PIECE]) + tail + ")" + _EDGE + r"\Z", re.IGNORECASE)
    head = ""
    for c in chars[1 : len(chars) - MIN_PIECE]:
        head = f"(?:{head}{c})?" if head else f"(?:{c})?"
    suffix = re.compile(
        r"\A" + _EDGE + "(" + head + "".join(chars[len(chars) - MIN_PIECE :]) + ")", re.IGNORECASE
    )
    return whole, prefix, suffix


def _pieces(secret: str) -> list[str]:
    """The secret as given, stripped, and its whitespace-separated pieces of 6+ characters."""
    out = [secret, secret.strip()] + [p for p in secret.split() if len(p) >= MIN_PIECE]
    return [s for s in dict.fromkeys(out) if s]


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every form of every secret replaced by ``***`` (longest first), including a
    fragment of 6+ characters cut at either edge of the text."""
    pieces = sorted({p for s in secrets if s for p in _pieces(s)}, key=len, reverse=True)
    for p in pieces:
        if len(p) < MIN_PIECE:
            text = text.replace(p, MASK)  # too short to match loosely: verbatim only
            continue
        whole, _, _ = _patterns(p)
        text = whole.sub(MASK, text)
    for p in pieces:
        if len(p) > MIN_PIECE:
            text = _cut_edges(text, p)
            text = _mask_runs(text, p)
    return text


def _mask_runs(text: str, secret: str) -> str:
    """Mask every run of 6+ consecutive characters of ``secret`` (any case) left in ``text``: a key
    an echo cut at both ends (``...Ab/c+d=EfGh12...``) shows only in its middle."""
    spans: list[list[int]] = []
    for m in _runs_pattern(secret).finditer(text):
        i = m.start()
        if spans and i <= spans[-1][1]:
            spans[-1][1] = i + MIN_PIECE
        else:
            spans.append([i, i + MIN_PIECE])
    for start, end in reversed(spans):
        text = text[:start] + MASK + text[end:]
    return text


@functools.lru_cache(maxsize=256)
def _runs_pattern(secret: str) -> re.Pattern[str]:
    """Every 6-character window of ``secret``, matched at each position (overlapping), any case."""
    grams = dict.fromkeys(secret[i : i + MIN_PIECE] for i in range(len(secret) - MIN_PIECE + 1))
    return re.compile("(?=(?:" + "|".join(map(re.escape, grams)) + "))", re.IGNORECASE)


def _cut_edges(text: str, secret: str) -> str:
    """Mask a prefix of ``secret`` the text ends with and a suffix it starts with (6+ characters,
    in any encoding); only a window at each end is searched, so a long text costs little."""
    _, prefix, suffix = _patterns(secret)
    assert prefix is not None and suffix is not None
    window = 40 * len(secret) + 200
    start = max(0, len(text) - window)
    m = prefix.search(text, start)
    if m is not None:
        text = text[: m.start(1)] + MASK + text[m.end(1) :]
    m = suffix.match(text[:window])
    if m is not None:
        text = text[: m.start(1)] + MASK + text[m.end(1) :]
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
