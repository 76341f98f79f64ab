"""Word tokens for the lexical metrics.

A token is a maximal run of Unicode word characters (letters, digits, underscore, in any script)
or a single character that is neither word nor whitespace (punctuation, symbols, emoji):
``\\w+|[^\\w\\s]`` over the casefolded text.  One compiled regex per text, no language model:
fast (≈ 1 µs per token) and deterministic, and punctuation counts as a token, as in BLEU.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

TOKEN_RE = re.compile(r"\w+|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Lowercased (casefolded) word and punctuation tokens of one text."""
    if not isinstance(text, str):
        raise TypeError(f"tokenize expects str, got {type(text).__name__}")
    return TOKEN_RE.findall(text.casefold())


def token_ids(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Factorise the tokens of ``texts`` to compact ints.

    Returns ``(ids, offsets)``: the concatenated token ids (int64) and, per text, the start offset
    (length ``len(texts) + 1``), so text ``i`` owns ``ids[offsets[i]:offsets[i + 1]]``.
    """
    vocab: dict[str, int] = {}
    ids: list[int] = []
    offsets = [0]
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"text {i} is {type(t).__name__}, expected str")
        toks = TOKEN_RE.findall(t.casefold())
        ids.extend(vocab.setdefault(tok, len(vocab)) for tok in toks)
        offsets.append(len(ids))
    return np.asarray(ids, dtype=np.int64), np.asarray(offsets, dtype=np.int64)
