"""Inline SVG charts, the heat-map table and the word diff for ``eval.html``, drawn here so the page needs no script,
font or chart library and makes no network request. Every label is escaped: they come from the data."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Sequence
from html import escape

Point = tuple[float, float]

# One colour per candidate, the same in every chart of the page.
COLOURS = {"fine-tuned": "#1f6fb4", "base": "#e08214", "champion": "#2a9d4a"}
FALLBACK = ("#7b4fa0", "#8c564b", "#17becf")


def colour(name: str, index: int = 0) -> str:
    return COLOURS.get(name, FALLBACK[index % len(FALLBACK)])


def fmt(value: float | None, signed: bool = False) -> str:
    """Four significant digits: metric values span 0-1 rates, losses and BLEU's 0-100."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:+.4g}" if signed else f"{value:.4g}"


def ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (1, 2 or 5 times a power of ten apart)."""
    if high <= low:
        high = low + 1.0
    raw = (high - low) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    return [round(k * step, 12) for k in range(first, max(last, first + 1) + 1)]


def line_chart(series: Sequence[tuple[str, Sequence[Point], str]], x_label: str, y_label: str,
               title: str, width: int = 720, height: int = 340) -> str:
    """Polylines of (x, y) points on shared axes with ticks, labels and a legend; one series per curve.
    Points that are single (a validation curve of one point) still show, as dots."""
    points = [p for _, pts, _ in series for p in pts]
    if not points:
        return ""
    left, right, top, bottom = 64, 16, 30, 46
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x_ticks, y_ticks = ticks(min(xs), max(xs)), ticks(min(ys), max(ys))
    x0, x1, y0, y1 = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]
    plot_w, plot_h = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x0) / ((x1 - x0) or 1) * plot_w

    def sy(y: float) -> float:
        return top + plot_h - (y - y0) / ((y1 - y0) or 1) * plot_h

    parts = [f'<svg class="chart" role="img" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}"><title>{escape(title)}</title>']
    for t in y_ticks:
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" class="grid"/>'
                     f'<text x="{left - 6}" y="{sy(t) + 4:.1f}" text-anchor="end">{fmt(t)}</text>')
    for t in x_ticks:
        parts.append(f'<line x1="{sx(t):.1f}" x2="{sx(t):.1f}" y1="{top + plot_h}" y2="{top + plot_h + 5}" '
                     f'class="axis"/><text x="{sx(t):.1f}" y="{top + plot_h + 18}" '
                     f'text-anchor="middle">{fmt(t)}</text>')
    parts.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}" class="axis"/>'
                 f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" class="axis"/>'
                 f'<text x="{left + plot_w / 2:.0f}" y="{height - 8}" text-anchor="middle">{escape(x_label)}</text>'
                 f'<text transform="translate(16 {top + plot_h / 2:.0f}) rotate(-90)" '
                 f'text-anchor="middle">{escape(y_label)}</text>')
    for i, (name, pts, stroke) in enumerate(series):
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{stroke}" stroke-width="2" '
                     f'data-series="{escape(name)}"/>')
        if len(pts) <= 40:  # sparse curves (validation) get a dot per point
            parts.extend(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{stroke}"/>' for x, y in pts)
        lx = left + 12 + i * 150
        parts.append(f'<rect x="{lx}" y="8" width="14" height="4" fill="{stroke}"/>'
                     f'<text x="{lx + 20}" y="14">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(groups: Sequence[str], series: Sequence[tuple[str, Sequence[float | None], str]],
              title: str, maximum: float = 1.0, width: int = 720) -> str:
    """Horizontal bars, one group per label (a field path) with one bar per series (a candidate) side by
    side, scaled to ``maximum``; a missing value shows as a dash, not as a zero-length bar."""
    if not groups or not series:
        return ""
    label_w, bar_h, gap, top = 180, 14, 10, 26
    group_h = bar_h * len(series) + gap
    height = top + group_h * len(groups) + 24
    plot_w = width - label_w - 70
    parts = [f'<svg class="chart" role="img" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}"><title>{escape(title)}</title>']
    for i, (name, _, fill) in enumerate(series):
        parts.append(f'<rect x="{label_w + i * 140}" y="6" width="12" height="12" fill="{fill}"/>'
                     f'<text x="{label_w + i * 140 + 18}" y="16">{escape(name)}</text>')
    for g, group in enumerate(groups):
        y = top + g * group_h
        parts.append(f'<text x="{label_w - 8}" y="{y + group_h / 2:.0f}" text-anchor="end">{escape(group)}</text>')
        for s, (name, values, fill) in enumerate(series):
            value = values[g] if g < len(values) else None
            by = y + s * bar_h
            if value is None:
                parts.append(f'<text x="{label_w + 4}" y="{by + bar_h - 3}">–</text>')
                continue
            w = max(0.0, min(value / (maximum or 1), 1.0)) * plot_w
            parts.append(f'<rect x="{label_w}" y="{by}" width="{w:.1f}" height="{bar_h - 2}" fill="{fill}" '
                         f'data-series="{escape(name)}"><title>{escape(name)}: {fmt(value)}</title></rect>'
                         f'<text x="{label_w + w + 4:.1f}" y="{by + bar_h - 3}">{fmt(value)}</text>')
    parts.append(f'<line x1="{label_w}" x2="{label_w}" y1="{top - 4}" y2="{height - 20}" class="axis"/></svg>')
    return "".join(parts)


def heat_table(labels: Sequence[str], matrix: Sequence[Sequence[float]], caption: str) -> str:
    """A confusion matrix as a table: rows are reference labels, columns predicted ones; each cell shows
    its count, shaded by its share of the row (blue on the diagonal, red off it), so errors stand out
    whatever the class sizes."""
    head = "".join(f'<th scope="col">{escape(str(label))}</th>' for label in labels)
    rows = []
    for i, label in enumerate(labels):
        row = list(matrix[i]) if i < len(matrix) else []
        total = sum(row) or 1
        cells = []
        for j, count in enumerate(row):
            share = count / total
            hue = "31,111,180" if i == j else "200,40,40"
            text = "#fff" if share > 0.55 else "#111"
            cells.append(f'<td style="background:rgba({hue},{share:.2f});color:{text}">{fmt(count)}</td>')
        rows.append(f'<tr><th scope="row">{escape(str(label))}</th>{"".join(cells)}</tr>')
    return (f'<table class="confusion"><caption>{escape(caption)}</caption><thead><tr>'
            f'<th>reference ↓ / predicted →</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>')


def diff_words(reference: str, answer: str) -> str:
    """The answer with its words not in the reference marked <ins> and missing reference words <del>."""
    ref, ans = re.findall(r"\s+|\w+|[^\w\s]", reference), re.findall(r"\s+|\w+|[^\w\s]", answer)
    if len(ref) * len(ans) > 4_000_000:  # very long texts: plain, not diffed
        return escape(answer)
    out = []
    for op, a0, a1, b0, b1 in difflib.SequenceMatcher(None, ref, ans, autojunk=False).get_opcodes():
        if op in ("delete", "replace"):
            out.append(f"<del>{escape(''.join(ref[a0:a1]))}</del>")
        if op in ("insert", "replace"):
            out.append(f"<ins>{escape(''.join(ans[b0:b1]))}</ins>")
        if op == "equal":
            out.append(escape("".join(ans[b0:b1])))
    return "".join(out)
