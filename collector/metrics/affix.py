"""A shared opening or closing: the same words at the start (or end) of most outputs.

A template ("Certainly! Here is my answer:" before every answer) lowers every lexical diversity
metric of every prompt at once, exactly as a collapse would; it may also be a deliberate format
change.  :func:`shared_affix` finds such a string so that the verdict can name it and be computed
again without it.  Words are whitespace-separated and compared exactly.  Pure; no I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

MIN_WORDS = 3
MIN_SHARE = 0.6
MIN_PROMPTS = 3  # a template is shared across prompts: one prompt's similar answers are not one
MAX_WORDS = 40  # longer shared strings are still found; only the first 40 words are compared

Kind = Literal["opening", "closing"]


@dataclass(frozen=True)
class Affix:
    kind: Kind
    text: str  # the shared words joined by single spaces
    n_words: int
    share: float  # of the non-blank outputs that carry it
    baseline_share: float
    closing: Affix | None = None  # a shared closing found beside a shared opening (stripped too)

    def describe(self) -> str:
        """``opening "…"`` or ``opening "…" and closing "…"`` (each cut at 80 characters)."""
        from collector.trends.prompts import shorten

        own = f'{self.kind} "{shorten(self.text, 80)}"'
        if self.closing is None:
            return own
        return f'{own} and closing "{shorten(self.closing.text, 80)}"'


def _words(text: str, kind: Kind) -> list[str]:
    words = text.split()
    return words[:MAX_WORDS] if kind == "opening" else words[::-1][:MAX_WORDS]


def _share_with(texts: Sequence[str], words: list[str], kind: Kind) -> float:
    live = [t for t in texts if t.strip()]
    if not live:
        return 0.0
    k = len(words)
    return sum(_words(t, kind)[:k] == words for t in live) / len(live)


def _more_than(texts: Sequence[str], words: list[str], kind: Kind) -> bool:
    """Whether most texts that carry ``words`` say more than them: a string that is the whole
    output of most (identical outputs) is duplication, not an opening or closing."""
    k = len(words)
    carrying = [w for t in texts for w in [_words(t, kind)] if w[:k] == words]
    return sum(len(t.split()) > k for t in texts if _words(t, kind)[:k] == words) * 2 > len(carrying)


def common_affix(
    texts: Sequence[str], kind: Kind, min_words: int = MIN_WORDS, min_share: float = MIN_SHARE
) -> list[str] | None:
    """The longest word sequence (at least ``min_words``) that at least ``min_share`` of the
    non-blank texts start (``opening``) or end (``closing``) with; None when there is none.  For a
    closing the words are returned in reading order."""
    live = [_words(t, kind) for t in texts if t.strip()]
    if not live:
        return None
    need = min_share * len(live)
    heads = Counter(tuple(w[:min_words]) for w in live if len(w) >= min_words)
    if not heads:
        return None
    head, count = heads.most_common(1)[0]
    if count < need:
        return None
    group = [w for w in live if tuple(w[:min_words]) == head]
    words = list(head)
    while True:
        nxt = Counter(w[len(words)] for w in group if len(w) > len(words))
        if not nxt:
            break
        word, c = nxt.most_common(1)[0]
        if c < need:
            break
        words.append(word)
        group = [w for w in group if len(w) > len(words) - 1 and w[len(words) - 1] == word]
    return words if kind == "opening" else words[::-1]


def shared_affix(candidate: Sequence[Sequence[str]], baseline: Sequence[str]) -> Affix | None:
    """The opening that most candidate outputs share and the baseline's do not, with (in
    ``closing``) a closing shared beside it, found once the opening is stripped; else a closing
    alone; None when neither.  See :func:`_one_affix` for what counts."""
    first = _one_affix(candidate, baseline)
    if first is None or first.kind == "closing":
        return first
    groups = [[strip_affix(t, first) for t in g] for g in candidate]
    rest = _one_affix(groups, [strip_affix(t, first) for t in baseline], kinds=("closing",))
    return first if rest is None else replace(first, closing=rest)


def _one_affix(
    candidate: Sequence[Sequence[str]],
    baseline: Sequence[str],
    kinds: tuple[str, ...] = ("opening", "closing"),
) -> Affix | None:
    """The opening (else closing) that most candidate outputs share and the baseline's do not.

    ``candidate``: the candidate's outputs grouped by prompt.  At least ``MIN_SHARE`` of its
    non-blank outputs carry it, and so do outputs of at least ``MIN_SHARE`` of its prompts (and of
    ``MIN_PROMPTS``): a template spans prompts, while one prompt's collapsed answers may all begin
    alike.  The baseline's outputs carry it at under half that share.
    """
    groups = [list(g) for g in candidate]
    flat = [t for g in groups for t in g]
    for kind in kinds:
        words = common_affix(flat, kind)  # type: ignore[arg-type]
        if words is None:
            continue
        ordered = words if kind == "opening" else words[::-1]
        share = _share_with(flat, ordered, kind)  # type: ignore[arg-type]
        base = _share_with(baseline, ordered, kind)  # type: ignore[arg-type]
        k = len(ordered)
        prompts = sum(any(_words(t, kind)[:k] == ordered for t in g) for g in groups)  # type: ignore[arg-type]
        spread = prompts >= max(MIN_PROMPTS, MIN_SHARE * len(groups))
        if spread and base < share / 2 and _more_than(flat, ordered, kind):  # type: ignore[arg-type]
            return Affix(kind, " ".join(words), len(words), share, base)  # type: ignore[arg-type]
    return None


def strip_affix(text: str, affix: Affix) -> str:
    """``text`` without the affix's words (and the whitespace next to them) where it carries them;
    unchanged otherwise (and without its ``closing``, when it has one).  A text that is only the
    affix becomes empty."""
    if affix.closing is not None:
        return strip_affix(strip_affix(text, replace(affix, closing=None)), affix.closing)
    words = affix.text.split()
    k = len(words)
    if affix.kind == "opening":
        if text.split()[:k] != words:
            return text
        rest = text.lstrip()
        for w in words:
            rest = rest[len(w) :].lstrip()
        return rest
    if text.split()[-k:] != words or len(text.split()) < k:
        return text
    rest = text.rstrip()
    for w in reversed(words):
        rest = rest[: len(rest) - len(w)].rstrip()
    return rest
