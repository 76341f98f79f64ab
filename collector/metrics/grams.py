"""The token n-grams of a set of texts, built once and shared by the lexical metrics.

A text that repeats an earlier one is tokenised and n-grammed once (``Grams``); ``checked_texts``
is the input check every plain metric function makes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from collector.metrics.ngrams import ngram_ids_upto
from collector.metrics.tokenize import token_ids

MAX_ORDER = 4  # n-gram orders 1..4 (BLEU-4's)


def checked_texts(texts: Sequence[str], what: str) -> list[str]:
    if isinstance(texts, str):
        raise TypeError(f"{what} expects a list of texts, got a single str")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"{what}: text {i} is {type(t).__name__}, expected str")
    return out


Tokens = tuple[np.ndarray, np.ndarray]


@dataclass
class Grams:
    """Token n-grams of a set of texts (orders 1..4, built once, on demand), each distinct text once.

    A text that repeats an earlier one is tokenised and n-grammed once; its n-grams are copied.
    The n-gram ids equal ``ngram_ids`` over all texts (an id is the rank of the n-gram among the
    distinct n-grams, a set that copies do not change).  Only the distinct texts' n-grams are kept;
    every text's are expanded from them on each ``ngrams`` call (two callers per order), not kept
    (at 200,000 resampled outputs they were 384 MB of the suite's peak).
    """

    lengths: np.ndarray  # tokens per text
    distinct_tokens: Tokens  # ``token_ids`` of the distinct texts, in first-occurrence order
    text_distinct: np.ndarray  # per text, the index of its distinct text
    _distinct_by_order: list[tuple[np.ndarray, np.ndarray]] | None = None

    @classmethod
    def of(cls, texts: Sequence[str]) -> Grams:
        index: dict[str, int] = {}
        which = np.empty(len(texts), np.int64)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"text {i} is {type(t).__name__}, expected str")
            which[i] = index.setdefault(t, len(index))
        tokens = token_ids(list(index))
        return cls(np.diff(tokens[1])[which], tokens, which)

    def ngrams(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``ngram_ids(*token_ids(texts), n)``: compact n-gram ids and their owning text."""
        if not 1 <= n <= MAX_ORDER:
            raise ValueError(f"n-gram order must be 1..{MAX_ORDER}, got {n}")
        gid, doc = self._distinct_ngrams()[n - 1]
        return self._expand(gid, doc)

    def _distinct_ngrams(self) -> list[tuple[np.ndarray, np.ndarray]]:
        if self._distinct_by_order is None:
            self._distinct_by_order = ngram_ids_upto(*self.distinct_tokens, MAX_ORDER)
        return self._distinct_by_order

    def distinct_ngrams(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``ngrams(n)`` of the distinct texts only: owners index ``distinct_tokens`` (map a text to
        its distinct text with ``text_distinct``). For per-text statistics, computed once per text."""
        if not 1 <= n <= MAX_ORDER:
            raise ValueError(f"n-gram order must be 1..{MAX_ORDER}, got {n}")
        gid, doc = self._distinct_ngrams()[n - 1]
        return gid.astype(np.int64), doc.astype(np.int64)

    def _expand(self, gid: np.ndarray, doc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n_distinct = self.distinct_tokens[1].size - 1
        if n_distinct == self.text_distinct.size:  # no repeated text: already in text order
            return gid.astype(np.int64), doc.astype(np.int64)
        per = np.bincount(doc, minlength=n_distinct)
        start = np.concatenate([[0], np.cumsum(per)])
        cnt = per[self.text_distinct]
        out_start = np.concatenate([[0], np.cumsum(cnt)])
        pos = np.repeat(start[self.text_distinct] - out_start[:-1], cnt) + np.arange(out_start[-1])
        return gid[pos].astype(np.int64), np.repeat(np.arange(cnt.size, dtype=np.int64), cnt)
