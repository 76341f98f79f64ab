"""Lexical metrics: hand-computed values, the `diversity` package, NLTK BLEU, real SmolLM2 text."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

from collector.metrics import lexical as lx
from collector.metrics.base import Sample, build_corpus
from collector.metrics.ngrams import ngram_ids
from collector.metrics.tokenize import token_ids, tokenize

DATA = Path(__file__).parent / "data" / "smollm2_outputs.jsonl"


def _load_reference(name: str):
    """A module of the installed `diversity` package, without its __init__ (which needs spaCy)."""
    spec = importlib.util.find_spec("diversity")
    assert spec is not None and spec.submodule_search_locations
    path = Path(spec.submodule_search_locations[0]) / f"{name}.py"
    mod_spec = importlib.util.spec_from_file_location(f"_ref_diversity_{name}", path)
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    return mod


REF_COMP = _load_reference("compression")
REF_NGD = _load_reference("ngram_diversity")
REF_SR = _load_reference("self_repetition")


def _rows() -> list[tuple[str, str]]:
    rows = []
    with DATA.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                rows.append((str(r["prompt_id"]), str(r["output"])))
    return rows


@pytest.fixture(scope="module")
def real() -> list[tuple[str, str]]:
    if not DATA.exists():
        pytest.skip("tests/data/smollm2_outputs.jsonl missing")
    return _rows()


def _nltk_self_bleu(texts: list[str]) -> float:
    toks = [tokenize(t) for t in texts]
    sm = SmoothingFunction().method1
    vals = [sentence_bleu(toks[:i] + toks[i + 1 :], h, smoothing_function=sm) for i, h in enumerate(toks)]
    return float(np.mean(vals))


# --- tokens and n-grams -------------------------------------------------------------------------


def test_tokenize_unicode_and_punctuation():
    assert tokenize("Héllo, WORLD! Ça va?") == ["héllo", ",", "world", "!", "ça", "va", "?"]
    assert tokenize("   ") == []


def test_ngrams_never_cross_texts():
    ids, offs = token_ids(["a b c", "a b", "c"])
    gid, doc = ngram_ids(ids, offs, 2)
    assert doc.tolist() == [0, 0, 1]
    assert gid[0] == gid[2] and gid[0] != gid[1]  # "a b" twice, "b c" once; no "c a", "b c" across
    _, doc3 = ngram_ids(ids, offs, 3)
    assert doc3.tolist() == [0]


# --- hand-computed values ------------------------------------------------------------------------


def test_distinct_by_hand():
    texts = ["a b a b", "a c"]
    assert lx.distinct_n(texts, 1) == pytest.approx(3 / 6)
    assert lx.distinct_n(texts, 2) == pytest.approx(3 / 4)  # ab, ba, ab, ac
    # rarefaction with budget B: unique ≤ B, and budget >= N is plain distinct
    assert lx.rarefied_distinct_n(texts, 1, 6) == pytest.approx(0.5)
    # B = 1: a subsample of one n-gram holds exactly one distinct n-gram
    assert lx.rarefied_distinct_n(texts, 1, 1) == pytest.approx(1.0)
    # counts a:3 b:2 c:1, N=6, B=2: E[U] = 3 - [C(3,2)+C(4,2)+C(5,2)]/C(6,2)
    expected = (3 - (3 + 6 + 10) / 15) / 2
    assert lx.rarefied_distinct_n(texts, 1, 2) == pytest.approx(expected)


def test_rarefaction_matches_monte_carlo():
    rng = np.random.default_rng(0)
    counts = np.array([50, 20, 5, 5, 1, 1, 1])
    pool = np.repeat(np.arange(counts.size), counts)
    sims = [np.unique(rng.choice(pool, 10, replace=False)).size for _ in range(20000)]
    assert lx.rarefied_richness(counts, 10) == pytest.approx(np.mean(sims), abs=0.03)


def test_entropy_by_hand():
    # normalised: H / log(total n-grams)
    assert lx.ngram_entropy(["a a b b"], 1) == pytest.approx(math.log(2) / math.log(4))
    assert lx.ngram_entropy(["a b c d"], 1) == pytest.approx(1.0)
    assert lx.ngram_entropy(["a a a"], 1) == 0.0
    assert math.isnan(lx.ngram_entropy(["a"], 2))
    assert math.isnan(lx.ngram_entropy(["a"], 1))  # one n-gram: no distribution to judge


def test_entropy_does_not_fall_when_outputs_are_only_shorter():
    """Raw entropy grows with log(number of n-grams): cutting outputs short lowered it. Normalised,
    a truncated copy of the same text is not less diverse."""
    rows = [json.loads(line) for line in DATA.read_text().splitlines()]
    texts = [r["output"] for r in rows[:40]]
    short = [" ".join(t.split()[:10]) for t in texts]
    for n in (1, 2, 3, 4):
        assert lx.ngram_entropy(short, n) >= lx.ngram_entropy(texts, n) - 0.02


def test_repetition_duplicate_length_by_hand():
    assert lx.repetition_rate(["a b a b a b"], n=2) == pytest.approx(3 / 5)
    assert lx.repetition_rate(["x y z w v"]) == 0.0
    assert lx.duplicate_rate(["Hello  world!", "hello world", "other"]) == pytest.approx(2 / 3)
    assert math.isnan(lx.duplicate_rate(["one"]))
    assert lx.length_mean(["a b", "a b c d"]) == 3.0
    assert lx.length_std(["a b", "a b c d"]) == 1.0


def test_bad_input_is_named():
    with pytest.raises(TypeError, match="text 1"):
        lx.distinct_n(["ok", 3], 1)  # type: ignore[list-item]
    with pytest.raises(TypeError, match="single str"):
        lx.self_bleu("not a list")


# --- reference implementations on real text ----------------------------------------------------


@pytest.fixture
def reference_at_time_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference gzips with the current second in a header; ours with 0 (same answer every run)."""
    import time

    monkeypatch.setattr(time, "time", lambda: 0.0)


def test_compression_ratio_is_the_same_every_second(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference's value moves with the clock (the inner gzip header's time, compressed with the
    rest): 9.518 or 9.631 for one repetitive batch depending on the second. Ours does not move."""
    import time

    texts = ["the same answer every time"] * 30
    seen, ours = set(), set()
    for second in range(1_700_000_000, 1_700_000_000 + 60 * 7919, 7919):
        monkeypatch.setattr(time, "time", lambda s=second: float(s))
        seen.add(REF_COMP.compression_ratio(texts))
        ours.add(lx.compression_ratio(texts))
    assert len(seen) > 1 and len(ours) == 1, (ours, seen)


def test_compression_ratio_does_not_depend_on_the_locale(reference_at_time_zero) -> None:
    """Under ``LC_ALL=C`` without Python's UTF-8 mode the reference raises on an emoji (its text-mode
    write) and counts other bytes for other text; ours is the UTF-8 value on every locale."""
    import os
    import subprocess
    import sys

    texts = ["naïve café — ok 🙂", "ünïcödé", "plain text"]
    code = "import sys, json; from collector.metrics import lexical as lx; print(lx.compression_ratio(json.loads(sys.argv[1])))"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG", "PYTHONUTF8"))}
    legacy = {**env, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(texts)],
        env=legacy,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert float(proc.stdout) == lx.compression_ratio(texts)
    assert float(proc.stdout) == REF_COMP.compression_ratio(texts)  # the reference on a UTF-8 locale


def test_reference_agreement_real_text(real, reference_at_time_zero):
    texts = [o for _, o in real]
    for sub in (texts[:7], texts[:40], texts):
        assert lx.compression_ratio(sub) == REF_COMP.compression_ratio(sub)
        assert lx.ngram_diversity_score(sub) == REF_NGD.ngram_diversity_score(sub)
        assert lx.self_repetition(sub) == pytest.approx(
            REF_SR.self_repetition_score(sub, verbose=False), rel=1e-12
        )


def test_reference_agreement_edge_text(reference_at_time_zero):
    texts = ["  a  b  ", "a b c d e", "a b c d e", "", "naïve café — ok", "x\ty\nz w v"]
    assert lx.compression_ratio(texts) == REF_COMP.compression_ratio(texts)
    assert lx.ngram_diversity_score(texts) == REF_NGD.ngram_diversity_score(texts)
    assert lx.self_repetition(texts) == pytest.approx(REF_SR.self_repetition_score(texts, verbose=False))


def test_self_bleu_matches_nltk(real):
    texts = [o for _, o in real]
    for sub in (texts[:2], texts[:5], texts[:25]):
        assert lx.self_bleu(sub) == pytest.approx(_nltk_self_bleu(sub), abs=1e-9)


def test_self_bleu_matches_nltk_short_and_tied():
    texts = ["a", "a b", "b a", "a b c d e", "a b c d e", "q", "x y z"]
    assert lx.self_bleu(texts) == pytest.approx(_nltk_self_bleu(texts), abs=1e-9)


# --- Metric objects: across with weights -------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(real):
    return build_corpus([Sample(p, o) for p, o in real[:60]])


PLAIN = {
    "compression_ratio": lx.compression_ratio,
    "ngram_diversity_score": lx.ngram_diversity_score,
    "self_repetition": lx.self_repetition,
    "self_bleu": lx.self_bleu,
    "repetition_rate": lx.repetition_rate,
    "duplicate_rate": lx.duplicate_rate,
    "length_mean": lx.length_mean,
    "length_std": lx.length_std,
    **{f"ngram_entropy_{n}": (lambda t, n=n: lx.ngram_entropy(t, n)) for n in range(1, 5)},
    **{
        f"distinct_{n}": (lambda t, n=n: lx.rarefied_distinct_n(t, n, lx.DISTINCT_BUDGET_ACROSS))
        for n in range(1, 5)
    },
}


def test_suite_is_complete_and_typed():
    names = [m.name for m in lx.LEXICAL_METRICS]
    assert sorted(names) == sorted(PLAIN)
    for m in lx.LEXICAL_METRICS:
        assert m.family == ("length" if m.name.startswith("length") else "lexical")
        assert m.needs_embeddings is False


@pytest.mark.parametrize("metric", lx.LEXICAL_METRICS, ids=lambda m: m.name)
def test_across_weights_equal_plain_on_expanded(metric, corpus):
    ones = np.ones(corpus.n_prompts, dtype=np.int64)
    assert metric.across(corpus, ones) == pytest.approx(PLAIN[metric.name](corpus.texts), abs=1e-9)
    rng = np.random.default_rng(1)
    for w in (
        np.r_[2, np.zeros(corpus.n_prompts - 1, dtype=np.int64)],
        rng.multinomial(corpus.n_prompts, np.ones(corpus.n_prompts) / corpus.n_prompts),
    ):
        expanded = [corpus.texts[i] for i in corpus.expand(w)]
        got, want = metric.across(corpus, w), PLAIN[metric.name](expanded)
        assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, abs=1e-9)


@pytest.mark.parametrize("metric", lx.LEXICAL_METRICS, ids=lambda m: m.name)
def test_within_is_per_prompt_plain(metric, corpus):
    got = metric.within(corpus)
    assert got.shape == (corpus.n_prompts,)
    for p in range(corpus.n_prompts):
        texts = corpus.prompt_texts(p)
        name = metric.name
        fn = (
            (lambda t, n=int(name[-1]): lx.rarefied_distinct_n(t, n, lx.DISTINCT_BUDGET_WITHIN))
            if name.startswith("distinct")
            else PLAIN[name]
        )
        want = fn(texts) if len(texts) >= metric.min_outputs else float("nan")
        assert (math.isnan(got[p]) and math.isnan(want)) or got[p] == pytest.approx(want, abs=1e-12)
