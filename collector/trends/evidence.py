"""Evidence beyond the ``within`` scope: homogenisation across prompts and lost tails.

The ``within`` verdict (``verdict.py``) needs the lexical and embedding families to agree on each
prompt's own answers.  A model can collapse the other way: every prompt answered in the same
narrowing vocabulary and stock plots (the pooled, ``across`` scope), while each prompt's answers
still wander in meaning.  This rule lets that count, with the length confound controlled.  Pure;
no I/O.

* ``collapse_suspected`` when **both**
  - homogenisation: at least ``lexical_fraction`` of the lexical metrics declined significantly
    in the ``across`` scope, each with ``p < watch_p_value``; and
  - tail loss: at least one length-controlled tail statistic (rare n-gram retention: outputs cut
    to a common prefix, both sides rarefied to one budget; ``collector.metrics.tail``) declined
    significantly.
  Pooled lexical scores move with output length (a shorter candidate has fewer n-grams per
  prompt), so the pooled family alone never raises the status: the tail statistic, which a
  length-only change does not move, must agree.  Without embeddings (``--no-embeddings``) this
  gives ``watch`` only: as in the rest of the verdict, lexical evidence alone is never
  ``collapse_suspected``.
* ``watch`` when at least half of the tail family (n-gram retention and k-NN recall) declined
  with ``p < watch_p_value``: the candidate stopped producing what the baseline produced rarely.

The rule only ever raises a status (``ok`` < ``watch`` < ``collapse_suspected``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from collector.trends.compare import Comparison
from collector.vocabulary import STATUS_RANK

TAIL_FAMILY = "tail"
LENGTH_CONTROLLED_PREFIX = "tail_ngram_retention_"
TAIL_WATCH_FRACTION = 0.5


@dataclass(frozen=True)
class Evidence:
    """The status after this rule, the reasons it adds (first), and ``details`` for machines."""

    status: str
    reasons: list[str]
    details: dict[str, Any] = field(default_factory=dict)


def _declined(cmp: Mapping[str, Comparison], names: list[str], p_below: float | None) -> list[str]:
    return [m for m in names if cmp[m].significant_decline and (p_below is None or cmp[m].p_value < p_below)]


def _scorable(cmp: Mapping[str, Comparison], families: Mapping[str, str], family: str) -> list[str]:
    return sorted(m for m, c in cmp.items() if families.get(m) == family and c.rel_change == c.rel_change)


def pooled_and_tail_evidence(
    status: str,
    pooled: Mapping[str, Comparison],
    families: Mapping[str, str],
    *,
    lexical_fraction: float,
    watch_p_value: float,
) -> Evidence:
    """Raise ``status`` on homogenisation across prompts with tail loss (see the module doc)."""
    lexical = _scorable(pooled, families, "lexical")
    tail = _scorable(pooled, families, TAIL_FAMILY)
    controlled = [m for m in tail if m.startswith(LENGTH_CONTROLLED_PREFIX)]
    lex_hit = _declined(pooled, lexical, watch_p_value)
    tail_lost = _declined(pooled, controlled, None)
    tail_strong = _declined(pooled, tail, watch_p_value)
    homogenised = bool(lexical) and bool(lex_hit) and len(lex_hit) >= lexical_fraction * len(lexical)
    tails_gone = bool(tail) and bool(tail_strong) and len(tail_strong) >= TAIL_WATCH_FRACTION * len(tail)
    with_embeddings = bool(_scorable(pooled, families, "embedding"))
    new, reasons = status, []
    if homogenised and tail_lost:
        new = "collapse_suspected" if with_embeddings else "watch"
        reasons.append(
            f"homogenised across prompts: {len(lex_hit)} of {len(lexical)} lexical metrics declined in the "
            f"pooled scope, with tail loss ({', '.join(tail_lost)})"
            + ("" if with_embeddings else "; lexical evidence only (no embeddings): watch at most")
        )
    elif tails_gone:
        new = "watch"
        reasons.append(f"tail loss: {len(tail_strong)} of {len(tail)} tail metrics declined")
    if STATUS_RANK[new] <= STATUS_RANK[status]:
        new, reasons = status, []
    details = {
        "pooled_lexical_declined": lex_hit,
        "tail_declined": _declined(pooled, tail, None),
        "homogenised": homogenised,
        "tail_lost_length_controlled": tail_lost,
        "raised_from": status if new != status else None,
    }
    return Evidence(status=new, reasons=reasons, details=details)
