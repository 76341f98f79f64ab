"""Side-by-side timing: our Embedder vs plain sentence-transformers, our metrics vs references.

Run: ``HF_HUB_OFFLINE=1 python benchmarks/embedding_bench.py [--texts 1000] [--nn-50k]``

Texts: the real SmolLM2 outputs in tests/data/smollm2_outputs.jsonl when present (else the small
realistic fixture of the tests), extended to ``--texts`` *distinct* texts by recombining their
sentences (seeded), so the throughput figures do not profit from the cache.
Metric timings use the real embeddings of those texts, tiled with a small seeded perturbation
(renormalised) up to n rows for n beyond the number of texts.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collector.embeddings import Embedder, resolve_model_path
from collector.metrics import embedding as em
from collector.metrics.base import Sample, build_corpus
from tests.embedding_fixture import load_samples


def best_of(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def distinct_texts(n: int, seed: int = 0) -> list[str]:
    real = [o for _, o in load_samples(100_000)]
    sentences = [s.strip() for t in real for s in re.split(r"(?<=[.!?])\s+|\n+", t) if s.strip()]
    rng = np.random.default_rng(seed)
    out = list(dict.fromkeys(real))
    seen = set(out)
    while len(out) < n:
        t = " ".join(rng.choice(sentences, size=int(rng.integers(1, 7))))
        if t not in seen:
            seen.add(t)
            out.append(t)
    return out[:n]


def grow(x: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    if n <= len(x):
        return x[:n]
    rng = np.random.default_rng(seed)
    y = np.tile(x, (n // len(x) + 1, 1))[:n] + rng.normal(scale=0.02, size=(n, x.shape[1]))
    return (y / np.linalg.norm(y, axis=1, keepdims=True)).astype(np.float32)


def bench_embedder(n_texts: int, repeat: int) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    texts = distinct_texts(n_texts)
    print(f"## Embedding {len(texts)} distinct texts (best of {repeat})")
    plain = SentenceTransformer(resolve_model_path("all-MiniLM-L6-v2"), device="cpu")
    t_plain, ref = best_of(lambda: plain.encode(texts, batch_size=32, normalize_embeddings=True), repeat)
    rows = [("plain SentenceTransformer.encode fp32, batch 32", t_plain, 1.0)]
    for backend in ("fp32", "auto"):
        emb = Embedder(backend=backend)  # type: ignore[arg-type]
        emb.embed(texts[:8])  # load the model outside the timing, like plain above

        def run(e: Embedder = emb) -> np.ndarray:
            e.cache._mem.clear()
            return e.embed(texts)

        t, out = best_of(run, repeat)
        cos = float(np.min(np.sum(np.asarray(ref) * np.asarray(out), axis=1)))
        rows.append((f"Embedder backend={emb.backend}, batch {emb.batch_size} (min cos {cos:.4f})", t, cos))
    for label, t, _ in rows:
        print(f"| {label} | {len(texts) / t:8.1f} texts/s | {t_plain / t:5.2f}x |")
    dup = texts[: len(texts) // 2] * 2
    emb = Embedder()
    emb.cache._mem.clear()
    t_dup, _ = best_of(lambda: (emb.cache._mem.clear(), emb.embed(dup)), 1)
    print(f"| dedupe: {len(dup)} texts, half repeats | {len(dup) / t_dup:8.1f} texts/s effective |")
    return np.asarray(ref, dtype=np.float32)


def bench_metrics(x0: np.ndarray, sizes: list[int], nn_sizes: list[int]) -> None:
    from vendi_score import vendi

    print("\n## Metrics (seconds, best of 3; ref = brute force n x n or vendi-score)")
    print("| metric | n | ours s | reference s | ratio | |diff| |")
    for n in sizes:
        x = grow(x0, n).astype(np.float64)
        t_ours, v = best_of(lambda x=x: em.mean_pairwise_distance(x), 3)
        line = f"| mean_distance | {n} | {t_ours:.4f} |"
        if n <= 10_000:

            def brute(x: np.ndarray = x) -> float:
                k = x @ x.T
                return float((k.sum() - np.trace(k)) / (len(x) * (len(x) - 1)))

            t_ref, r = best_of(brute, 1)
            line += f" {t_ref:.4f} | {t_ref / t_ours:.0f}x | {abs(v - (1 - r)):.1e} |"
        print(line)
        t_ours, v = best_of(lambda x=x: em.vendi_score(x), 3)
        line = f"| vendi_score | {n} | {t_ours:.4f} |"
        if n <= 5_000:
            t_ref, r = best_of(lambda x=x: vendi.score_X(x), 1)
            line += f" {t_ref:.4f} | {t_ref / t_ours:.0f}x | {abs(v - r):.1e} |"
        print(line)
    for n in nn_sizes:
        x = grow(x0, n)
        t_ours, _ = best_of(lambda x=x: em.nn_distance(x), 1)
        print(f"| nn_distance (exact, blocked, float32) | {n} | {t_ours:.3f} | | | |")


def bench_bootstrap(x0: np.ndarray, n_prompts: int = 200, per_prompt: int = 10, n_boot: int = 200) -> None:
    x = grow(x0, n_prompts * per_prompt)
    samples = [Sample(f"p{i // per_prompt:04d}", f"t{i}") for i in range(len(x))]
    rng = np.random.default_rng(0)
    weights = [np.bincount(rng.integers(0, n_prompts, n_prompts), minlength=n_prompts) for _ in range(n_boot)]
    print(f"\n## Bootstrap across scope: {n_boot} replicates, {n_prompts} prompts x {per_prompt} outputs")
    for metric in em.EMBEDDING_METRICS:
        corpus = build_corpus(samples, x)
        t0 = time.perf_counter()
        metric.across(corpus, np.ones(n_prompts))
        t_prep = time.perf_counter() - t0
        t0 = time.perf_counter()
        for w in weights:
            metric.across(corpus, w)
        t_reps = time.perf_counter() - t0
        t0 = time.perf_counter()
        for w in weights[:5]:
            {
                "embedding_mean_distance": em.mean_pairwise_distance,
                "vendi_score": em.vendi_score,
                "embedding_nn_distance": em.nn_distance,
            }[metric.name](x[corpus.expand(w)])
        t_naive = (time.perf_counter() - t0) / 5 * n_boot
        print(
            f"| {metric.name} | prepare {t_prep:.3f} s | {n_boot} replicates {t_reps:.3f} s |"
            f" rescoring each replicate ~{t_naive:.2f} s |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--texts", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--nn-50k", action="store_true", help="also time exact NN at n=50k (~1e12 flops)")
    args = ap.parse_args()
    x0 = bench_embedder(args.texts, args.repeat)
    bench_metrics(x0, [1_000, 10_000, 50_000], [1_000, 10_000] + ([50_000] if args.nn_50k else []))
    bench_bootstrap(x0)


if __name__ == "__main__":
    main()
