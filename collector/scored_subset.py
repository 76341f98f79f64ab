"""Which outputs of a large run are scored: at most ``cap``, a uniform sample anyone can recompute.

Bottom-k sampling: every successful output gets a priority, a hash of its (prompt key, sample
index), which is unique within a run, and the ``cap`` outputs of lowest priority are scored. A hash
of distinct keys is a random order, so that is a uniform sample without replacement. Unlike a
seeded reservoir (Algorithm R) it does not depend on the order in which outputs arrived, so an
assessment that reloads the run's stored samples picks exactly the outputs the collector scored,
and finds their embeddings already stored.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from collector.metrics.base import Sample

T = TypeVar("T")


def priority(prompt_key: str, sample_index: int) -> int:
    """The place of one output in its run's scoring order (lower is scored first)."""
    data = f"{prompt_key}\x00{sample_index}".encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


class BottomK(Generic[T]):
    """The ``cap`` items of lowest priority offered so far (all of them when ``cap`` is None)."""

    def __init__(self, cap: int | None) -> None:
        self.cap = cap
        self._heap: list[tuple[int, int, T]] = []  # (-priority, arrival, item): the root is the worst kept
        self._arrival = itertools.count()

    def offer(self, prompt_key: str, sample_index: int, item: T) -> None:
        entry = (-priority(prompt_key, sample_index), next(self._arrival), item)
        if self.cap is None or len(self._heap) < self.cap:
            heapq.heappush(self._heap, entry)
        elif entry[0] > self._heap[0][0]:  # a lower priority than the worst kept
            heapq.heapreplace(self._heap, entry)

    def items(self) -> list[T]:
        """The kept items in the order they were offered."""
        return [item for _, _, item in sorted(self._heap, key=lambda e: e[1])]

    def __len__(self) -> int:
        return len(self._heap)


def bottom_k(items: Iterable[T], key: Callable[[T], tuple[str, int]], cap: int | None) -> list[T]:
    """The items a ``BottomK(cap)`` keeps, ``key`` giving each one's (prompt key, sample index)."""
    kept: BottomK[T] = BottomK(cap)
    for item in items:
        kept.offer(*key(item), item)
    return kept.items()


def scored_samples(records: Iterable[Any], cap: int | None) -> list[Sample]:
    """The outputs of a run its collector scores, as samples: the ``cap`` records (stored or about
    to be: anything with ``prompt_key``, ``sample_index``, ``output``, ``prompt``) of lowest
    priority, in the order given. The assessment and the gate both pick by this."""
    from collector.metrics.base import Sample

    kept = bottom_k(records, lambda r: (r.prompt_key, r.sample_index), cap)
    return [Sample(prompt_id=r.prompt_key, output=r.output, prompt=r.prompt) for r in kept]


__all__ = ["BottomK", "bottom_k", "priority", "scored_samples"]
