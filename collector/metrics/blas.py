"""BLAS on one thread, and a dot product whose value does not depend on the core count.

OpenBLAS splits a call across its threads when the operands are large (a dot product above
10,000 elements, on x86-64); on two busy cores the threads wait on each other (a 12,065-element
dot product: 23 ms on two contended threads, 5 µs on one; measured, docs/performance.md), and the
value depends on the split, so on the machine's core count.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

_BLAS: Any = None
_SPLIT_ABOVE = 10_000  # OpenBLAS's x86-64 ddot runs on one thread up to this many elements


def one_blas_thread() -> Any:
    """A context in which BLAS/LAPACK run on one thread (threadpoolctl; a no-op without it).

    A 384×384 ``eigvalsh`` takes 13 ms on one thread and 0.2–0.5 s on two busy cores (OpenBLAS's
    threads wait on each other; measured, docs/performance.md), and a one-thread result is the same
    on every machine, whatever its core count.
    """
    global _BLAS
    if _BLAS is None:
        try:
            from threadpoolctl import ThreadpoolController

            _BLAS = ThreadpoolController()
        except ImportError:
            _BLAS = False
    if _BLAS is False:
        return contextlib.nullcontext()
    return _BLAS.limit(limits=1, user_api="blas")


def halves_dot(x: np.ndarray, y: np.ndarray) -> float:
    """``x @ y`` of two float64 vectors, on one thread, summed as OpenBLAS sums it on two threads.

    Above ``_SPLIT_ABOVE`` elements: the dot of each half (the first ``ceil(n / 2)`` elements, then
    the rest) added to 0 in that order, exactly what a two-core machine's ``x @ y`` returned (checked
    bit for bit on random vectors, ``tests/test_metric_properties.py``); the same value on every
    machine, without two threads that wait on each other.
    """
    with one_blas_thread():
        if x.size <= _SPLIT_ABOVE:
            return float(x @ y)
        h = (x.size + 1) // 2
        return (0.0 + float(x[:h] @ y[:h])) + float(x[h:] @ y[h:])
