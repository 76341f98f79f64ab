"""Large realistic batches: real SmolLM2 outputs resampled, 40 prompts, many outputs per prompt.

The pool is every distinct real output in ``tests/data/*.jsonl`` and ``collector/demo_data/*.jsonl``
(SmolLM2-135M-Instruct, 24 probe prompts, 1,305 distinct outputs), grouped by their prompt.  The 16
largest groups are split in two, giving 40 prompts of 18-44 distinct outputs each, and prompt
``p``'s outputs are drawn with replacement (seeded) from its group: a probe set sampled many times,
or a busy production log, where the same prompt comes back many times.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from collector.metrics.base import Sample

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.real_outputs import distinct_outputs_by_prompt  # noqa: E402

N_PROMPTS = 40


def real_groups() -> list[list[str]]:
    """The 40 prompt groups of distinct real outputs, in a fixed order."""
    groups = distinct_outputs_by_prompt()
    ordered = sorted(groups.values(), key=lambda g: (-len(g), g[0]))
    split = N_PROMPTS - len(ordered)
    out: list[list[str]] = []
    for i, g in enumerate(ordered):
        out.extend([g[0::2], g[1::2]] if i < split else [g])
    return out


def resampled(n: int, seed: int = 0) -> list[Sample]:
    """``n`` outputs over 40 prompts (as even as n allows), each drawn from its prompt's real outputs."""
    groups = real_groups()
    rng = np.random.default_rng(seed)
    owner = np.arange(n) % len(groups)
    samples = []
    for p in owner:
        g = groups[p]
        samples.append(Sample(prompt_id=f"p{p:02d}", output=g[int(rng.integers(len(g)))]))
    return samples
