"""The rules that decide a verdict's status, in order: the first that applies decides.

Each rule reads the :class:`~collector.trends.rules.tally.Tally` and returns its
:class:`Decision` (the status and its reasons), or None when it does not apply.  Pure; no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from collector.trends.rules.sufficiency import detectable_text
from collector.trends.rules.tally import Tally, counts_text, family_fractions
from collector.trends.thresholds import EVIDENCE_FAMILIES, Thresholds
from collector.vocabulary import Status


@dataclass(frozen=True)
class Decision:
    """A status and the reasons for it, in the order people read them."""

    status: Status
    reasons: tuple[str, ...]

    def then(self, *lines: str | None) -> Decision:
        """The same status with these lines (those not None) after the reasons."""
        return Decision(self.status, self.reasons + tuple(line for line in lines if line is not None))


StatusRule = Callable[[Tally, Thresholds], Decision | None]


def blank_outputs(t: Tally, th: Thresholds) -> Decision | None:
    """A mostly blank candidate is never ok: collapse, or inconclusive when the baseline is as blank."""
    if not t.blank or t.coverage is None:
        return None
    cov = t.coverage
    what = f"{cov.n_candidate_blank} of {cov.n_candidate} candidate outputs are blank"
    base = f"baseline: {cov.n_baseline_blank} of {cov.n_baseline}"
    if cov.baseline_blank_share >= th.blank_fraction:
        return Decision("inconclusive", (f"{what} ({base}): both sides are mostly blank, nothing to judge",))
    return Decision("collapse_suspected", (f"{what} ({base})",))


def too_little_data(t: Tally, th: Thresholds) -> Decision | None:
    """Data too small for the test to reach significance is inconclusive, never ok."""
    return None if t.lacking is None else Decision("inconclusive", (f"inconclusive: {t.lacking}",))


def one_family_declined(t: Tally, th: Thresholds) -> Decision | None:
    """With one evidence family compared, it must reach its fraction at ``p < watch_p_value``."""
    if not (t.single and t.family_reached_strongly[t.present[0]]):
        return None
    f = t.present[0]
    other = "embedding" if f == "lexical" else "lexical"
    return Decision(
        "collapse_suspected",
        (
            f"{t.summary}, {len(t.strong[f])} with p < {th.watch_p_value:g} "
            f"({f}-only verdict: no {other} metrics were compared)",
        ),
    )


def both_families_declined(t: Tally, th: Thresholds) -> Decision | None:
    """Collapse narrows both the words and what is said: both families reached their fractions."""
    if t.single or not all(t.family_reached[f] for f in EVIDENCE_FAMILIES):
        return None
    return Decision("collapse_suspected", (t.summary,))


def lone_family_line(t: Tally) -> str | None:
    """One family alone reached its fraction at ``p < watch_p_value``."""
    only = next((f for f in EVIDENCE_FAMILIES if t.family_reached_strongly[f]), None)
    return None if only is None else f"{t.summary} (only the {only} family agrees)"


def headline_line(t: Tally, th: Thresholds) -> str | None:
    """A headline metric declined at ``p < watch_p_value``."""
    hit = t.headline_declined
    if not hit:
        return None
    return f"headline metric{'s' if len(hit) > 1 else ''} declined with p < {th.watch_p_value:g}: {', '.join(hit)}"


def trend_line(t: Tally) -> str | None:
    """Significant downward trends in at least ``trend_fraction`` of both families."""
    if not all(t.trend_family_reached.values()):
        return None
    return "downward trend in both families: " + counts_text(t.trending, t.trend_totals)


def watch(t: Tally, th: Thresholds) -> Decision | None:
    """One family alone, or a headline metric alone (both at the stricter p), or trends in both."""
    lines = [x for x in (lone_family_line(t) or headline_line(t, th), trend_line(t)) if x is not None]
    return Decision("watch", tuple(lines)) if lines else None


def short_of_every_rule(t: Tally, th: Thresholds) -> str:
    """What declined at ``p < alpha`` and what each rule would have needed."""
    fractions = family_fractions(th)
    need = {f: max(1, math.ceil(fractions[f] * t.totals[f])) for f in t.present}
    rules = " and ".join(f"{need[f]} {f}" for f in t.present)
    if t.single:  # one family alone must reach its fraction at the stricter p (see above)
        rule = (
            f"collapse_suspected needs {rules} at p < {th.watch_p_value:g} ({t.present[0]}-only "
            f"verdict); watch needs a headline metric at p < {th.watch_p_value:g}"
        )
    else:
        rule = (
            f"collapse_suspected needs {rules} at p < {t.alpha:g}; watch needs a headline "
            f"metric or a family at p < {th.watch_p_value:g}"
        )
    return f"{t.summary} at p < {t.alpha:g}, short of every rule ({rule})"


def ok(t: Tally, th: Thresholds) -> Decision:
    """No rule applies: ok, with what declined and the smallest decline the data could detect."""
    if any(t.declined.values()):
        first = short_of_every_rule(t, th)
    else:
        first = f"no metric declined significantly ({counts_text(t.declined, t.totals)})"
    return Decision("ok", (first,)).then(detectable_text(t.comparisons, th.headline_metrics, t.n_shared))


# The order the verdict applies them in; ``ok`` always applies.
STATUS_RULES: tuple[StatusRule, ...] = (
    blank_outputs,
    too_little_data,
    one_family_declined,
    both_families_declined,
    watch,
    ok,
)


def decide(t: Tally, th: Thresholds) -> Decision:
    """The decision of the first status rule that applies."""
    return next(d for rule in STATUS_RULES if (d := rule(t, th)) is not None)
