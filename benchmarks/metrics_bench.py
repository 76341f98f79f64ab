"""Every metric benchmark of issue #2 in one process: lexical metrics vs the `diversity` package and
NLTK, embeddings vs plain ``SentenceTransformer.encode`` (and the embedding metrics vs brute force /
`vendi-score`), then the whole suite against its embedding time.

    python benchmarks/metrics_bench.py                 # sizes 1k, 10k, 50k (tens of minutes on 2 cores)
    python benchmarks/metrics_bench.py --quick         # 1k and 2k only

Each part is also a script of its own (``lexical_bench.py``, ``embedding_bench.py``,
``suite_bench.py``) with more options; figures are recorded in docs/performance.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import embedding_bench
import lexical_bench
import suite_bench


def run(module: object, argv: list[str]) -> None:
    print(f"\n=== {module.__name__} {' '.join(argv)} ===", flush=True)  # type: ignore[attr-defined]
    saved = sys.argv
    sys.argv = [f"{module.__name__}.py", *argv]  # type: ignore[attr-defined]
    try:
        module.main()  # type: ignore[attr-defined]
    finally:
        sys.argv = saved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes only (a smoke run)")
    args = ap.parse_args()
    if args.quick:
        run(lexical_bench, ["--sizes", "1000", "2000", "--nltk-sizes", "200", "--boot-size", "1000"])
        run(embedding_bench, [])
        run(suite_bench, ["--n", "1000"])
    else:
        run(lexical_bench, [])
        run(embedding_bench, [])
        run(suite_bench, ["--n", "10000"])


if __name__ == "__main__":
    main()
