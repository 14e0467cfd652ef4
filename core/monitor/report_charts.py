"""The time charts of ``ftp monitor --report``: one inline SVG per signal over the period's windows.

``ftp.eval.html_charts.line_chart`` draws one unbroken polyline per series; a monitor's series have holes
(a window without requests, a drift test without enough of them) that must show as holes, not as a line
across them or a zero, and they need a dashed threshold and interval whiskers. This module draws that
kind of chart with the eval page's ``ticks``, ``fmt`` and palette, so both pages look alike."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

from ftp.eval.html_charts import COLOURS, FALLBACK, fmt, ticks

SLOT_COLOURS = {"blue": COLOURS["fine-tuned"], "green": COLOURS["champion"]}
# the eval page's other colours, then a few more: a chart can hold every drift feature (five numeric)
SPARE = (*FALLBACK, COLOURS["base"], "#e377c2", "#bcbd22", "#7f7f7f")
LEFT, RIGHT, BOTTOM, LEGEND_W = 64, 16, 46, 130


@dataclass
class Point:
    """One window's value; ``hollow``: shown but not judged (too few samples); ``low``/``high``: its interval."""

    x: float
    y: float | None
    hollow: bool = False
    low: float | None = None
    high: float | None = None
    note: str = ""


@dataclass
class Series:
    name: str
    points: list[Point]
    stroke: str
    dashed: bool = False


@dataclass
class Frame:
    """The data-to-pixel mapping of one chart, from its tick ranges."""

    x_ticks: list[float]
    y_ticks: list[float]
    width: int
    height: int
    top: int
    plot: tuple[float, float] = field(init=False)

    def __post_init__(self) -> None:
        self.plot = (self.width - LEFT - RIGHT, self.height - self.top - BOTTOM)

    def sx(self, x: float) -> float:
        x0, x1 = self.x_ticks[0], self.x_ticks[-1]
        return LEFT + (x - x0) / ((x1 - x0) or 1) * self.plot[0]

    def sy(self, y: float) -> float:
        y0, y1 = self.y_ticks[0], self.y_ticks[-1]
        return self.top + self.plot[1] - (y - y0) / ((y1 - y0) or 1) * self.plot[1]


def palette(names: Sequence[str]) -> dict[str, str]:
    """A colour per series name: the first version of a slot gets the slot's own (blue, green), any other
    (a redeploy into the slot, a mirror, the base, a drift feature) the spare colours in turn."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    spare = 0
    for name in dict.fromkeys(names):
        slot = SLOT_COLOURS.get(name.split(" ")[0])
        if slot is not None and slot not in taken:
            out[name] = slot
        else:
            out[name], spare = SPARE[spare % len(SPARE)], spare + 1
        taken.add(out[name])
    return out


def _runs(points: Sequence[Point]) -> list[list[Point]]:
    """The series cut where a window has no value or an unjudged one: each run is one polyline."""
    runs: list[list[Point]] = [[]]
    for p in points:
        if p.y is None or p.hollow:
            runs.append([])
        else:
            runs[-1].append(p)
    return [r for r in runs if r]


def _axes(frame: Frame, x_label: str, y_label: str) -> list[str]:
    plot_w, plot_h = frame.plot
    top = frame.top
    base = top + plot_h
    parts = [f'<line x1="{LEFT}" x2="{frame.width - RIGHT}" y1="{frame.sy(t):.1f}" y2="{frame.sy(t):.1f}" class="grid"/>'
             f'<text x="{LEFT - 6}" y="{frame.sy(t) + 4:.1f}" text-anchor="end">{fmt(t)}</text>' for t in frame.y_ticks]
    parts += [f'<line x1="{frame.sx(t):.1f}" x2="{frame.sx(t):.1f}" y1="{base}" y2="{base + 5}" class="axis"/>'
              f'<text x="{frame.sx(t):.1f}" y="{base + 18}" text-anchor="middle">{fmt(t)}</text>' for t in frame.x_ticks]
    parts.append(f'<line x1="{LEFT}" x2="{LEFT}" y1="{top}" y2="{base}" class="axis"/>'
                 f'<line x1="{LEFT}" x2="{frame.width - RIGHT}" y1="{base}" y2="{base}" class="axis"/>'
                 f'<text x="{LEFT + plot_w / 2:.0f}" y="{frame.height - 8}" text-anchor="middle">{escape(x_label)}</text>'
                 f'<text transform="translate(16 {top + plot_h / 2:.0f}) rotate(-90)" text-anchor="middle">'
                 f"{escape(y_label)}</text>")
    return parts


def _gaps(frame: Frame, empty: Sequence[tuple[float, float]]) -> list[str]:
    """Windows without any request, shaded and labelled, so a hole in every line reads as no traffic."""
    out = []
    for a, b in empty:
        x0, x1 = frame.sx(a), frame.sx(b)
        out.append(f'<rect class="empty" x="{x0:.1f}" y="{frame.top}" width="{max(x1 - x0, 2):.1f}" height="{frame.plot[1]}">'
                   "<title>no requests in this window</title></rect>")
    return out


def _threshold(frame: Frame, value: float, label: str) -> str:
    y = frame.sy(value)
    return (f'<line class="threshold" x1="{LEFT}" x2="{frame.width - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#b22" stroke-width="1.5" stroke-dasharray="6 4" data-value="{value:g}"/>'
            f'<text x="{frame.width - RIGHT - 4}" y="{y - 4:.1f}" text-anchor="end" fill="#b22">'
            f"{escape(label)} {fmt(value)}</text>")


def _marks(frame: Frame, s: Series) -> list[str]:
    """Whiskers, then a dot per point (hollow when unjudged), each with a tooltip of its value."""
    out = []
    name = escape(s.name)
    for p in s.points:
        if p.low is not None and p.high is not None:
            x = frame.sx(p.x)
            out.append(f'<line class="whisker" x1="{x:.1f}" x2="{x:.1f}" y1="{frame.sy(p.low):.1f}" '
                       f'y2="{frame.sy(p.high):.1f}" stroke="{s.stroke}" stroke-width="1.5" data-series="{name}"/>')
        if p.y is None:
            continue
        fill, css = ("#fff", "point hollow") if p.hollow else (s.stroke, "point")
        interval = f" [{fmt(p.low)}, {fmt(p.high)}]" if p.low is not None and p.high is not None else ""
        out.append(f'<circle class="{css}" cx="{frame.sx(p.x):.1f}" cy="{frame.sy(p.y):.1f}" r="3.5" fill="{fill}" '
                   f'stroke="{s.stroke}" stroke-width="1.5" data-series="{name}"><title>{name} at {fmt(p.x)}: '
                   f"{fmt(p.y)}{interval}{escape(p.note)}</title></circle>")
    return out


def time_chart(series: Sequence[Series], x_label: str, y_label: str, title: str, *, x_range: tuple[float, float],
               thresholds: Sequence[tuple[float, str]] = (), empty: Sequence[tuple[float, float]] = (),
               key: str = "", width: int = 580, height: int = 280) -> str:
    """Series over the period's windows (``x_range``: the first and last window's x) on axes from 0, with
    dashed thresholds and shaded windows without requests; "" when no series has a value."""
    values = [v for s in series for p in s.points for v in (p.y, p.low, p.high) if v is not None]
    if not values:
        return ""
    top = max(values + [t for t, _ in thresholds])
    per_row = max(1, (width - LEFT) // LEGEND_W)
    frame = Frame(ticks(*x_range), ticks(0.0, top if top > 0 else 1.0), width, height,
                  22 + 14 * math.ceil(len(series) / per_row))
    parts = [f'<svg class="chart" role="img" data-chart="{escape(key)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}"><title>{escape(title)}</title>', *_gaps(frame, empty),
             *_axes(frame, x_label, y_label)]
    parts += [_threshold(frame, value, label) for value, label in thresholds]
    for i, s in enumerate(series):
        dash = ' stroke-dasharray="3 3"' if s.dashed else ""
        for run in _runs(s.points):
            coords = " ".join(f"{frame.sx(p.x):.1f},{frame.sy(p.y or 0.0):.1f}" for p in run)
            parts.append(f'<polyline points="{coords}" fill="none" stroke="{s.stroke}" stroke-width="2"{dash} '
                         f'data-series="{escape(s.name)}"/>')
        parts += _marks(frame, s)
        lx, ly = LEFT + 8 + (i % per_row) * LEGEND_W, 8 + (i // per_row) * 14
        parts.append(f'<rect x="{lx}" y="{ly}" width="14" height="4" fill="{s.stroke}"/>'
                     f'<text x="{lx + 20}" y="{ly + 6}">{escape(s.name)}</text>')
    parts.append("</svg>")
    return "".join(parts)
