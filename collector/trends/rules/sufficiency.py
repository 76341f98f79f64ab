"""Whether the data could show a decline at all, and the smallest one it could.

The verdict is ``inconclusive``, never ``ok``, when an evidence family that was compared has no
metric whose test could reach significance.  Pure; no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

from collector.trends.change import format_change
from collector.trends.compare import Comparison, min_pairs_for
from collector.trends.thresholds import EVIDENCE_FAMILIES, Coverage

DEFAULT_ALPHA = 0.05  # the comparisons' alpha when there is none to read it from


def alpha_of(comparisons: Mapping[str, Comparison]) -> float:
    """The comparisons' significance level (they share one)."""
    return next(iter(comparisons.values())).alpha if comparisons else DEFAULT_ALPHA


def shared_prompts(comparisons: Mapping[str, Comparison], coverage: Coverage | None) -> int:
    """How many prompts both sides had: the coverage's count, else the most pairs a metric had."""
    if coverage:
        return coverage.n_shared_prompts
    return max((c.n_pairs for c in comparisons.values()), default=0)


def insufficient_data(
    comparisons: Mapping[str, Comparison],
    families: Mapping[str, str],
    coverage: Coverage | None,
    *,
    has_trends: bool = False,
) -> str | None:
    """Why the data cannot support a decision, or None when it can.

    The data cannot when an evidence family that was compared has no metric whose test could reach
    significance: too few shared prompts for the sign-flip test (``min_pairs_for(alpha)``, 6 at
    0.05), or too few outputs per prompt for the within-prompt metrics (they need two).
    """
    present = {families.get(m) for m in comparisons} & set(EVIDENCE_FAMILIES)
    if not present:  # a verdict on trends alone (no comparison given) is still a decision
        return None if has_trends else "no lexical or embedding metric was compared"
    usable = {
        f: [m for m, c in comparisons.items() if families.get(m) == f and c.can_reach_significance]
        for f in present
    }
    lacking = sorted(f for f in present if not usable[f])
    if not lacking:
        return None
    alpha = alpha_of(comparisons)
    need = min_pairs_for(alpha)
    n = shared_prompts(comparisons, coverage)
    if n < need:
        return (
            f"only {n} shared prompt{'s' if n != 1 else ''}: the paired test needs at least {need} to reach "
            f"p < {alpha:g}, so no decline, however large, could have been detected"
        )
    if coverage is not None and coverage.min_samples_per_prompt < 2:
        return (
            f"only {coverage.min_samples_per_prompt} output(s) for some shared prompts: the within-prompt "
            f"metrics need at least 2 per prompt (and {need} shared prompts with them), so the "
            f"{' and '.join(lacking)} metrics could not be scored"
        )
    return f"the {' and '.join(lacking)} metrics could not be scored on both sides ({n} shared prompts)"


def detectable_text(comparisons: Mapping[str, Comparison], metrics: tuple[str, ...], n: int) -> str | None:
    """``smallest decline 24 shared prompts could detect: distinct_2 −3.1 pp, vendi_score ×0.93``."""
    parts = []
    for m in metrics:
        c = comparisons.get(m)
        if c is None or not c.scorable or c.min_detectable == float("inf"):
            continue
        sign = -1 if c.higher_is_diverse else 1
        parts.append(f"{m} {format_change(m, sign * c.min_detectable)}")
    if not parts:
        return None
    return f"smallest decline {n} shared prompts could detect (80% power): " + ", ".join(parts)
