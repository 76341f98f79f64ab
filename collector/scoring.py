"""Scoring a batch of samples end to end: embed (when needed), group, score.

The one place that joins the embedder to the pure metric suite, used by `score`, `compare`, the
collector's runner and the demo.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from collector.comparison import ScoredBatch
from collector.metrics.base import Sample, build_corpus
from collector.metrics.registry import select_metrics
from collector.metrics.result import SuiteResult
from collector.metrics.suite import DEFAULT_BOOTSTRAP, DEFAULT_SEED, score_corpus

if TYPE_CHECKING:
    from collector.embeddings import EmbeddingIdentity

SCORE_BOOT = (
    2  # a side rescored for a comparison only needs per-prompt values; its own intervals are never used
)

EmbedFn = Callable[[list[str]], object]
"""Texts -> (N, d) array. An ``Embedder`` is one; so is anything else with an ``identity``."""


def identity_of(embed: EmbedFn | None) -> EmbeddingIdentity | None:
    """What ``embed`` computes (``Embedder.identity``); None for no embedder or a bare function."""
    return getattr(embed, "identity", None) if embed is not None else None


def scored_identity(embed: EmbedFn | None, result: SuiteResult) -> EmbeddingIdentity | None:
    """The embedding identity to record on a run scored as ``result``: ``embed``'s, when an
    embedding metric was scored with it; None when no embedding metric was."""
    if not any(v.family == "embedding" for v in result.values):
        return None
    return identity_of(embed)


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
    texts = {s.prompt_id: s.prompt for s in samples if s.prompt}
    return ScoredBatch(label=label, corpus=corpus, result=result, prompts=texts)
