"""Small inline-SVG line charts for the HTML report: crisp at any zoom, no external files, no plotting library.

Rendering a page of small multiples with matplotlib took seconds per figure on a busy 2-core machine; these
are strings built in microseconds. Every text that reaches the SVG is escaped by the caller's `esc`.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Sequence

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]
MAX_POINTS = 600  # longer series (training ticks) are thinned to about this many points


@dataclass
class Series:
    """One line: x and y values (NaN leaves a gap), optional symmetric error bars."""

    label: str
    x: Sequence[float]
    y: Sequence[float]
    err: Sequence[float] | None = None
    color: str = ""
    markers: bool = True
    extra: dict[str, str] = field(default_factory=dict)


def color(i: int) -> str:
    """The i-th colour of the palette (cycled)."""
    return PALETTE[i % len(PALETTE)]


def nice_ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    """About `count` round tick values covering [lo, hi] (steps of 1, 2, 2.5 or 5 times a power of ten)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(0.0 if abs(value) < step * 1e-9 else value)
        value += step
    return ticks


def tick_text(value: float) -> str:
    """A tick label: short, no float noise (0.30000000000000004 -> 0.3, 25000 -> 25k)."""
    if value != 0 and abs(value) >= 10000 and float(value / 1000).is_integer():
        return f"{value / 1000:g}k"
    return f"{value:.4g}"


def _range(values: list[float]) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    lo, hi = min(finite), max(finite)
    if hi == lo:
        pad = abs(lo) * 0.05 or 0.5
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.06
    return lo - pad, hi + pad


def _thin(x: Sequence[float], y: Sequence[float]) -> tuple[list[float], list[float]]:
    if len(x) <= MAX_POINTS:
        return list(x), list(y)
    step = math.ceil(len(x) / MAX_POINTS)
    return list(x)[::step], list(y)[::step]


def line_chart(title: str, series: Sequence[Series], xlabel: str = "kimg", marks: Sequence[float] = (),
               width: int = 260, height: int = 170, label: str = "") -> str:
    """An <svg> line chart; `marks` are x positions drawn as dashed vertical lines (e.g. the best snapshot)."""
    esc = html.escape
    left, right, top, bottom = 46, 10, 20, 28
    pw, ph = width - left - right, height - top - bottom
    xs_all: list[float] = []
    ys_all: list[float] = []
    prepared = []
    for i, s in enumerate(series):
        x, y = _thin([float(v) for v in s.x], [float(v) for v in s.y])
        err = [float(e) if e is not None and math.isfinite(float(e)) else 0.0 for e in (s.err or [])][:len(x)]
        prepared.append((s, x, y, err, s.color or color(i)))
        xs_all += x
        for j, v in enumerate(y):
            e = err[j] if j < len(err) else 0.0
            ys_all += [v - e, v + e]
    x0, x1 = _range(xs_all + [float(m) for m in marks])
    y0, y1 = _range(ys_all)

    def px(v: float) -> float:
        return left + (v - x0) / (x1 - x0) * pw

    def py(v: float) -> float:
        return top + (1.0 - (v - y0) / (y1 - y0)) * ph

    out = [f'<svg class="chart" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(label or title)}">',
           f"<title>{esc(label or title)}</title>",
           f'<text x="{left + pw / 2:.1f}" y="13" text-anchor="middle" font-size="11" font-weight="bold">'
           f"{esc(title)}</text>",
           f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999" stroke-width="0.8"/>']
    for t in nice_ticks(y0, y1):
        y = py(t)
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e4e4e4" '
                   'stroke-width="0.8"/>')
        out.append(f'<text x="{left - 4}" y="{y + 3:.1f}" text-anchor="end" font-size="9">{esc(tick_text(t))}</text>')
    for t in nice_ticks(x0, x1):
        x = px(t)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top + ph}" y2="{top + ph + 3}" stroke="#999"/>')
        out.append(f'<text x="{x:.1f}" y="{top + ph + 13}" text-anchor="middle" font-size="9">'
                   f"{esc(tick_text(t))}</text>")
    out.append(f'<text x="{left + pw / 2:.1f}" y="{height - 3}" text-anchor="middle" font-size="9" fill="#555">'
               f"{esc(xlabel)}</text>")
    for m in marks:
        if math.isfinite(float(m)):
            x = px(float(m))
            out.append(f'<line class="mark" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + ph}" stroke="#888" '
                       'stroke-dasharray="4 3" stroke-width="1"/>')
    for s, x, y, err, c in prepared:
        segment: list[str] = []
        segments = []
        for xv, yv in zip(x, y):
            if math.isfinite(xv) and math.isfinite(yv):
                segment.append(f"{px(xv):.1f},{py(yv):.1f}")
            elif segment:
                segments.append(segment)
                segment = []
        if segment:
            segments.append(segment)
        for seg in segments:
            out.append(f'<polyline fill="none" stroke="{c}" stroke-width="1.5" points="{" ".join(seg)}"/>')
        for j, (xv, yv) in enumerate(zip(x, y)):
            if not (math.isfinite(xv) and math.isfinite(yv)):
                continue
            e = err[j] if j < len(err) else 0.0
            if e > 0:
                out.append(f'<line x1="{px(xv):.1f}" x2="{px(xv):.1f}" y1="{py(yv - e):.1f}" y2="{py(yv + e):.1f}" '
                           f'stroke="{c}" stroke-width="1"/>')
            if s.markers:
                out.append(f'<circle cx="{px(xv):.1f}" cy="{py(yv):.1f}" r="2.4" fill="{c}"/>')
    out.append("</svg>")
    return "".join(out)


def legend(series: Sequence[Series]) -> str:
    """An HTML legend (colour swatch + escaped label per series)."""
    items = [f'<span class="swatch" style="background:{s.color or color(i)}"></span>{html.escape(s.label)}'
             for i, s in enumerate(series)]
    return '<div class="legend">' + "".join(f"<span>{item}</span>" for item in items) + "</div>"
