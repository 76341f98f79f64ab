"""The shapes every metric shares: a scored batch (`Corpus`) and the `Metric` protocol.

A metric is reported in two scopes:

* ``within``: computed over the outputs of each prompt separately, then averaged over prompts;
* ``across``: computed over the pooled outputs of all prompts.

Confidence intervals come from a bootstrap that resamples *prompts*.  A bootstrap replicate is a
vector ``w`` of prompt multiplicities (``w[p]`` copies of prompt ``p``'s outputs, ``sum(w) == P``),
so a metric only has to say how to compute its pooled value for a weighted set of prompts; the
point estimate is the same call with ``w == 1`` everywhere.  ``suite.py`` drives the resampling.

Nothing in ``collector.metrics`` does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

Family = Literal["lexical", "embedding", "length", "tail"]
Scope = Literal["within", "across"]
SCOPES: tuple[Scope, ...] = ("within", "across")


@dataclass(frozen=True)
class Sample:
    """One model output for one prompt."""

    prompt_id: str
    output: str
    prompt: str = ""


@dataclass
class Corpus:
    """A batch of outputs grouped by prompt, in a canonical order.

    Prompts are sorted by id and each prompt's outputs by the SHA-1 of their text, so every value
    is independent of the order the samples arrived in (order matters to gzip, for one).
    Prompt ``p`` owns ``texts[offsets[p]:offsets[p + 1]]``.
    """

    prompt_ids: list[str]
    texts: list[str]
    offsets: np.ndarray
    embeddings: np.ndarray | None = None  # (N, d), rows L2-normalised, aligned with ``texts``
    cache: dict[str, Any] = field(default_factory=dict)  # per-metric precomputation, keyed by metric

    @property
    def n_prompts(self) -> int:
        return len(self.prompt_ids)

    @property
    def n_samples(self) -> int:
        return len(self.texts)

    def prompt_slice(self, p: int) -> slice:
        return slice(int(self.offsets[p]), int(self.offsets[p + 1]))

    def prompt_texts(self, p: int) -> list[str]:
        return self.texts[self.prompt_slice(p)]

    def sample_prompt_index(self) -> np.ndarray:
        """Index of the owning prompt for every sample, shape (N,)."""
        return np.repeat(np.arange(self.n_prompts), np.diff(self.offsets))

    def expand(self, weights: np.ndarray) -> np.ndarray:
        """Sample indices of a weighted prompt set: prompt p's samples repeated weights[p] times."""
        parts = [
            np.tile(np.arange(self.offsets[p], self.offsets[p + 1]), int(w))
            for p, w in enumerate(weights)
            if w
        ]
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


def _text_key(text: str) -> str:
    import hashlib

    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()


def build_corpus(samples: Sequence[Sample], embeddings: np.ndarray | None = None) -> Corpus:
    """Group samples by prompt in canonical order; ``embeddings`` rows follow ``samples``' order."""
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        groups.setdefault(s.prompt_id, []).append(i)
    prompt_ids = sorted(groups)
    order: list[int] = []
    offsets = [0]
    for pid in prompt_ids:
        idx = sorted(groups[pid], key=lambda i: (_text_key(samples[i].output), i))
        order.extend(idx)
        offsets.append(len(order))
    emb = None
    if embeddings is not None:
        emb = np.asarray(embeddings, dtype=np.float32)[order]
    return Corpus(
        prompt_ids=prompt_ids,
        texts=[samples[i].output for i in order],
        offsets=np.asarray(offsets, dtype=np.int64),
        embeddings=emb,
    )


class Metric(Protocol):
    """A diversity score over a set of texts (and their embeddings)."""

    name: str
    family: Family
    higher_is_diverse: bool  # direction: True if a larger value means more diverse output
    needs_embeddings: bool

    def within(self, corpus: Corpus) -> np.ndarray:
        """Per-prompt values, shape (P,); NaN where a prompt has too few outputs to score."""

    def across(self, corpus: Corpus, weights: np.ndarray) -> float:
        """The value on the pooled outputs of prompt p repeated ``weights[p]`` times."""
