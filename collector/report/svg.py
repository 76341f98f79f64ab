"""Tiny dependency-free SVG charts: a metric across versions with its 95% interval band."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 360, 190
PAD_L, PAD_R, PAD_T, PAD_B = 52, 14, 38, 38
COLORS = ("#2563eb", "#d97706")  # within, across


@dataclass(frozen=True)
class Series:
    """One line: a value per version (NaN = missing) with its interval."""

    name: str
    values: Sequence[float]
    lows: Sequence[float]
    highs: Sequence[float]


def _finite(xs: Sequence[float]) -> list[float]:
    return [x for x in xs if x is not None and math.isfinite(x)]


def _ticks(lo: float, hi: float) -> list[float]:
    if hi <= lo:
        return [lo]
    step = 10 ** math.floor(math.log10((hi - lo) / 3))
    for mult in (1, 2, 5, 10):
        if (hi - lo) / (step * mult) <= 5:
            step *= mult
            break
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step) + 1)]


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def line_chart(
    title: str, versions: Sequence[str], series: Sequence[Series], flagged: set[int] | None = None
) -> str:
    """An SVG chart: x = versions in order, y = value; bands show the 95% intervals.

    ``flagged`` marks version indexes (e.g. a significant decline) with a red dot on the x axis.
    """
    everything = [v for s in series for v in (*_finite(s.values), *_finite(s.lows), *_finite(s.highs))]
    lo, hi = (min(everything), max(everything)) if everything else (0.0, 1.0)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5 * (abs(lo) or 1), hi + 0.5 * (abs(hi) or 1)
    margin = 0.08 * (hi - lo)
    lo, hi = lo - margin, hi + margin
    n = max(len(versions), 1)

    def x(i: int) -> float:
        return PAD_L + (WIDTH - PAD_L - PAD_R) * (0.5 if n == 1 else i / (n - 1))

    def y(v: float) -> float:
        return PAD_T + (HEIGHT - PAD_T - PAD_B) * (1 - (v - lo) / (hi - lo))

    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{escape(title)}">',
        f'<text x="{PAD_L}" y="16" class="t">{escape(title)}</text>',
    ]
    for t in _ticks(lo, hi):
        parts.append(
            f'<line x1="{PAD_L}" x2="{WIDTH - PAD_R}" y1="{y(t):.1f}" y2="{y(t):.1f}" class="grid"/>'
            f'<text x="{PAD_L - 6}" y="{y(t) + 4:.1f}" class="ax" text-anchor="end">{_fmt(t)}</text>'
        )
    for i, label in enumerate(versions):
        parts.append(
            f'<text x="{x(i):.1f}" y="{HEIGHT - PAD_B + 16}" class="ax" text-anchor="middle">{escape(label)}</text>'
        )
        if flagged and i in flagged:
            parts.append(f'<circle cx="{x(i):.1f}" cy="{HEIGHT - PAD_B + 26}" r="3" class="flag"/>')
    for s, color in zip(series, COLORS, strict=False):
        band = [
            (i, lo_, hi_)
            for i, (lo_, hi_) in enumerate(zip(s.lows, s.highs, strict=True))
            if lo_ is not None and hi_ is not None and math.isfinite(lo_) and math.isfinite(hi_)
        ]
        if len(band) >= 2:
            upper = " ".join(f"{x(i):.1f},{y(h):.1f}" for i, _, h in band)
            lower = " ".join(f"{x(i):.1f},{y(l_):.1f}" for i, l_, _ in reversed(band))
            parts.append(f'<polygon points="{upper} {lower}" fill="{color}" opacity="0.15"/>')
        pts = [(i, v) for i, v in enumerate(s.values) if v is not None and math.isfinite(v)]
        if len(pts) >= 2:
            path = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in pts)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for i, v in pts:
            parts.append(
                f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" fill="{color}">'
                f"<title>{escape(s.name)} {escape(versions[i])}: {_fmt(v)}</title></circle>"
            )
    for k, (s, color) in enumerate(zip(series, COLORS, strict=False)):
        lx = PAD_L + 56 * k
        parts.append(f'<text x="{lx}" y="30" class="lg" fill="{color}">— {escape(s.name)}</text>')
    parts.append("</svg>")
    return "".join(parts)
