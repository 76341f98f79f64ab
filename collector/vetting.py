"""Making one pulled or sampled record safe to store, or saying why it cannot be (pure, no I/O).

Every database gets text it can hold (PostgreSQL TEXT refuses NUL; no UTF-8 encoder takes a lone
surrogate such as a JSON ``"\\ud800"`` escape):

* prompts, prompt ids and version labels: NUL and lone surrogates become U+FFFD;
* outputs: lone surrogates that are not escaped log bytes (U+DC80..U+DCFF) become U+FFFD; NUL and
  escaped bytes are kept (the store keeps such a text's exact bytes, see ``collector.store.text``);
* a record the source could not parse, whose version label or prompt id is longer than the column
  (200 characters), or whose version or model label holds a control character (newline, NUL, ESC…;
  tab allowed), a line separator or a bidi override (U+202A-U+202E, U+2066-U+2069), is rejected
  with a reason: the collector quarantines it.
"""

from __future__ import annotations

import hashlib
import re

from collector.sources.base import SampleOutcome
from collector.store.text import LABEL_MAX, REPLACEMENT, label_problem, safe_label

__all__ = ["Rejected", "excerpt", "safe_key", "safe_label", "safe_output", "vet"]

KEY_MAX = 200
EXCERPT_MAX = 200
_UNESCAPABLE = re.compile("[\ud800-\udc7f\udd00-\udfff]")


class Rejected(ValueError):
    """The record cannot be stored; ``str()`` is the reason."""


def safe_output(text: str) -> str:
    """``text`` with the lone surrogates that have no byte form replaced by U+FFFD."""
    return _UNESCAPABLE.sub(REPLACEMENT, text)


def excerpt(text: str | None) -> str | None:
    """The first characters of a record, safe to store and show."""
    return None if text is None else safe_label(text[:EXCERPT_MAX])


def safe_key(key: str | None) -> str | None:
    """A source key that fits its column (a longer one is replaced by its SHA-1)."""
    if key is None or len(key) <= KEY_MAX:
        return key
    return "sha1:" + hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()


def vet(outcome: SampleOutcome, version: str | None) -> SampleOutcome:
    """A copy of ``outcome`` safe to store, or ``Rejected`` with the reason.

    A failed *sampling* call (``error`` set) is not rejected: it is stored as a failed sample.  Pull
    sources mark unparsable records the same way; the caller decides which to quarantine.
    """
    if version is not None and len(version) > LABEL_MAX:
        raise Rejected(f"version label is {len(version)} characters (at most {LABEL_MAX})")
    for what, label in (("version", version), ("model", outcome.model_reported)):
        problem = label_problem(label) if label is not None else None
        if problem is not None:
            raise Rejected(f"{what} label {problem}")
    if len(outcome.prompt_id) > KEY_MAX:
        raise Rejected(f"prompt id is {len(outcome.prompt_id)} characters (at most {KEY_MAX})")
    outcome.prompt_id = safe_label(outcome.prompt_id)
    outcome.prompt = safe_label(outcome.prompt)
    if outcome.output is not None:
        outcome.output = safe_output(outcome.output)
    if outcome.error is not None:
        outcome.error = safe_label(outcome.error)
    if outcome.version is not None:
        outcome.version = safe_label(outcome.version)
    if outcome.finish_reason is not None:
        outcome.finish_reason = safe_label(outcome.finish_reason)[:40]
    outcome.source_key = safe_key(outcome.source_key)
    return outcome
