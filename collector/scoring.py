"""Scoring a batch of samples end to end: embed (when needed), group, score.

The one place that joins the embedder to the pure metric suite, used by `score`, `compare`, the
collector's runner and the demo.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from collector.comparison import ScoredBatch
from collector.metrics.base import Sample, build_corpus
from collector.metrics.registry import select_metrics
from collector.metrics.suite import DEFAULT_BOOTSTRAP, DEFAULT_SEED, score_corpus

EmbedFn = Callable[[list[str]], object]


def score_batch(
    label: str,
    samples: Sequence[Sample],
    *,
    metrics: Sequence[str] | None = None,
    embed: EmbedFn | None = None,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = DEFAULT_SEED,
) -> ScoredBatch:
    """Score samples; ``embed`` (texts -> (N, d) array) is called only if a selected metric needs it.

    Without ``embed`` the embedding metrics are skipped.
    """
    selected = select_metrics(metrics)
    embeddings = None
    if embed is not None and any(m.needs_embeddings for m in selected):
        embeddings = embed([s.output for s in samples])
    corpus = build_corpus(samples, embeddings)  # type: ignore[arg-type]
    result = score_corpus(corpus, selected, n_boot=n_boot, seed=seed)
    return ScoredBatch(label=label, corpus=corpus, result=result)
