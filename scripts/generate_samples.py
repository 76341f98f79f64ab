"""Generate real SmolLM2 outputs for a probe set and write them as JSONL.

Each line: {"prompt_id", "prompt", "output", "model", "version", "temperature", "seed"}.

Examples (from the repository root, in the venv; the first run converts the GGUF once, ~20 s):

    python scripts/generate_samples.py --out tests/data/smollm2_outputs.jsonl --prompts 24 -k 6
    python scripts/generate_samples.py --series tests/data --prompts 16 -k 4 --max-new-tokens 40

``--series DIR`` writes the sharpening series series_v1..v4.jsonl (temperatures 1.0, 0.7, 0.4, 0.2)
and control_b.jsonl (a second, independent sample at 1.0 with another seed) into DIR.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector.llm import MODEL_NAME, generate, smollm2_checkpoint
from collector.probes import load_probes

SERIES = [("v1", 1.0), ("v2", 0.7), ("v3", 0.4), ("v4", 0.2)]


def write_run(
    path: Path, probes: list, k: int, temperature: float, seed: int, version: str, max_new_tokens: int
) -> None:
    """Sample k outputs per probe and write them to ``path``; prints the speed to stderr."""
    ckpt = smollm2_checkpoint()
    t0 = time.perf_counter()
    outs = generate(
        ckpt, [p.text for p in probes], k=k, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed
    )
    dt = time.perf_counter() - t0
    path.parent.mkdir(parents=True, exist_ok=True)
    n_chars = 0
    with path.open("w", encoding="utf-8") as f:
        for probe, samples in zip(probes, outs, strict=True):
            for out in samples:
                n_chars += len(out)
                row = {
                    "prompt_id": probe.id,
                    "prompt": probe.text,
                    "output": out,
                    "model": MODEL_NAME,
                    "version": version,
                    "temperature": temperature,
                    "seed": seed,
                }
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    n = len(probes) * k
    print(
        f"{path}: {n} samples in {dt:.1f}s (<= {n * max_new_tokens / dt:.1f} new tokens/s, batched)",
        file=sys.stderr,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--probes", default="default", help='probe spec: "default" or a .txt/.jsonl path')
    ap.add_argument("--prompts", type=int, default=24, help="use the first N probes (default 24)")
    ap.add_argument("-k", type=int, default=6, help="samples per prompt (default 6)")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--version", default="v1", help="value of the 'version' field")
    ap.add_argument("--out", type=Path, help="output JSONL path (single run)")
    ap.add_argument("--series", type=Path, help="directory for series_v1..v4.jsonl + control_b.jsonl")
    args = ap.parse_args(argv)
    if (args.out is None) == (args.series is None):
        ap.error("give exactly one of --out or --series")
    probes = load_probes(args.probes)[: args.prompts]
    if args.out is not None:
        write_run(args.out, probes, args.k, args.temperature, args.seed, args.version, args.max_new_tokens)
        return 0
    for version, temp in SERIES:
        write_run(
            args.series / f"series_{version}.jsonl",
            probes,
            args.k,
            temp,
            args.seed,
            version,
            args.max_new_tokens,
        )
    write_run(
        args.series / "control_b.jsonl", probes, args.k, 1.0, args.seed + 1, "control_b", args.max_new_tokens
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
