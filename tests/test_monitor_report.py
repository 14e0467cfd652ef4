"""The monitor's HTML report (``ftp monitor NAME --report``), from summaries written out by hand here.

The summary: six hourly windows; blue v3 serves throughout except window 2, where nothing was served at
all; green v4 joins at window 3 (10% of traffic) with many server errors; the prompt length drifts in the
last two windows and its drift test had no data in window 2; the label test had too few answers in
window 3; green's quality in window 4 has no labels (None). The page is parsed here and opened in
headless Chromium (tests/browser_helpers.py: no network request, the DOM it built).
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import Node, Tree, browse

from ftp.errors import UserError
from ftp.monitor.report import check_line, render_monitor_html, write_monitor_html

SCRIPT = "<script>alert(1)</script>"
SINCE = "2024-05-01T00:00:00.000+00:00"
WINDOWS = [f"2024-05-01T0{h}:00:00.000+00:00" for h in range(6)]
P95_BLUE = [200.0, 205.5, None, 210.0, 215.0, 220.0]  # window 2: no requests


def service(window: int, slot: str, version: int, requests: int, errors: int, p95: float) -> dict[str, Any]:
    return {"window": WINDOWS[window] if window >= 0 else None, "slot": slot, "version": version, "mirrored": False,
            "requests": requests, "errors": errors, "error_rate": round(errors / requests, 6),
            "latency_ms": {"p50": 80.1, "p95": p95, "p99": 410.2}, "ttft_ms": {"p50": 20.0, "p95": 45.0, "p99": 60.0},
            "prompt_tokens": 100 * requests, "completion_tokens": 28 * requests, "tokens_per_s": round(28 * requests / 3600, 3)}


def drift(window: int, feature: str, metric: str, value: float | None, threshold: float, n: int) -> dict[str, Any]:
    verdict = "insufficient_data" if n < 200 else "drift" if value is not None and value >= threshold else "no_drift"
    return {"window": WINDOWS[window], "feature": feature, "metric": metric, "value": value, "threshold": threshold,
            "verdict": verdict, "n_current": n, "n_reference": 4800, "band": None}


def quality(window: int | None, slot: str, version: int, n: int, value: float | None,
            low: float | None, high: float | None) -> dict[str, Any]:
    return {"window": None if window is None else WINDOWS[window], "slot": slot, "version": version,
            "metric": "accuracy", "n": n, "value": value, "low": low, "high": high}


def check(rule: str, value: float, threshold: float, crossed: bool, message: str) -> dict[str, Any]:
    return {"rule": rule, "value": value, "threshold": threshold, "crossed": crossed, "message": message}


def full_summary() -> dict[str, Any]:
    rows = [service(w, "blue", 3, 240, 2, p95) for w, p95 in enumerate(P95_BLUE) if p95 is not None]
    rows += [service(w, "green", 4, 60, 12, 410.0) for w in (3, 4, 5)]
    psi = [0.05, 0.08, None, 0.12, 0.31, 0.40]
    jsd = [0.02, 0.03, None, 0.09, 0.04, 0.05]
    results = [drift(w, "prompt_chars", "population_stability_index", v, 0.25, 0 if v is None else 300)
               for w, v in enumerate(psi)]
    results += [drift(w, "answer_label", "jensen_shannon_distance", v, 0.1, 50 if w == 3 else 0 if v is None else 300)
                for w, v in enumerate(jsd)]
    return {
        "name": "ticket-triage", "generated_at": "2024-05-01T06:00:05.000+00:00", "since": SINCE,
        "until": "2024-05-01T06:00:00.000+00:00", "window_s": 3600, "windows": WINDOWS, "service": rows,
        "totals": [service(-1, "blue", 3, 1200, 10, 220.0), service(-1, "green", 4, 180, 36, 410.0)],
        "drift": {"reference": {"version": 3, "examples": 4800, "sha256": "ab12cd34ef56" * 5},
                  "features": {"prompt_chars": "numeric", "answer_label": "categorical"}, "results": results},
        "quality": [quality(3, "green", 4, 30, 0.7, 0.52, 0.83), quality(4, "green", 4, 0, None, None, None),
                    quality(5, "green", 4, 50, 0.72, 0.58, 0.82), quality(None, "blue", 3, 120, 0.86, 0.79, 0.91),
                    quality(None, "green", 4, 80, 0.71, 0.60, 0.80), quality(None, "base", 1, 0, None, None, None)],
        "rollout": {"old": {"slot": "blue", "version": 3}, "new": {"slot": "green", "version": 4},
                    "traffic": {"blue": 90, "green": 10},
                    "signals": [{"signal": "error_rate", "old": 0.01, "new": 0.2, "n_old": 500, "n_new": 60,
                                 "difference": 0.19, "low": 0.1, "high": 0.3, "threshold": 0.05, "verdict": "worse"},
                                {"signal": "p95_latency_ms", "old": 220.0, "new": 410.0, "n_old": 500, "n_new": 60,
                                 "difference": 190.0, "low": None, "high": None, "threshold": 2.0, "verdict": "ok"},
                                {"signal": "accuracy", "old": 0.86, "new": 0.71, "n_old": 120, "n_new": 80,
                                 "difference": -0.15, "low": -0.26, "high": -0.04, "threshold": 0.05,
                                 "verdict": "insufficient_data"}]},
        "checks": [check("p95_latency_ms", 220.0, 1000.0, False, "p95 latency 220 ms in blue v3 (last window)"),
                   check("error_rate", 0.2, 0.05, True, "error rate 20.0% in green v4 (last window) is above 5%"),
                   check("p95_ttft_ms", 45.0, 500.0, False, "p95 ttft 45 ms in blue v3 (last window)"),
                   check("accuracy", 0.86, 0.8, False, "accuracy 0.860 on 120 labelled answers of blue v3"),
                   check("drift", 1.0, 0.0, True, "1 features drifted in the last window (prompt_chars) <b>")],
        "decisions": [{"at": "2024-05-01T05:30:00.000+00:00", "kind": "rollback", "fired": True,
                       "action": "green v4 to 0%", "reasons": [f"error_rate 0.2 in green v4 {SCRIPT}"]},
                      {"at": "2024-05-01T06:00:01.000+00:00", "kind": "retrain", "fired": False, "action": "none",
                       "reasons": ["drift: prompt_chars 0.40 > 0.25 in 2 consecutive windows", "cooldown: 3 days left"]}],
    }


def empty_summary() -> dict[str, Any]:
    return {"name": "quiet", "generated_at": SINCE, "since": SINCE, "until": "2024-05-01T03:00:00.000+00:00",
            "window_s": 3600, "windows": WINDOWS[:3], "service": [], "totals": [],
            "drift": {"reference": None, "features": {}, "results": []}, "quality": [], "rollout": None,
            "checks": [], "decisions": []}


def section(root: Node, name: str) -> Node:
    (found,) = root.find("section", id=name)
    return found


def chart(root: Node, key: str) -> Node:
    (found,) = root.find("svg", **{"data-chart": key})
    return found


def cells(row: Node) -> list[str]:
    return [c.text() for c in row.children if isinstance(c, Node) and c.tag in ("th", "td")]


@pytest.fixture(scope="module")
def html() -> str:
    return render_monitor_html(full_summary())


@pytest.fixture(scope="module")
def root(html: str) -> Node:
    return Tree(html).root


def test_sections_in_order_with_the_header_first(html: str, root: Node) -> None:
    ids = [s.attrs["id"] for s in root.find("section")]
    assert ids == ["checks", "charts", "rollout", "totals", "drift", "decisions"]
    header = root.find("header")[0].text()
    assert "Monitoring: ticket-triage" in header
    assert "2024-05-01 00:00 UTC → 2024-05-01 06:00 UTC" in header and "1 h (6 windows)" in header
    assert "2024-05-01 06:00 UTC" in header.split("generated at")[1]


def test_checks_come_first_with_the_crossed_ones_marked(root: Node) -> None:
    checks = section(root, "checks")
    (line,) = checks.find("p", class_="summary")
    assert line.text() == "2 of 5 thresholds crossed" and "bad" in line.attrs["class"].split()
    rows = checks.find("table", class_="checks")[0].find("tbody")[0].find("tr")
    assert [(r.attrs["data-rule"], r.attrs["class"]) for r in rows] == [
        ("error_rate", "crossed"), ("drift", "crossed"), ("p95_latency_ms", "within"), ("p95_ttft_ms", "within"),
        ("accuracy", "within")]
    assert cells(rows[0])[:4] == ["error_rate", "0.2", "0.05", "crossed"]
    assert cells(rows[1])[4].endswith("(prompt_chars) <b>")  # text, not markup
    assert check_line([]).startswith("no thresholds checked")
    assert check_line([check("error_rate", 0.0, 0.05, False, "")]) == "all within thresholds (1 checked)"


def test_numbers_of_the_totals_and_the_rollout(root: Node) -> None:
    totals = {r.attrs["data-who"]: cells(r) for r in section(root, "totals").find("table", class_="totals")[0].find("tr")
              if "data-who" in r.attrs}
    assert totals["blue v3"] == ["blue v3", "1,200", "10", "0.833%", "80.1", "220", "410.2", "45", "120,000",
                                 "33,600", "9.333"]
    assert totals["green v4"][3] == "20%" and totals["green v4"][5] == "410"
    rollout = section(root, "rollout")
    assert "old: blue v3 (90% of traffic) → new: green v4 (10% of traffic)" in rollout.text()
    signals = {r.attrs["data-signal"]: r for r in rollout.find("tr") if "data-signal" in r.attrs}
    assert cells(signals["error_rate"]) == ["error_rate", "0.01", "0.2", "500 / 60", "+0.19", "[0.1, 0.3]", "0.05",
                                            "worse"]
    assert signals["error_rate"].find("td")[-1].attrs["class"] == "bad"
    assert cells(signals["p95_latency_ms"])[5] == "–" and cells(signals["accuracy"])[-1] == "insufficient data"


def test_quality_none_and_reference_line(root: Node) -> None:
    rows = {r.attrs["data-who"]: cells(r) for r in section(root, "totals").find("table", class_="quality")[0].find("tr")
            if "data-who" in r.attrs}
    assert rows["green v4"] == ["green v4", "accuracy", "80", "0.71", "[0.6, 0.8]"]
    assert rows["base v1"] == ["base v1", "accuracy", "0", "–", "–"]  # no labels: no value, not a zero
    drift_section = section(root, "drift")
    assert drift_section.find("p", id="reference")[0].text() == (
        "drift measured against the training data of v3, 4,800 examples, sha256 ab12cd34ef56…")
    last = {r.attrs["data-feature"]: cells(r) for r in drift_section.find("tr") if "data-feature" in r.attrs}
    assert last["prompt_chars"] == ["prompt_chars", "numeric", "population_stability_index", "0.4", "0.25", "drift",
                                    "300 / 4,800"]
    assert last["answer_label"][5] == "no drift"


def test_decisions_and_escaping(html: str, root: Node) -> None:
    rows = section(root, "decisions").find("tbody")[0].find("tr")
    assert [cells(r)[1:4] for r in rows] == [["rollback", "fired", "green v4 to 0%"], ["retrain", "not fired", "none"]]
    assert [li.text() for li in rows[1].find("li")][1] == "cooldown: 3 days left"
    assert rows[0].find("li")[0].text() == f"error_rate 0.2 in green v4 {SCRIPT}"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script" not in html
    assert "(prompt_chars) &lt;b&gt;" in html
    for ref in ("src=", "href=", "url(", "@import", "<link", "<img", "<iframe", "http:", "https:"):
        assert ref not in html, ref


def test_service_charts_leave_the_window_without_traffic_as_a_hole(root: Node) -> None:
    latency = chart(root, "latency")
    assert "hours since 2024-05-01 00:00 UTC" in latency.text()
    lines = [p.attrs["data-series"] for p in latency.find("polyline")]
    assert lines.count("blue v3 p95") == 2 and lines.count("blue v3 p50") == 2  # windows 0-1, 3-5
    assert lines.count("green v4 p95") == 1
    blue = [c for c in latency.find("circle") if c.attrs["data-series"] == "blue v3 p95"]
    assert [c.find("title")[0].text().split(" at ")[1] for c in blue] == [
        "0: 200 (n=240)", "1: 205.5 (n=240)", "3: 210 (n=240)", "4: 215 (n=240)", "5: 220 (n=240)"]
    for key in ("latency", "error_rate", "tokens_per_s"):
        (empty,) = chart(root, key).find("rect", class_="empty")  # window 2, shaded
        assert empty.find("title")[0].text() == "no requests in this window"
    (limit,) = chart(root, "error_rate").find("line", class_="threshold")
    assert limit.attrs["data-value"] == "0.05" and limit.attrs["stroke-dasharray"]


def test_drift_charts_draw_the_threshold_and_hollow_unjudged_windows(root: Node) -> None:
    psi = chart(root, "drift:population_stability_index")
    (limit,) = psi.find("line", class_="threshold")
    assert limit.attrs["data-value"] == "0.25" and "threshold 0.25" in psi.text()
    assert len(psi.find("circle")) == 5 and len(psi.find("polyline")) == 2  # window 2: no value, a hole
    titles = [c.find("title")[0].text() for c in psi.find("circle")]
    assert titles[-2:] == ["prompt_chars at 4: 0.31 · drift (n=300)", "prompt_chars at 5: 0.4 · drift (n=300)"]
    y_limit = float(limit.attrs["y1"])
    assert all(float(c.attrs["cy"]) < y_limit for c in psi.find("circle")[-2:])  # above the line
    jsd = chart(root, "drift:jensen_shannon_distance")
    (hollow,) = jsd.find("circle", class_="hollow")
    assert hollow.attrs["fill"] == "#fff" and "insufficient_data (n=50)" in hollow.find("title")[0].text()
    assert len(jsd.find("polyline")) == 2  # cut at the unjudged window too


def test_quality_chart_has_whiskers_and_no_point_without_labels(root: Node) -> None:
    q = chart(root, "quality")
    assert len(q.find("circle")) == 2 and len(q.find("line", class_="whisker")) == 2
    assert [c.find("title")[0].text() for c in q.find("circle")] == [
        "green v4 at 3: 0.7 [0.52, 0.83] (n=30)", "green v4 at 5: 0.72 [0.58, 0.82] (n=50)"]


def test_minutes_on_the_axis_for_short_windows() -> None:
    summary = full_summary()
    summary["window_s"] = 900
    summary["windows"] = [f"2024-05-01T00:{m:02d}:00.000+00:00" for m in (0, 15, 30, 45, 0)][:4]
    summary["until"] = "2024-05-01T01:00:00.000+00:00"
    for rows in (summary["service"], summary["quality"], summary["drift"]["results"]):
        for row in rows:
            if row["window"]:
                row["window"] = summary["windows"][min(WINDOWS.index(row["window"]), 3)]
    root = Tree(render_monitor_html(summary)).root
    latency = chart(root, "latency")
    assert "minutes since 2024-05-01 00:00 UTC" in latency.text()
    assert "15 min (4 windows)" in root.find("header")[0].text()
    assert any(c.find("title")[0].text() == "blue v3 p95 at 45: 220 (n=240)" for c in latency.find("circle"))


def test_a_period_without_traffic_says_so() -> None:
    html = render_monitor_html(empty_summary())
    root = Tree(html).root
    assert "No requests in this period" in section(root, "no-traffic").text()
    assert root.find("svg") == [] and "Nothing to plot in this period." in html
    assert section(root, "checks").find("p")[0].text().startswith("no thresholds checked")
    assert section(root, "drift").find("p", id="reference")[0].text().startswith("no reference")
    assert "No rollout in progress." in html and "No retraining or rollback decision recorded." in html
    for bare in ({}, {"name": None, "windows": None, "drift": None, "service": None}):
        page = render_monitor_html(bare)
        assert page.startswith("<!DOCTYPE html>") and "No requests in this period" in page


def test_write_is_atomic_and_a_bad_path_is_a_user_error(tmp_path: Path) -> None:
    out = write_monitor_html(full_summary(), tmp_path / "reports" / "monitor.html")
    assert out == tmp_path / "reports" / "monitor.html"
    assert out.read_text(encoding="utf-8") == render_monitor_html(full_summary())
    assert [p.name for p in out.parent.iterdir()] == ["monitor.html"]  # no temporary file left
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="cannot write the report to .*file/monitor.html"):
        write_monitor_html(full_summary(), tmp_path / "file" / "monitor.html")
    with pytest.raises(UserError, match="--report"):
        write_monitor_html(full_summary(), tmp_path / "reports")  # a folder


class _Strict(HTMLParser):
    """Every start tag closed in order (void elements aside): the page is well formed as written."""

    VOID = {"meta", "br", "img", "link", "input", "hr", "col", "area", "base", "source", "wbr"}

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, (tag, self.open[-5:])
        self.open.pop()


@pytest.mark.parametrize("make", [full_summary, empty_summary])
def test_the_page_is_well_formed(make: Any) -> None:
    parser = _Strict()
    parser.feed(render_monitor_html(make()))
    assert parser.open == []


@pytest.fixture(scope="module")
def browsed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Node, str, list[str]]]:
    folder = tmp_path_factory.mktemp("monitor")
    out = {}
    for label, summary in (("full", full_summary()), ("empty", empty_summary())):
        page = write_monitor_html(summary, folder / f"{label}.html")
        dom, seen = browse(page, folder / f"profile-{label}", f"monitor-{label}", "--dump-dom")
        out[label] = (Tree(dom).root, dom, seen)
    return out


def test_chromium_renders_the_charts_and_makes_no_request(browsed: dict[str, tuple[Node, str, list[str]]]) -> None:
    root, dom, seen = browsed["full"]
    assert seen == []
    assert "2 of 5 thresholds crossed" in dom  # the browser did render the page
    keys = [svg.attrs.get("data-chart") for svg in root.find("svg")]
    assert keys == ["latency", "error_rate", "tokens_per_s", "drift:population_stability_index",
                    "drift:jensen_shannon_distance", "quality", None]  # the last: quality per version, bars
    (table,) = root.find("table", class_="checks")
    assert len(table.find("tbody")[0].find("tr")) == 5
    assert root.find("script") == [] and "<script" not in dom
    assert SCRIPT in section(root, "decisions").text()


def test_chromium_renders_the_page_without_traffic(browsed: dict[str, tuple[Node, str, list[str]]]) -> None:
    root, dom, seen = browsed["empty"]
    assert seen == [] and "No requests in this period" in dom and root.find("svg") == []


def test_series_colours_stay_distinct() -> None:
    from ftp.monitor.report_charts import palette

    colours = palette(["blue v3", "green v4", "blue v5", "green v6 (mirror)", "base"])
    assert colours["blue v3"] == "#1f6fb4" and colours["green v4"] == "#2a9d4a"  # the slots' own
    assert len(set(colours.values())) == 5  # a redeploy into a slot is not drawn in that slot's colour
    features = palette(["prompt_chars", "prompt_words", "prompt_nonletter", "prompt_nonascii", "answer_chars"])
    assert len(set(features.values())) == 5


def test_a_week_of_hourly_windows_renders_quickly() -> None:
    import time

    hours = [f"2024-05-{1 + h // 24:02d}T{h % 24:02d}:00:00.000+00:00" for h in range(168)]
    summary = full_summary()
    summary.update(windows=hours, until="2024-05-08T00:00:00.000+00:00")
    summary["service"] = [{**service(0, slot, v, 240, 2, 200.0 + h), "window": w}
                          for h, w in enumerate(hours) for slot, v in (("blue", 3), ("green", 4))]
    summary["drift"]["results"] = [{**drift(0, f, "population_stability_index", 0.01 * (h % 30), 0.25, 300), "window": w}
                                   for h, w in enumerate(hours) for f in ("prompt_chars", "prompt_words", "answer_chars")]
    start = time.perf_counter()
    html = render_monitor_html(summary)
    took = time.perf_counter() - start
    assert took < 1.0, took  # about 0.01 s here (387 KB)
    assert len(html) < 1_500_000 and html.count("<circle") == (2 * 2 + 2 + 2 + 3) * 168 + 2  # + the two quality points
