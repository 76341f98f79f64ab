"""Time the lexical suite against the reference implementations, at 1k / 10k / 50k outputs.

Texts: the real SmolLM2 outputs in tests/data/smollm2_outputs.jsonl (144 outputs), split into
sentences; synthetic output i joins 1-4 sentences drawn (seeded) from that sentence pool, so every
size is realistic model prose with the real vocabulary (and the repetition of recombination).
Prompts: 10 outputs each.  Run: ``python benchmarks/lexical_bench.py [--sizes 1000 10000 50000]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import time
from pathlib import Path

import numpy as np

from collector.metrics import lexical as lx
from collector.metrics.base import Sample, build_corpus
from collector.metrics.suite import prompt_weights
from collector.metrics.tokenize import tokenize

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "smollm2_outputs.jsonl"


def _ref(name: str):
    spec = importlib.util.find_spec("diversity")
    path = Path(spec.submodule_search_locations[0]) / f"{name}.py"
    s = importlib.util.spec_from_file_location(f"_ref_{name}", path)
    m = importlib.util.module_from_spec(s)
    s.loader.exec_module(m)
    return m


def make_texts(size: int, seed: int = 0) -> list[str]:
    outs = [json.loads(x)["output"] for x in DATA.read_text(encoding="utf-8").splitlines() if x.strip()]
    sents = [s for o in outs for s in re.split(r"(?<=[.!?])\s+", o) if s.strip()]
    rng = np.random.default_rng(seed)
    k = rng.integers(1, 5, size)
    picks = rng.integers(0, len(sents), k.sum())
    bounds = np.r_[0, np.cumsum(k)]
    return [" ".join(sents[j] for j in picks[bounds[i] : bounds[i + 1]]) for i in range(size)]


def timed(fn, *a):
    t = time.perf_counter()
    v = fn(*a)
    return time.perf_counter() - t, v


def nltk_self_bleu(texts: list[str]) -> float:
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    toks = [tokenize(t) for t in texts]
    sm = SmoothingFunction().method1
    return float(
        np.mean(
            [sentence_bleu(toks[:i] + toks[i + 1 :], h, smoothing_function=sm) for i, h in enumerate(toks)]
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 50000])
    ap.add_argument("--nltk-sizes", type=int, nargs="+", default=[200, 1000])
    ap.add_argument(
        "--ref-max", type=int, default=10000, help="largest size for the quadratic self_repetition ref"
    )
    ap.add_argument("--boot-size", type=int, default=10000)
    args = ap.parse_args()
    comp, ngd, sr = _ref("compression"), _ref("ngram_diversity"), _ref("self_repetition")
    pairs = [
        ("compression_ratio", lx.compression_ratio, comp.compression_ratio),
        ("ngram_diversity_score", lx.ngram_diversity_score, ngd.ngram_diversity_score),
        ("self_repetition", lx.self_repetition, lambda t: sr.self_repetition_score(t, verbose=False)),
    ]
    print("| metric | n | ours (s) | reference (s) | speedup | |ours - ref| |")
    print("|---|---|---|---|---|---|")
    for size in args.sizes:
        texts = make_texts(size)
        for name, ours, ref in pairs:
            to, vo = timed(ours, texts)
            if size <= args.ref_max or name != "self_repetition":
                tr, vr = timed(ref, texts)
                print(f"| {name} | {size} | {to:.3f} | {tr:.3f} | {tr / to:.0f}x | {abs(vo - vr):.1e} |")
            else:
                print(f"| {name} | {size} | {to:.3f} | — | | |")
        to, vo = timed(lx.self_bleu, texts)
        if size in args.nltk_sizes:
            tr, vr = timed(nltk_self_bleu, texts)
            print(
                f"| self_bleu (NLTK loop) | {size} | {to:.3f} | {tr:.2f} | {tr / to:.0f}x | {abs(vo - vr):.1e} |"
            )
        else:
            print(f"| self_bleu | {size} | {to:.3f} | not run | | |")
    for n in [s for s in args.nltk_sizes if s not in args.sizes]:
        texts = make_texts(n)
        to, vo = timed(lx.self_bleu, texts)
        tr, vr = timed(nltk_self_bleu, texts)
        print(f"| self_bleu (NLTK loop) | {n} | {to:.3f} | {tr:.2f} | {tr / to:.0f}x | {abs(vo - vr):.1e} |")

    print("\n| whole lexical suite (all metrics, within + across point) | n | seconds |")
    print("|---|---|---|")
    for size in args.sizes:
        texts = make_texts(size)
        corpus = build_corpus([Sample(f"p{i // 10:05d}", t) for i, t in enumerate(texts)])
        t0 = time.perf_counter()
        ones = np.ones(corpus.n_prompts, dtype=np.int64)
        for m in lx.LEXICAL_METRICS:
            m.within(corpus)
            m.across(corpus, ones)
        print(f"| | {size} | {time.perf_counter() - t0:.2f} |")

    texts = make_texts(args.boot_size)
    corpus = build_corpus([Sample(f"p{i // 10:05d}", t) for i, t in enumerate(texts)])
    weights = prompt_weights(corpus.n_prompts, 200, 0)
    print(f"\n| metric | prepare + point (s) | 200 bootstrap `across` at n={args.boot_size} (s) |")
    print("|---|---|---|")
    for m in lx.LEXICAL_METRICS:
        tp, _ = timed(m.across, corpus, np.ones(corpus.n_prompts, dtype=np.int64))
        t0 = time.perf_counter()
        for w in weights:
            m.across(corpus, w)
        print(f"| {m.name} | {tp:.3f} | {time.perf_counter() - t0:.2f} |")


if __name__ == "__main__":
    main()
