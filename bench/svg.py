"""A very small hand-written SVG plotter (no dependencies): line/scatter charts and grouped bars.

Enough for the report: linear or log-10 y axis, "nice" ticks, dashed reference lines, a legend.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path
from typing import Any

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
W, H = 760, 380
LEFT, RIGHT, TOP, BOTTOM = 72, 24, 44, 56


def _nice_step(span: float, target: int = 6) -> float:
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / target
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _ticks(lo: float, hi: float) -> list[float]:
    step = _nice_step(hi - lo)
    start = math.floor(lo / step) * step
    out = []
    v = start
    while v <= hi + step * 1e-9:
        if v >= lo - step * 1e-9:
            out.append(round(v, 10))
        v += step
    return out


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 10000:
        return f"{v / 1000:g}k"
    if abs(v) >= 1:
        return f"{v:g}"
    return f"{v:.3g}"


class _Frame:
    def __init__(self, x_range: tuple[float, float], y_range: tuple[float, float], log_y: bool) -> None:
        self.x0, self.x1 = x_range
        self.log_y = log_y
        y0, y1 = y_range
        if log_y:
            y0, y1 = math.log10(max(y0, 1e-9)), math.log10(max(y1, 1e-9))
        self.y0, self.y1 = y0, y1
        if self.x1 <= self.x0:
            self.x1 = self.x0 + 1
        if self.y1 <= self.y0:
            self.y1 = self.y0 + 1

    def px(self, x: float) -> float:
        return LEFT + (x - self.x0) / (self.x1 - self.x0) * (W - LEFT - RIGHT)

    def py(self, y: float) -> float:
        if self.log_y:
            y = math.log10(max(y, 1e-9))
        return H - BOTTOM - (y - self.y0) / (self.y1 - self.y0) * (H - TOP - BOTTOM)


def _header(title: str, extra_h: int = 0) -> list[str]:
    h = H + extra_h
    return [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" '
            f'font-family="Helvetica, Arial, sans-serif" font-size="12">'),
            f'<rect width="{W}" height="{h}" fill="white"/>',
            f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">{escape(title)}</text>']


def _axes(f: _Frame, x_label: str, y_label: str, x_ticks: Sequence[float] | None = None,
          x_tick_labels: Sequence[str] | None = None) -> list[str]:
    out = [f'<line x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}" stroke="#333"/>',
           f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{H - BOTTOM}" stroke="#333"/>']
    y_ticks = [10 ** e for e in range(math.floor(f.y0), math.ceil(f.y1) + 1)] if f.log_y else _ticks(f.y0, f.y1)
    for t in y_ticks:
        y = f.py(t)
        if TOP - 1 <= y <= H - BOTTOM + 1:
            out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}" stroke="#eee"/>')
            out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
    if x_ticks is None:
        x_ticks = _ticks(f.x0, f.x1)
    for i, t in enumerate(x_ticks):
        x = f.px(t)
        if LEFT - 1 <= x <= W - RIGHT + 1:
            label = x_tick_labels[i] if x_tick_labels else _fmt(t)
            out.append(f'<line x1="{x:.1f}" y1="{H - BOTTOM}" x2="{x:.1f}" y2="{H - BOTTOM + 4}" stroke="#333"/>')
            out.append(f'<text x="{x:.1f}" y="{H - BOTTOM + 17}" text-anchor="middle">{escape(label)}</text>')
    out.append(f'<text x="{(LEFT + W - RIGHT) / 2}" y="{H - 14}" text-anchor="middle">{escape(x_label)}</text>')
    out.append(f'<text transform="translate(16,{(TOP + H - BOTTOM) / 2}) rotate(-90)" text-anchor="middle">'
               f'{escape(y_label)}</text>')
    return out


def _legend_layout(labels: Sequence[tuple[str, str, str]]) -> tuple[list[tuple[float, float]], int]:
    """Positions below the plot, flowing left to right; returns them and the extra height needed."""
    pos, x, y = [], float(LEFT), H + 4.0
    for label, _, _ in labels:
        width = len(label) * 6.6 + 40
        if x + width > W - RIGHT and x > LEFT:
            x, y = float(LEFT), y + 18
        pos.append((x, y))
        x += width
    return pos, (int(y - H) + 20 if labels else 0)


def _legend(labels: Sequence[tuple[str, str, str]]) -> list[str]:
    """(label, colour, kind: line|dash|box|dot) entries below the plot."""
    out = []
    positions, _ = _legend_layout(labels)
    for (label, colour, kind), (x, y) in zip(labels, positions):
        if kind == "box":
            out.append(f'<rect x="{x}" y="{y - 6}" width="16" height="9" fill="{colour}"/>')
        elif kind == "dot":
            out.append(f'<circle cx="{x + 8}" cy="{y - 2}" r="3.5" fill="{colour}"/>')
        else:
            dash = ' stroke-dasharray="6,4"' if kind == "dash" else ""
            out.append(f'<line x1="{x}" y1="{y - 2}" x2="{x + 18}" y2="{y - 2}" stroke="{colour}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{x + 24}" y="{y + 2}">{escape(label)}</text>')
    return out


def line_chart(path: Path, title: str, series: Sequence[tuple[Any, ...]], *,
               x_label: str, y_label: str, log_y: bool = False, scatter: bool = False,
               hlines: Iterable[tuple[float, str]] = (), vlines: Iterable[tuple[float, str]] = (),
               y_min: float | None = None, y_max: float | None = None) -> Path:
    hlines, vlines = list(hlines), list(vlines)
    series = [(item[0], item[1], item[2] if len(item) > 2 else ("dot" if scatter else "line")) for item in series]
    xs = [x for _, pts, _ in series for x, _ in pts] + [x for x, _ in vlines]
    ys = [y for _, pts, _ in series for _, y in pts if (y > 0 or not log_y)] + [y for y, _ in hlines]
    lo_y = y_min if y_min is not None else (min(ys) if log_y and ys else 0.0)
    hi_y = y_max if y_max is not None else (max(ys) * 1.08 if ys else 1.0)
    if log_y:
        lo_y = 10 ** math.floor(math.log10(max(lo_y, 1e-9)))
        hi_y = 10 ** math.ceil(math.log10(max(hi_y, lo_y * 10)))
    f = _Frame((min(xs, default=0.0), max(xs, default=1.0)), (lo_y, hi_y), log_y)
    legend_entries = [(label, PALETTE[i % len(PALETTE)], style) for i, (label, _, style) in enumerate(series)]
    out = _header(title, _legend_layout(legend_entries)[1]) + _axes(f, x_label, y_label)
    legend = []
    for i, (label, pts, style) in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        pts = [(x, y) for x, y in pts if not log_y or y > 0]
        if style == "dot":
            out += [f'<circle cx="{f.px(x):.1f}" cy="{f.py(y):.1f}" r="2" fill="{colour}" fill-opacity="0.6"/>'
                    for x, y in pts]
            legend.append((label, colour, "dot"))
        elif pts:
            d = " ".join(f"{'M' if j == 0 else 'L'}{f.px(x):.1f},{f.py(y):.1f}" for j, (x, y) in enumerate(pts))
            out.append(f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="1.8"/>')
            legend.append((label, colour, "line"))
    for y, label in hlines:
        py = f.py(y)
        out.append(f'<line x1="{LEFT}" y1="{py:.1f}" x2="{W - RIGHT}" y2="{py:.1f}" stroke="#555" stroke-dasharray="6,4"/>')
        out.append(f'<text x="{LEFT + 4}" y="{py - 4:.1f}" fill="#555">{escape(label)}</text>')
    for x, label in vlines:
        px = f.px(x)
        out.append(f'<line x1="{px:.1f}" y1="{TOP}" x2="{px:.1f}" y2="{H - BOTTOM}" stroke="#999" stroke-dasharray="3,3"/>')
        out.append(f'<text x="{px + 3:.1f}" y="{TOP + 10}" fill="#666" font-size="10">{escape(label)}</text>')
    out += [*_legend(legend), "</svg>"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out), encoding="utf-8")
    return path


def bar_chart(path: Path, title: str, groups: Sequence[str], series: Sequence[tuple[str, Sequence[float]]], *,
              x_label: str, y_label: str, hlines: Iterable[tuple[float, str]] = ()) -> Path:
    hlines = list(hlines)
    values = [v for _, vs in series for v in vs if v == v] + [y for y, _ in hlines]
    f = _Frame((0.0, float(len(groups))), (0.0, max(values, default=1.0) * 1.1), False)
    centres = [i + 0.5 for i in range(len(groups))]
    out = _header(title, _legend_layout([(label, "", "box") for label, _ in series])[1]) + \
        _axes(f, x_label, y_label, centres, list(groups))
    width = 0.8 / max(1, len(series))
    legend = []
    for k, (label, vs) in enumerate(series):
        colour = PALETTE[k % len(PALETTE)]
        for i, v in enumerate(vs):
            if v != v:      # NaN: not measured
                continue
            x0 = f.px(i + 0.1 + k * width)
            x1 = f.px(i + 0.1 + (k + 1) * width)
            y = f.py(v)
            out.append(f'<rect x="{x0:.1f}" y="{y:.1f}" width="{x1 - x0 - 2:.1f}" height="{H - BOTTOM - y:.1f}" '
                       f'fill="{colour}"/>')
            out.append(f'<text x="{(x0 + x1) / 2:.1f}" y="{y - 4:.1f}" text-anchor="middle" font-size="10">'
                       f'{_fmt(round(v, 1))}</text>')
        legend.append((label, colour, "box"))
    for y, label in hlines:
        py = f.py(y)
        out.append(f'<line x1="{LEFT}" y1="{py:.1f}" x2="{W - RIGHT}" y2="{py:.1f}" stroke="#555" stroke-dasharray="6,4"/>')
        out.append(f'<text x="{LEFT + 4}" y="{py - 4:.1f}" fill="#555">{escape(label)}</text>')
    out += [*_legend(legend), "</svg>"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out), encoding="utf-8")
    return path
