"""The self-contained HTML page of ``ftp monitor NAME --report monitor.html``: the summary ``--json`` prints,
drawn for a person. The thresholds crossed come first, then the signals over time (latency, errors,
drift, quality, throughput), the rollout comparison, the period's totals, the decisions taken and what
drift was measured against.

Like ``eval.html`` it is one file with inline CSS and SVG, no script, font, image or link, and the same
Content-Security-Policy, so opening it makes no network request. Names, messages and reasons come from
users' files and logs: every string is escaped. A window without requests, or a test without enough of
them, shows as a hole or a hollow marker, never as a zero."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from ftp.errors import UserError
from ftp.eval.html_charts import bar_chart, fmt
from ftp.eval.html_report import CSP, CSS, esc
from ftp.monitor.report_charts import Point, Series, palette, time_chart
from ftp.monitor.windows import parse
from ftp.run.store import atomic_write

Row = dict[str, Any]
MORE_CSS = """
.cards{display:flex;flex-wrap:wrap;gap:14px}.cards figure{margin:0}.cards figcaption{font-weight:600;margin:4px 0}
.chart .empty{fill:#eee}.chart .threshold+text{font-size:11px}
tr.crossed td,tr.crossed th{background:#fbe0df}td.bad{background:#fbe0df}td.good{background:#dff3e0}
p.summary{font-size:16px;font-weight:600}p.summary.bad{color:#9b1c1c}p.summary.ok{color:#16632a}
ul.reasons{margin:0;padding-left:18px}
"""


class Axis:
    """Window starts as hours (or minutes, for windows under an hour) from the period's start."""

    def __init__(self, summary: dict[str, Any]) -> None:
        windows = list(summary.get("windows") or [])
        self.scale, self.unit = (3600.0, "hours") if (summary.get("window_s") or 3600) >= 3600 else (60.0, "minutes")
        self.origin = _moment(summary.get("since")) or (_moment(windows[0]) if windows else None)
        self.windows = windows
        self.window_s = float(summary.get("window_s") or 0)
        end = _moment(summary.get("until"))
        last = self.x(windows[-1]) if windows else 0.0
        self.range = (0.0, max(last, self.of(end)) if end else last + self.window_s / self.scale)
        self.label = f"{self.unit} since {_when(summary.get('since'))} (each point: its window's start)"

    def of(self, moment: datetime) -> float:
        return (moment - self.origin).total_seconds() / self.scale if self.origin else 0.0

    def x(self, window: Any) -> float:
        moment = _moment(window)
        return self.of(moment) if moment else 0.0


def _moment(text: Any) -> datetime | None:
    try:
        return parse(str(text)) if text else None
    except ValueError:
        return None


def _when(text: Any) -> str:
    moment = _moment(text)
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else str(text or "?")


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)) or seconds <= 0:
        return "?"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size:g} {unit}"
    return f"{seconds:g} s"


def _pct(value: Any) -> str:
    return f"{value * 100:.3g}%" if isinstance(value, (int, float)) else "–"


def _count(value: Any) -> str:
    """Counts whole, with thousands separators (``fmt``'s four digits would print 120000 as 1.2e+05)."""
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else _num(value)


def _num(value: Any) -> str:
    return fmt(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else "–"


def rows_of(section: Any, key: str) -> list[Row]:
    """``section[key]``'s rows that are objects (a section or key may be missing, None or odd)."""
    found = section.get(key) if isinstance(section, dict) else None
    return [r for r in found if isinstance(r, dict)] if isinstance(found, list) else []


def who(row: Row) -> str:
    """``blue v3``; ``base`` for the base model; ``(mirror)`` for mirrored copies."""
    version = row.get("version")
    name = f"{row.get('slot') or 'base'}" + (f" v{version}" if version is not None else "")
    return name + (" (mirror)" if row.get("mirrored") else "")


def _per_window(rows: Sequence[Row], axis: Axis, value: Callable[[Row], Point | None]) -> dict[str, list[Point]]:
    """Each slot-version's point in every window, a hole (``y`` None) where it has no row or no value."""
    found: dict[str, dict[str, Point]] = {}
    for row in rows:
        point = value(row)
        if point is not None:
            found.setdefault(who(row), {})[str(row.get("window"))] = point
    return {name: [points.get(str(w)) or Point(axis.x(w), None) for w in axis.windows] for name, points in found.items()}


def _series(points: dict[str, list[Point]], dashed: bool = False, suffix: str = "") -> list[Series]:
    colours = palette(list(points))
    return [Series(f"{name}{suffix}", pts, colours[name], dashed) for name, pts in points.items()]


def _limit(summary: dict[str, Any], rule: str) -> list[tuple[float, str]]:
    """The ``monitor:`` threshold of a rule, from the checks, for a dashed line on its chart."""
    found = next((c.get("threshold") for c in rows_of(summary, "checks") if c.get("rule") == rule), None)
    return [(float(found), f"monitor.{rule}")] if isinstance(found, (int, float)) else []


def _empty(summary: dict[str, Any], axis: Axis) -> list[tuple[float, float]]:
    busy = {r.get("window") for r in rows_of(summary, "service")}
    width = axis.window_s / axis.scale
    return [(axis.x(w), min(axis.x(w) + width, axis.range[1])) for w in axis.windows if w not in busy]


def _service_charts(summary: dict[str, Any], axis: Axis) -> list[tuple[str, str]]:
    rows = [r for r in rows_of(summary, "service") if r.get("window")]
    empty = _empty(summary, axis)

    def pick(field: str, key: str | None = None) -> Callable[[Row], Point | None]:
        def value(row: Row) -> Point | None:
            raw = row.get(field)
            raw = raw.get(key) if key and isinstance(raw, dict) else (None if key else raw)
            return Point(axis.x(row["window"]), float(raw), note=f" (n={row.get('requests')})") \
                if isinstance(raw, (int, float)) else None
        return value

    latency = (_series(_per_window(rows, axis, pick("latency_ms", "p95")), suffix=" p95")
               + _series(_per_window(rows, axis, pick("latency_ms", "p50")), dashed=True, suffix=" p50"))
    charts = [("latency", "Latency p50 (dashed) and p95", latency, "ms", _limit(summary, "p95_latency_ms")),
              ("error_rate", "Error rate (server errors / requests)", _series(_per_window(rows, axis, pick("error_rate"))),
               "error rate", _limit(summary, "error_rate")),
              ("tokens_per_s", "Tokens per second (completion tokens / window)",
               _series(_per_window(rows, axis, pick("tokens_per_s"))), "tokens / s", [])]
    return [(title, time_chart(series, axis.label, unit, title, x_range=axis.range, thresholds=limits, empty=empty, key=key))
            for key, title, series, unit, limits in charts]


def _drift_charts(summary: dict[str, Any], axis: Axis) -> list[tuple[str, str]]:
    """One chart per drift metric, a series per feature, its threshold dashed; unjudged windows hollow."""
    results = [r for r in rows_of(summary.get("drift"), "results") if r.get("window")]
    out = []
    for metric in dict.fromkeys(str(r.get("metric")) for r in results):
        mine = [r for r in results if str(r.get("metric")) == metric]
        features: dict[str, list[Point]] = {}
        for r in mine:
            value = r.get("value")
            features.setdefault(str(r.get("feature")), []).append(Point(
                axis.x(r["window"]), float(value) if isinstance(value, (int, float)) else None,
                hollow=r.get("verdict") == "insufficient_data",
                note=f" · {r.get('verdict')} (n={r.get('n_current')})"))
        limits = sorted({float(r["threshold"]) for r in mine if isinstance(r.get("threshold"), (int, float))})
        colours = palette(list(features))
        series = [Series(name, sorted(pts, key=lambda p: p.x), colours[name]) for name, pts in features.items()]
        title = f"Drift: {metric}"
        out.append((title, time_chart(series, axis.label, metric, title, x_range=axis.range, key=f"drift:{metric}",
                                      thresholds=[(t, "threshold") for t in limits])))
    return out


def _quality_chart(summary: dict[str, Any], axis: Axis) -> list[tuple[str, str]]:
    rows = [q for q in rows_of(summary, "quality") if q.get("window")]

    def value(q: Row) -> Point | None:
        v, low, high = q.get("value"), q.get("low"), q.get("high")
        if not isinstance(v, (int, float)):
            return None
        return Point(axis.x(q["window"]), float(v), low=low if isinstance(low, (int, float)) else None,
                     high=high if isinstance(high, (int, float)) else None, note=f" (n={q.get('n')})")

    metric = str(next((q.get("metric") for q in rows), "accuracy"))
    title = f"Quality: {metric} on labelled answers, with its 95% interval"
    return [(title, time_chart(_series(_per_window(rows, axis, value)), axis.label, metric, title, x_range=axis.range,
                               thresholds=_limit(summary, metric), key="quality"))]


def _charts(summary: dict[str, Any]) -> str:
    axis = Axis(summary)
    if not axis.windows:
        return ""
    drawn = [(t, svg) for t, svg in [*_service_charts(summary, axis), *_drift_charts(summary, axis),
                                      *_quality_chart(summary, axis)] if svg]
    if not drawn:
        return '<section id="charts"><h2>Over time</h2><p>Nothing to plot in this period.</p></section>'
    figures = "".join(f"<figure><figcaption>{esc(t)}</figcaption>{svg}</figure>" for t, svg in drawn)
    return (f'<section id="charts"><h2>Over time</h2><p class="tag">Shaded: a window without requests. A hollow '
            "marker: too few samples for a verdict. A hole in a line: no value in that window.</p>"
            f'<div class="cards">{figures}</div></section>')


def _header(summary: dict[str, Any]) -> str:
    name = summary.get("name") or "?"
    facts = [("period", f"{esc(_when(summary.get('since')))} → {esc(_when(summary.get('until')))}"),
             ("window", f"{esc(_duration(summary.get('window_s')))} ({len(summary.get('windows') or [])} windows)"),
             ("generated at", esc(_when(summary.get("generated_at"))))]
    rows = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    return f'<header><h1>Monitoring: {esc(name)}</h1><dl class="facts">{rows}</dl></header>'


def check_line(checks: Sequence[Row]) -> str:
    """"2 of 5 thresholds crossed", "all within thresholds (5 checked)" or why nothing was checked."""
    crossed = sum(1 for c in checks if c.get("crossed"))
    if not checks:
        return "no thresholds checked (none set in monitor:, or too few requests in the last window)"
    return f"{crossed} of {len(checks)} thresholds crossed" if crossed else f"all within thresholds ({len(checks)} checked)"


def _checks(summary: dict[str, Any]) -> str:
    checks = rows_of(summary, "checks")
    ordered = sorted(checks, key=lambda c: not c.get("crossed"))
    rows = "".join(
        f'<tr class="{"crossed" if c.get("crossed") else "within"}" data-rule="{esc(c.get("rule"))}"><th scope="row">'
        f'{esc(c.get("rule"))}</th><td class="num">{_num(c.get("value"))}</td><td class="num">{_num(c.get("threshold"))}'
        f'</td><td>{"crossed" if c.get("crossed") else "within"}</td><td>{esc(c.get("message") or "")}</td></tr>'
        for c in ordered)
    css = "bad" if any(c.get("crossed") for c in checks) else "ok" if checks else "none"
    table = (f'<table class="checks"><thead><tr><th>rule</th><th>value</th><th>threshold</th><th>status</th>'
             f"<th>what</th></tr></thead><tbody>{rows}</tbody></table>") if checks else ""
    return (f'<section id="checks"><h2>Checks</h2><p class="summary {css}">{esc(check_line(checks))}</p>'
            f"{table}</section>")


def _traffic_note(summary: dict[str, Any]) -> str:
    if rows_of(summary, "service") or rows_of(summary, "totals"):
        return ""
    return ('<section id="no-traffic"><p class="summary">No requests in this period: no service signals, drift or '
            "quality to show. Is the deployment serving, and is its request log the one read?</p></section>")


def _verdict_cell(verdict: Any) -> str:
    css = {"worse": "bad", "ok": "good", "drift": "bad", "no_drift": "good"}.get(str(verdict), "")
    return f'<td class="{css}">{esc(str(verdict or "–").replace("_", " "))}</td>'


def _rollout(summary: dict[str, Any]) -> str:
    rollout = summary.get("rollout")
    if not isinstance(rollout, dict):
        return '<section id="rollout"><h2>Rollout</h2><p>No rollout in progress.</p></section>'
    traffic = rollout.get("traffic") or {}
    old, new = rollout.get("old") or {}, rollout.get("new") or {}
    share = {k: f" ({esc(traffic.get(side.get('slot')))}% of traffic)" if side.get("slot") in traffic else ""
             for k, side in (("old", old), ("new", new))}
    rows = "".join(
        f'<tr data-signal="{esc(s.get("signal"))}"><th scope="row">{esc(s.get("signal"))}</th>'
        f'<td class="num">{_num(s.get("old"))}</td><td class="num">{_num(s.get("new"))}</td>'
        f'<td class="num">{_count(s.get("n_old"))} / {_count(s.get("n_new"))}</td>'
        f'<td class="num">{fmt(s.get("difference"), True) if isinstance(s.get("difference"), (int, float)) else "–"}</td>'
        f'<td class="num">{_interval(s)}</td><td class="num">{_num(s.get("threshold"))}</td>{_verdict_cell(s.get("verdict"))}</tr>'
        for s in rollout.get("signals") or [] if isinstance(s, dict))
    return (f'<section id="rollout"><h2>Rollout</h2><p>old: <b>{esc(who(old))}</b>{share["old"]} → new: '
            f'<b>{esc(who(new))}</b>{share["new"]}</p><table class="rollout"><thead><tr><th>signal</th><th>old</th>'
            "<th>new</th><th>n (old / new)</th><th>difference</th><th>95% interval</th><th>threshold</th><th>verdict</th>"
            f"</tr></thead><tbody>{rows}</tbody></table></section>")


def _interval(row: Row) -> str:
    low, high = row.get("low"), row.get("high")
    return f"[{fmt(low)}, {fmt(high)}]" if isinstance(low, (int, float)) and isinstance(high, (int, float)) else "–"


def _p(row: Row, field: str, key: str) -> str:
    value = row.get(field)
    return _num(value.get(key)) if isinstance(value, dict) else "–"


def _totals(summary: dict[str, Any]) -> str:
    totals = rows_of(summary, "totals")
    quality = [q for q in rows_of(summary, "quality") if q.get("window") is None]
    if not totals and not quality:
        return ""
    rows = "".join(
        f'<tr data-who="{esc(who(t))}"><th scope="row">{esc(who(t))}</th><td class="num">{_count(t.get("requests"))}</td>'
        f'<td class="num">{_count(t.get("errors"))}</td><td class="num">{_pct(t.get("error_rate"))}</td>'
        + "".join(f'<td class="num">{_p(t, "latency_ms", k)}</td>' for k in ("p50", "p95", "p99"))
        + f'<td class="num">{_p(t, "ttft_ms", "p95")}</td><td class="num">{_count(t.get("prompt_tokens"))}</td>'
        f'<td class="num">{_count(t.get("completion_tokens"))}</td><td class="num">{_num(t.get("tokens_per_s"))}</td></tr>'
        for t in totals)
    table = ('<table class="totals"><thead><tr><th>slot-version</th><th>requests</th><th>errors</th><th>error rate</th>'
             "<th>latency p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>TTFT p95 ms</th><th>prompt tokens</th>"
             f"<th>completion tokens</th><th>tokens / s</th></tr></thead><tbody>{rows}</tbody></table>") if totals else ""
    return f'<section id="totals"><h2>The whole period</h2>{table}{_quality_table(quality)}</section>'


def _quality_table(quality: Sequence[Row]) -> str:
    if not quality:
        return '<p class="tag">No labelled feedback in this period: no quality to show.</p>'
    rows = "".join(
        f'<tr data-who="{esc(who(q))}"><th scope="row">{esc(who(q))}</th><td>{esc(q.get("metric"))}</td>'
        f'<td class="num">{_count(q.get("n"))}</td><td class="num">{_num(q.get("value"))}</td>'
        f'<td class="num">{_interval(q)}</td></tr>' for q in quality)
    known = [q for q in quality if isinstance(q.get("value"), (int, float))]
    bars = bar_chart([who(q) for q in known], [(str(known[0].get("metric")), [q["value"] for q in known],
                                                 palette([who(known[0])])[who(known[0])])], "quality per version") if known else ""
    return ('<h3>Quality on labelled answers</h3><table class="quality"><thead><tr><th>slot-version</th><th>metric</th>'
            f"<th>n</th><th>value</th><th>95% interval</th></tr></thead><tbody>{rows}</tbody></table>{bars}")


def _drift(summary: dict[str, Any]) -> str:
    raw = summary.get("drift")
    drift: dict[str, Any] = raw if isinstance(raw, dict) else {}
    ref = drift.get("reference")
    if isinstance(ref, dict):
        sha = str(ref.get("sha256") or "")
        count = ref.get("examples")
        line = (f"drift measured against the training data of v{esc(ref.get('version', '?'))}, "
                f"{f'{count:,}' if isinstance(count, int) else esc(count or '?')} examples"
                + (f', <code title="{esc(sha)}">sha256 {esc(sha[:12])}…</code>' if sha else ""))
    else:
        line = "no reference: the live version's training data was not found, so drift was not measured"
    last = (summary.get("windows") or [None])[-1]
    latest = [r for r in rows_of(drift, "results") if r.get("window") == last]
    features = drift.get("features")
    kinds: dict[str, Any] = features if isinstance(features, dict) else {}
    rows = "".join(
        f'<tr data-feature="{esc(r.get("feature"))}"><th scope="row">{esc(r.get("feature"))}</th>'
        f'<td>{esc(kinds.get(str(r.get("feature")), "?"))}</td><td>{esc(r.get("metric"))}</td><td class="num">{_num(r.get("value"))}'
        f'</td><td class="num">{_num(r.get("threshold"))}</td>{_verdict_cell(r.get("verdict"))}<td class="num">'
        f'{_count(r.get("n_current"))} / {_count(r.get("n_reference"))}</td></tr>' for r in latest)
    table = ('<h3>The last window</h3><table class="drift"><thead><tr><th>feature</th><th>kind</th><th>metric</th>'
             "<th>value</th><th>threshold</th><th>verdict</th><th>n (current / reference)</th></tr></thead>"
             f"<tbody>{rows}</tbody></table>") if latest else ""
    return f'<section id="drift"><h2>Drift</h2><p id="reference">{line}</p>{table}</section>'


def _decisions(summary: dict[str, Any]) -> str:
    decisions = rows_of(summary, "decisions")
    if not decisions:
        return '<section id="decisions"><h2>Decisions</h2><p>No retraining or rollback decision recorded.</p></section>'
    rows = "".join(
        f'<tr class="{"crossed" if d.get("fired") else "within"}"><td>{esc(_when(d.get("at")))}</td><td>{esc(d.get("kind"))}'
        f'</td><td>{"fired" if d.get("fired") else "not fired"}</td><td>{esc(d.get("action") or "none")}</td>'
        f'<td><ul class="reasons">{"".join(f"<li>{esc(r)}</li>" for r in d.get("reasons") or [])}</ul></td></tr>'
        for d in decisions)
    return ('<section id="decisions"><h2>Decisions</h2><table class="decisions"><thead><tr><th>at</th><th>kind</th>'
            f"<th>fired</th><th>action</th><th>reasons</th></tr></thead><tbody>{rows}</tbody></table></section>")


def render_monitor_html(summary: dict[str, Any]) -> str:
    """The page for one summary (the JSON ``ftp monitor NAME --json`` prints); any section may be missing."""
    summary = summary if isinstance(summary, dict) else {}
    body = "".join([_header(summary), _checks(summary), _traffic_note(summary), _charts(summary), _rollout(summary),
                    _totals(summary), _drift(summary), _decisions(summary),
                    "<footer><p>Written by ftp monitor from its summary (<code>--json</code> prints the same).</p></footer>"])
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>Monitoring · {esc(summary.get('name') or '?')}</title><style>{CSS}{MORE_CSS}</style></head>"
            f"<body><main>{body}</main></body></html>\n")


def write_monitor_html(summary: dict[str, Any], path: Path) -> Path:
    """``path`` written atomically (a reader never sees half a page); a path that cannot be written is the
    user's to change."""
    try:
        atomic_write(Path(path), render_monitor_html(summary))
    except (IsADirectoryError, NotADirectoryError, PermissionError, FileExistsError) as exc:
        raise UserError(f"cannot write the report to {path}: {exc.strerror or exc}; give --report a writable "
                        "FILE.html") from None
    return Path(path)
