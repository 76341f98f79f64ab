"""The whole default suite on N outputs against its own embedding time (issue #2's 1.1x target).

Texts: realistic recombinations of the real SmolLM2 outputs (see lexical_bench.make_texts), 10
outputs per prompt. Prints: embedding time (our Embedder, cold in-memory cache), then the time of
`score_corpus` with every metric in both scopes and ``--bootstrap`` replicates, per metric, and the
ratio (suite + embedding) / embedding.  Run: ``python benchmarks/suite_bench.py [--n 10000]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from lexical_bench import make_texts

from collector.embeddings import Embedder
from collector.metrics.base import Sample, build_corpus
from collector.metrics.registry import all_metrics
from collector.metrics.suite import score_corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--bootstrap", type=int, default=200)
    args = parser.parse_args()
    texts = make_texts(args.n)
    samples = [Sample(prompt_id=f"p{i // 10}", output=t) for i, t in enumerate(texts)]
    embedder = Embedder("default")
    embedder.embed(["warm-up"])  # model load is not embedding time
    t0 = time.perf_counter()
    emb = embedder.embed(texts)
    t_embed = time.perf_counter() - t0
    corpus = build_corpus(samples, emb)
    per_metric = {}
    t0 = time.perf_counter()
    for metric in all_metrics():
        t = time.perf_counter()
        score_corpus(corpus, [metric], n_boot=args.bootstrap)
        per_metric[metric.name] = time.perf_counter() - t
    t_suite = time.perf_counter() - t0
    print(f"{args.n} outputs, {args.n // 10} prompts, {args.bootstrap} replicates")
    print(f"embedding      {t_embed:8.2f} s  ({args.n / t_embed:.0f} texts/s)")
    for name, t in sorted(per_metric.items(), key=lambda kv: -kv[1]):
        print(f"  {name:24s} {t:8.2f} s")
    print(f"suite          {t_suite:8.2f} s")
    print(f"(embedding + suite) / embedding = {(t_embed + t_suite) / t_embed:.2f}")


if __name__ == "__main__":
    main()
