"""The scored sample of a large run: bounded, uniform, and independent of arrival order."""

from __future__ import annotations

import random
from collections import Counter

from collector.scored_subset import BottomK, bottom_k, priority


def keys(n_prompts: int, per_prompt: int) -> list[tuple[str, int]]:
    return [(f"p{p}", i) for p in range(n_prompts) for i in range(per_prompt)]


def test_the_same_sample_whatever_the_arrival_order() -> None:
    items = keys(20, 50)
    shuffled = items[:]
    random.Random(7).shuffle(shuffled)
    a = bottom_k(items, lambda k: k, 100)
    b = bottom_k(shuffled, lambda k: k, 100)
    assert len(a) == 100 and sorted(a) == sorted(b)
    # the kept ones are exactly the 100 lowest priorities
    assert sorted(a) == sorted(sorted(items, key=lambda k: priority(*k))[:100])


def test_no_cap_keeps_everything_in_arrival_order() -> None:
    kept: BottomK[int] = BottomK(None)
    for i, (p, j) in enumerate(keys(3, 4)):
        kept.offer(p, j, i)
    assert kept.items() == list(range(12))
    small: BottomK[int] = BottomK(5)
    for i, (p, j) in enumerate(keys(1, 3)):
        small.offer(p, j, i)
    assert small.items() == [0, 1, 2]  # fewer than the cap: all, in order


def test_the_sample_is_uniform_over_prompts() -> None:
    """Each of 10 prompts holds 1/10 of 20,000 outputs; a 2,000 sample gives each 200 ± noise."""
    items = keys(10, 2000)
    counts = Counter(p for p, _ in bottom_k(items, lambda k: k, 2000))
    chi2 = sum((c - 200) ** 2 / 200 for c in counts.values())
    assert len(counts) == 10
    assert chi2 < 27.9  # chi-square, 9 degrees of freedom, p = 0.001
