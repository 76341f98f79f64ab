"""Per-prompt permutation tests: did one prompt's outputs lose diversity between two batches?

A prompt's ``within`` value (e.g. distinct-2 over its outputs) is one number per batch, so the test
is on the prompt's own outputs: pool the baseline's and the candidate's outputs of the prompt and
split them again at random into a "baseline" and a "candidate" of the original sizes.  Under the
null hypothesis (the same model answered both times) every split is as likely as the observed one,
so the one-sided p-value of a decline is the share of splits whose change is at most the observed
change (the observed split counted as one of them).  With few outputs the splits are enumerated
exactly (``C(n_b + n_c, n_c)`` of them); otherwise ``n_perm`` random splits are drawn.  The smallest
p-value a prompt can reach is ``1 / (number of splits)``: with 4 + 4 outputs that is 1/70, which
survives a false-discovery correction over many prompts only when many prompts reach it together.

Pure; no I/O.  Metrics may offer ``within_sets(texts, embeddings, sets)`` (many subsets of one
prompt's outputs in one vectorised pass); others are scored subset by subset with ``within``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from collector.metrics.base import Corpus, Metric

DEFAULT_PERMUTATIONS = 999
FIRST_PERMUTATIONS = 199  # drawn first; most prompts stop there (see STOP_AFTER)
STOP_AFTER = 10  # splits at least as extreme as the observed one that end the test early


@dataclass(frozen=True)
class PromptTest:
    """One metric on one prompt: both sides' values and the permutation p-value of a decline."""

    prompt_id: str
    metric: str
    base_value: float
    cand_value: float
    p_value: float  # one-sided, decline in the metric's diversity direction; NaN when untestable
    min_p: float  # the smallest p-value this prompt's test could give (all its splits drawn)
    n_base: int
    n_cand: int


def set_values(
    metric: Metric, texts: list[str], embeddings: np.ndarray | None, sets: np.ndarray
) -> np.ndarray:
    """The metric's ``within`` value of every subset of ``texts`` (rows of ``sets``, 0/1)."""
    fast = getattr(metric, "within_sets", None)
    if fast is not None:
        out = fast(texts, embeddings, sets)
        if out is not None:
            return np.asarray(out, dtype=np.float64)
    members = [np.flatnonzero(row) for row in np.asarray(sets, dtype=bool)]
    order = np.concatenate(members) if members else np.empty(0, np.int64)
    corpus = Corpus(
        prompt_ids=[str(i) for i in range(len(members))],
        texts=[texts[i] for i in order],
        offsets=np.concatenate([[0], np.cumsum([m.size for m in members])]).astype(np.int64),
        embeddings=None if embeddings is None else np.asarray(embeddings)[order],
    )
    return np.asarray(metric.within(corpus), dtype=np.float64)


def splits(n_base: int, n_cand: int, n_perm: int, rng: np.random.Generator) -> np.ndarray:
    """Candidate-membership rows (S × (n_base + n_cand), bool): row 0 the observed split (the last
    ``n_cand`` outputs), then every other split when there are at most ``n_perm`` of them, else
    ``n_perm`` random ones."""
    n = n_base + n_cand
    observed = np.zeros(n, bool)
    observed[n_base:] = True
    if math.comb(n, n_cand) <= n_perm + 1:
        rows = [observed]
        for combo in itertools.combinations(range(n), n_cand):
            row = np.zeros(n, bool)
            row[list(combo)] = True
            if not np.array_equal(row, observed):
                rows.append(row)
        return np.stack(rows)
    keys = rng.random((n_perm, n))
    ranks = np.argsort(keys, axis=1)[:, :n_cand]
    rows = np.zeros((n_perm, n), bool)
    np.put_along_axis(rows, ranks, True, axis=1)
    return np.vstack([observed[None, :], rows])


def _changes(
    metric: Metric,
    texts: list[str],
    emb: np.ndarray | None,
    member: np.ndarray,
    sign: float,
    with_observed: bool = True,
) -> tuple[np.ndarray, float, float]:
    """Per split, the change candidate − baseline oriented so that negative is less diverse; and
    (when row 0 is the observed split) the observed baseline and candidate values."""
    values = set_values(metric, texts, emb, np.vstack([~member, member]))
    b_vals, c_vals = values[: len(member)], values[len(member) :]
    change = sign * (c_vals - b_vals)
    if not with_observed:
        return change, math.nan, math.nan
    return change, float(b_vals[0]), float(c_vals[0])


def _extreme(change: np.ndarray) -> int:
    """Splits (the observed one, row 0, included) whose change is at most the observed change."""
    finite = change[np.isfinite(change)]
    tol = 1e-12 * max(1.0, abs(change[0]))
    return int(np.sum(finite <= change[0] + tol))


def prompt_tests(
    metric: Metric,
    base: Corpus,
    cand: Corpus,
    *,
    n_perm: int = DEFAULT_PERMUTATIONS,
    seed: int = 0,
) -> list[PromptTest]:
    """The permutation test of ``metric`` on every prompt the two corpora share (in ``cand``'s
    order).  A prompt with fewer than two outputs on a side gets NaN values and p-value.

    Most prompts of a healthy candidate are far from significant: ``FIRST_PERMUTATIONS`` splits are
    drawn first, and a prompt with at least ``STOP_AFTER`` splits as extreme as its own stops there
    (p ≥ 10/200 = 0.05: beyond any threshold the false-discovery step applies); the others get all
    ``n_perm`` (Besag and Clifford's sequential Monte Carlo test, in two stages).  A small p-value
    is therefore always computed from all the splits."""
    rng = np.random.default_rng(seed)
    base_index = {pid: p for p, pid in enumerate(base.prompt_ids)}
    sign = 1.0 if metric.higher_is_diverse else -1.0
    out: list[PromptTest] = []
    for q, pid in enumerate(cand.prompt_ids):
        p = base_index.get(pid)
        if p is None:
            continue
        b_sl, c_sl = base.prompt_slice(p), cand.prompt_slice(q)
        b_texts, c_texts = base.texts[b_sl], cand.texts[c_sl]
        nb, nc = len(b_texts), len(c_texts)
        if nb < 2 or nc < 2:
            out.append(PromptTest(pid, metric.name, math.nan, math.nan, math.nan, math.nan, nb, nc))
            continue
        emb = None
        if base.embeddings is not None and cand.embeddings is not None:
            emb = np.vstack([base.embeddings[b_sl], cand.embeddings[c_sl]])
        # Every distinct split, exactly, when there are no more of them than the full test would
        # draw: identical prompts then get identical p-values, never below 1 / (number of splits).
        exact = math.comb(nb + nc, nc) <= n_perm + 1
        member = splits(nb, nc, n_perm if exact else min(n_perm, FIRST_PERMUTATIONS), rng)
        change, b0, c0 = _changes(metric, b_texts + c_texts, emb, member, sign)
        if not np.isfinite(change[0]):
            out.append(PromptTest(pid, metric.name, b0, c0, math.nan, math.nan, nb, nc))
            continue
        if not exact and n_perm > FIRST_PERMUTATIONS and _extreme(change) < STOP_AFTER:
            more = splits(nb, nc, n_perm - FIRST_PERMUTATIONS, rng)[1:]  # row 0 is the observed split
            extra, _, _ = _changes(metric, b_texts + c_texts, emb, more, sign, with_observed=False)
            change = np.concatenate([change, extra])
        finite = np.isfinite(change)
        p_value = _extreme(change) / float(finite.sum())
        most = math.comb(nb + nc, nc) if exact else n_perm + 1  # splits the full test would use
        out.append(PromptTest(pid, metric.name, b0, c0, p_value, 1.0 / most, nb, nc))
    return out


def tests_for(
    metrics: Sequence[Metric], base: Corpus, cand: Corpus, *, n_perm: int, seed: int
) -> dict[str, list[PromptTest]]:
    """:func:`prompt_tests` of each metric (embedding metrics only when both sides have vectors)."""
    have_vectors = base.embeddings is not None and cand.embeddings is not None
    return {
        m.name: prompt_tests(m, base, cand, n_perm=n_perm, seed=seed)
        for m in metrics
        if have_vectors or not m.needs_embeddings
    }
