"""The self-contained ``eval.html``: everything ``eval.json`` and ``eval/examples.jsonl`` say, for a person.

One file a reviewer can open anywhere, mail or archive: inline CSS and SVG, no script, font, image or
link, and a Content-Security-Policy that forbids fetching anything, so opening it makes no network
request. Answers are model output and may hold markup (``<script>``): every string from the data is
escaped, never trusted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from html import escape
from pathlib import Path
from typing import Any

from ftp.errors import UserError
from ftp.eval.html_charts import bar_chart, colour, diff_words, fmt, heat_table, line_chart
from ftp.run.store import atomic_write

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; base-uri 'none'; form-action 'none'"
CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1b1b1b;margin:0;background:#fafafa}
main{max-width:1240px;margin:0 auto;padding:18px 24px 40px}
h1{font-size:22px;margin:4px 0 10px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:14px 0 6px}
table{border-collapse:collapse;margin:6px 0 12px;background:#fff}
th,td{border:1px solid #d7d7d7;padding:4px 8px;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:0}
dl.facts dt{font-weight:600}dl.facts dd{margin:0;overflow-wrap:anywhere}
.good{background:#dff3e0}.bad{background:#fbe0df}.tag{font-size:12px;color:#555}
.good .tag{color:#16632a}.bad .tag{color:#9b1c1c}
ul.warn li,p.warn{color:#8a4b00}p.ok{color:#16632a}
.chart{background:#fff;border:1px solid #ddd;max-width:100%;height:auto}
.chart text{font-size:12px;fill:#333}.chart .grid{stroke:#eee}.chart .axis{stroke:#888}
table.confusion td{text-align:center;min-width:44px;font-variant-numeric:tabular-nums}
.cms{display:flex;flex-wrap:wrap;gap:24px}
article.example{background:#fff;border:1px solid #ddd;margin:10px 0;padding:8px 10px}
.cols{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:8px}
.cols section{min-width:0}.cols h4{margin:2px 0;font-size:13px}
pre{white-space:pre-wrap;overflow-wrap:anywhere;margin:0;background:#f4f4f4;padding:6px;max-height:320px;
overflow:auto;font:12.5px/1.4 ui-monospace,Menlo,Consolas,monospace}
ins{background:#fbd3cf;text-decoration:none}del{color:#777}
table.scores{font-size:12px;margin:4px 0 0}footer{margin-top:30px;color:#555;font-size:12px}
"""


def esc(value: Any) -> str:
    return escape(str(value), quote=True)


def render_html(report: dict[str, Any], examples: list[dict[str, Any]], curves: dict[str, Any] | None = None,
                overfitting: str | None = None, worst: int = 20) -> str:
    """The page for one report: ``examples`` are the rows of ``eval/examples.jsonl``, ``curves`` the run's
    ``loss_curve.json``. ``report["run"]`` (added by ``write_html`` in a run) names the run and model."""
    candidates = [str(c) for c in report.get("candidates") or report.get("metrics", {})]
    body = "".join([
        _header(report, candidates), _headline(report, candidates), _confusion(report, candidates),
        _fields(report, candidates), _curves(curves, overfitting or report.get("overfitting")),
        _judges(report), _worst(report, examples, candidates, worst), _footer(report)])
    run = report.get("run") or {}
    title = "Evaluation" + (f" · {run['pipeline']}" if run.get("pipeline") else "")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>{body}</main></body></html>\n")


def _facts(items: Iterable[tuple[str, Any]]) -> str:
    rows = "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in items if v not in (None, ""))
    return f'<dl class="facts">{rows}</dl>'


def _pairs(mapping: dict[str, Any]) -> str:
    return ", ".join(f"{esc(k)}={esc(v)}" for k, v in mapping.items())


def _header(report: dict[str, Any], candidates: list[str]) -> str:
    run, data = report.get("run") or {}, report.get("data") or {}
    chosen, answer = report.get("metrics_chosen") or {}, report.get("answer_format") or {}
    model = " · ".join(esc(v) for v in (run.get("base_model"), run.get("registered")) if v)
    run_name = " / ".join(esc(v) for v in (run.get("pipeline"), run.get("run_id")) if v)
    sha = str(data.get("sha256") or "")
    facts = _facts([
        ("run", run_name), ("model", model), ("test examples (n)", esc(report.get("n", "?"))),
        ("test data", " ".join(filter(None, [esc(data.get("path", "")), f'<code title="{esc(sha)}">sha256 '
                                             f"{esc(sha[:16])}…</code>" if sha else ""]))),
        ("candidates", esc(", ".join(candidates))),
        ("decoding", _pairs(report.get("decoding") or {})),
        ("answer format", esc(" — ".join(str(x) for x in (answer.get("kind"), answer.get("reason")) if x))),
        ("metrics", esc(", ".join(chosen.get("names") or [])) + (
            f' <span class="tag">({"chosen automatically" if chosen.get("auto") else "from the pipeline file"}'
            f'{": " + esc(chosen["reason"]) if chosen.get("reason") else ""})</span>' if chosen else "")),
        ("timing", ", ".join(f"{esc(c)}: {fmt(t.get('seconds'))} s for {esc(t.get('answers', '?'))} answers"
                             for c, t in (report.get("timing") or {}).items() if isinstance(t, dict))),
    ])
    out = [f"<header><h1>Evaluation report{': ' + run_name if run_name else ''}</h1>{facts}"]
    if report.get("warnings"):
        out.append('<h3>Warnings</h3><ul class="warn">' +
                   "".join(f"<li>{esc(w)}</li>" for w in report["warnings"]) + "</ul>")
    if report.get("not_evaluated"):
        out.append('<h3>Not evaluated</h3><ul class="warn">' + "".join(
            f"<li><b>{esc(c)}</b>: {esc(why)}</li>" for c, why in report["not_evaluated"].items()) + "</ul>")
    return "".join(out) + "</header>"


def _verdict(c: dict[str, Any], higher: bool) -> tuple[str, str]:
    """'good' / 'bad' when the interval excludes 0 (in the metric's better / worse direction)."""
    low, high = c.get("low"), c.get("high")
    if low is None or high is None:
        return "", ""
    if low > 0 or high < 0:
        better = (low > 0) == higher
        return ("good", "better") if better else ("bad", "worse")
    return "", "no clear difference"


def _comparison_cells(c: dict[str, Any] | None, higher: bool) -> str:
    if c is None:
        return '<td class="num">–</td><td>–</td><td class="num">–</td>'
    css, word = _verdict(c, higher)
    conf = c.get("confidence") or 0.95
    delta = (f'{fmt(c.get("difference"), True)} [{fmt(c.get("low"), True)}, {fmt(c.get("high"), True)}] '
             f'<span class="tag">{conf:.0%} · {esc(word)}</span>')
    p = c.get("p_value")
    test = esc(c.get("test") or c.get("method") or "")
    pcell = f"p={p:.3g} <span class=\"tag\">{test}</span>" if p is not None else f'<span class="tag">{test}</span>'
    wtl = "–" if c.get("wins") is None else f'{c["wins"]} / {c.get("ties", 0)} / {c.get("losses", 0)}'
    return f'<td class="num {css}">{delta}</td><td>{pcell}</td><td class="num">{esc(wtl)}</td>'


def _headline(report: dict[str, Any], candidates: list[str]) -> str:
    metrics: dict[str, dict[str, Any]] = report.get("metrics") or {}
    comparisons = [c for c in report.get("comparisons") or [] if isinstance(c, dict)]
    chosen = list((report.get("metrics_chosen") or {}).get("names") or [])
    seen = [m for c in candidates for m in metrics.get(c, {})] + [c["metric"] for c in comparisons]
    names = list(dict.fromkeys([m for m in chosen if m in seen] + seen))
    pairs = list(dict.fromkeys((c["candidate"], c["baseline"]) for c in sorted(
        comparisons, key=lambda c: (c["candidate"] != "fine-tuned", str(c["baseline"])))))
    counts = {(d.get("name"), d.get("candidate")): d.get("n") for d in report.get("details") or []}
    hib: dict[str, bool] = report.get("higher_is_better") or {}
    head = "".join(f"<th>{esc(c)}</th>" for c in candidates) + "".join(
        f"<th>{esc(a)} − {esc(b)}</th><th>p-value (test)</th><th>win / tie / loss</th>" for a, b in pairs)
    rows = []
    for name in names:
        higher = hib.get(name, True)
        cells = "".join(
            f'<td class="num">{fmt(metrics.get(c, {}).get(name))} '
            f'<span class="tag">n={esc(counts.get((name, c)) or report.get("n", "?"))}</span></td>'
            if name in metrics.get(c, {}) else '<td class="num">–</td>' for c in candidates)
        for a, b in pairs:
            match = next((c for c in comparisons if (c["metric"], c["candidate"], c["baseline"]) == (name, a, b)), None)
            cells += _comparison_cells(match, higher)
        arrow = "↑" if higher else "↓"
        better = "higher" if higher else "lower"
        rows.append(f'<tr data-metric="{esc(name)}"><th scope="row">{esc(name)} '
                    f'<span class="tag" title="{better} is better">{arrow}</span></th>{cells}</tr>')
    return (f'<section id="headline"><h2>Headline metrics</h2><table class="headline"><thead><tr><th>metric</th>'
            f'{head}</tr></thead><tbody>{"".join(rows)}</tbody></table><p class="tag">Differences are paired, '
            "on the same test examples, with their interval; green: the interval excludes 0 on the better side, "
            "red: on the worse side.</p></section>")


def _by_candidate(report: dict[str, Any], key: str, candidates: list[str]) -> list[tuple[str, str, Any]]:
    """(candidate, metric, details[key]) for the first metric of each candidate that carries ``key``,
    fine-tuned first, then in evaluation order."""
    found: dict[str, tuple[str, Any]] = {}
    for d in report.get("details") or []:
        value = (d.get("details") or {}).get(key)
        if isinstance(value, dict) and d.get("candidate") not in found:
            found[str(d.get("candidate"))] = (str(d.get("name")), value)
    order = sorted(found, key=lambda c: (c != "fine-tuned", candidates.index(c) if c in candidates else 99))
    return [(c, *found[c]) for c in order]


def _confusion(report: dict[str, Any], candidates: list[str]) -> str:
    tables = [heat_table(cm.get("labels") or [], cm.get("matrix") or [], f"{c} ({name})")
              for c, name, cm in _by_candidate(report, "confusion_matrix", candidates)]
    if not tables:
        return ""
    return ('<section id="confusion"><h2>Confusion matrix</h2><p class="tag">Rows: the reference label; columns: '
            "the answer mapped to a label (__invalid__: no label found in it).</p>"
            f'<div class="cms">{"".join(tables)}</div></section>')


def _field_value(stats: Any) -> float | None:
    if isinstance(stats, (int, float)):
        return float(stats)
    if isinstance(stats, dict):
        value = stats.get("accuracy", next((v for v in stats.values() if isinstance(v, (int, float))), None))
        return float(value) if isinstance(value, (int, float)) else None
    return None


def _fields(report: dict[str, Any], candidates: list[str]) -> str:
    found = _by_candidate(report, "fields", candidates)
    if not found:
        return ""
    paths = list(dict.fromkeys(p for _, _, fields in found for p in fields))
    series = [(c, [_field_value(fields.get(p)) for p in paths], colour(c, i)) for i, (c, _, fields) in enumerate(found)]
    top = max([1.0] + [v for _, values, _ in series for v in values if v is not None])
    chart = bar_chart(paths, series, "accuracy per field", maximum=top)
    return (f'<section id="fields"><h2>Per-field accuracy</h2><p class="tag">From {esc(found[0][1])}; '
            f"a field counts wrong when the answer does not parse.</p>{chart}</section>")


def _points(raw: Any) -> list[tuple[float, float]]:
    out = []
    for p in raw or []:
        step, loss = (p.get("step"), p.get("loss")) if isinstance(p, dict) else (p[0], p[1])
        if isinstance(step, (int, float)) and isinstance(loss, (int, float)):
            out.append((float(step), float(loss)))
    return out


def _curves(curves: dict[str, Any] | None, overfitting: str | None) -> str:
    if not curves and not overfitting:
        return ""
    series = [(label, pts, col) for key, label, col in (("train_loss", "training", "#1f6fb4"),
                                                        ("eval_loss", "validation", "#c0392b"))
              if (pts := _points((curves or {}).get(key)))]
    chart = line_chart(series, "optimiser step", "loss", "training and validation loss") if series else \
        '<p class="tag">No loss curves (not a training run).</p>'
    verdict = ""
    if overfitting:
        css = "warn" if str(overfitting).startswith("overfitting") else "ok"
        verdict = f'<p class="{css}" id="overfitting"><b>Overfitting verdict:</b> {esc(overfitting)}</p>'
    return f'<section id="curves"><h2>Loss curves</h2>{chart}{verdict}</section>'


def _kv(data: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Nested details flattened to dotted keys, long lists shortened, for a plain two-column table."""
    rows: list[tuple[str, str]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if key == "per_example" and isinstance(value, list):
            rows.append((name, f"{len(value)} verdicts (in eval.json)"))
        elif isinstance(value, dict) and prefix.count(".") < 2:
            rows.extend(_kv(value, name + "."))
        elif isinstance(value, float):
            rows.append((name, fmt(value)))
        else:
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            rows.append((name, text if len(text) <= 300 else text[:300] + "…"))
    return rows


def _kv_table(data: dict[str, Any]) -> str:
    return "<table>" + "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in _kv(data)) + "</table>"


def _is_judge(c: dict[str, Any]) -> bool:
    text = " ".join(str(c.get(k) or "") for k in ("metric", "method", "test", "plugin"))
    return "judge" in text.lower() or any("judge" in str(k).lower() for k in c.get("details") or {})


def _judges(report: dict[str, Any]) -> str:
    judged = [c for c in report.get("comparisons") or [] if isinstance(c, dict) and _is_judge(c)]
    scored = [d for d in report.get("details") or [] if "judge" in (d.get("details") or {})]  # pointwise
    review = report.get("human_review")
    if not judged and not scored and not review:
        return ""
    out = ['<section id="judging"><h2>Judge and human review</h2>']
    for d in scored:
        out.append(f'<h3>{esc(d.get("name"))}: {esc(d.get("candidate"))}</h3><p>{fmt(d.get("value"))}, '
                   f'n={esc(d.get("n"))}</p>{_kv_table(d.get("details") or {})}')
    for c in judged:
        out.append(f'<h3>{esc(c.get("metric"))}: {esc(c.get("candidate"))} vs {esc(c.get("baseline"))}</h3>'
                   f'<p>{fmt(c.get("difference"), True)} [{fmt(c.get("low"), True)}, {fmt(c.get("high"), True)}] '
                   f'at {(c.get("confidence") or 0.95):.0%}, n={esc(c.get("n"))}, {esc(c.get("method"))}</p>'
                   f'{_kv_table(c.get("details") or {})}')
    if isinstance(review, dict):
        out.append(f"<h3>Human review</h3>{_kv_table(review)}")
    return "".join(out) + "</section>"


def primary_metric(report: dict[str, Any], examples: list[dict[str, Any]]) -> str | None:
    """The first chosen metric with per-example scores in the rows, else exact_match when scored."""
    scored = {name for row in examples for name in (row.get("scores") or {})}
    names = list((report.get("metrics_chosen") or {}).get("names") or [])
    return next((n for n in names if n in scored), "exact_match" if "exact_match" in scored else None)


def worst_examples(report: dict[str, Any], examples: list[dict[str, Any]], worst: int = 20
                   ) -> tuple[str | None, list[dict[str, dict[str, Any]]]]:
    """The primary metric and the ``worst`` examples (each: candidate -> its row) with the fine-tuned
    model's poorest scores on it (lowest, or highest where lower is better); among equal scores, those a
    baseline did better on first, then test order."""
    groups: dict[Any, dict[str, dict[str, Any]]] = {}
    for row in examples:
        groups.setdefault(row.get("id"), {})[str(row.get("candidate"))] = row
    if not groups:  # no examples.jsonl: the answers eval.json holds, unscored
        for ex in report.get("examples") or []:
            groups[ex.get("index")] = {c: {"id": ex.get("index"), "prompt": ex.get("prompt"), "answer": ex.get(c),
                                           "reference": ex.get("reference"), "scores": {}}
                                       for c in report.get("candidates") or [] if c in ex}
    groups = {k: rows for k, rows in groups.items() if rows}  # no candidate answered: nothing to show
    primary = primary_metric(report, examples)
    higher = (report.get("higher_is_better") or {}).get(primary, True)

    def score(rows: dict[str, dict[str, Any]], candidate: str) -> float | None:
        value = (rows.get(candidate, {}).get("scores") or {}).get(primary) if primary else None
        return (value if higher else -value) if isinstance(value, (int, float)) else None

    def key(item: tuple[Any, dict[str, dict[str, Any]]]) -> tuple[int, float, float, str]:
        ours, order = score(item[1], "fine-tuned"), str(item[0]).zfill(12)
        if ours is None:
            return (1, 0.0, 0.0, order)
        best_other = max((s for c in item[1] if c != "fine-tuned" and (s := score(item[1], c)) is not None),
                         default=ours)
        return (0, ours, ours - best_other, order)  # ties: where a baseline did better first

    return primary, [rows for _, rows in sorted(groups.items(), key=key)[:worst]]


def _prompt(prompt: Any) -> str:
    if isinstance(prompt, list):
        return "\n\n".join(f"[{m.get('role', '?')}] {m.get('content', '')}" if isinstance(m, dict) else str(m)
                           for m in prompt)
    return "" if prompt is None else str(prompt)


def _example(rows: dict[str, dict[str, Any]], candidates: list[str], primary: str | None) -> str:
    first = rows.get("fine-tuned") or next(iter(rows.values()))
    reference = str(first.get("reference") or "")
    score = (first.get("scores") or {}).get(primary) if primary else None
    cols = [f"<section><h4>prompt</h4><pre>{esc(_prompt(first.get('prompt')))}</pre></section>",
            f'<section><h4>reference</h4><pre class="reference">{esc(reference)}</pre></section>']
    for c in [c for c in candidates if c in rows] + [c for c in rows if c not in candidates]:
        scores = rows[c].get("scores") or {}
        table = "".join(f'<tr><td>{esc(k)}</td><td class="num">{fmt(v) if isinstance(v, (int, float)) else esc(v)}'
                        f"</td></tr>" for k, v in scores.items())
        cols.append(f'<section data-candidate="{esc(c)}"><h4>{esc(c)}</h4><pre class="answer">'
                    f'{diff_words(reference, str(rows[c].get("answer") or ""))}</pre>'
                    f'{f"<table class=scores>{table}</table>" if table else ""}</section>')
    label = f' · {esc(primary)} (fine-tuned) = {fmt(score)}' if primary and isinstance(score, (int, float)) else ""
    ident = first.get("example_id", first.get("id"))
    return (f'<article class="example"><b>#{esc(first.get("id"))} ({esc(ident)}){label}</b>'
            f'<div class="cols">{"".join(cols)}</div></article>')


def _worst(report: dict[str, Any], examples: list[dict[str, Any]], candidates: list[str], worst: int) -> str:
    primary, chosen = worst_examples(report, examples, worst)
    if not chosen:
        return ""
    why = (f"the {len(chosen)} with the fine-tuned model's poorest {esc(primary)}" if primary
           else f"the first {len(chosen)} (no per-example scores)")
    return (f'<section id="worst"><h2>Worst examples</h2><p class="tag">{why}. In answers, '
            "<ins>marked</ins> text is not in the reference and <del>struck</del> text is reference text the answer "
            f'lacks.</p>{"".join(_example(rows, candidates, primary) for rows in chosen)}</section>')


def _footer(report: dict[str, Any]) -> str:
    settings = {k: report.get(k) for k in ("seed", "resamples", "confidence") if report.get(k) is not None}
    facts = _facts([("library versions", _pairs(report.get("versions") or {})), ("statistics", _pairs(settings))])
    return f'<footer><h2>Reproducibility</h2>{facts}<p>Written by ftp from eval.json and eval/examples.jsonl.</p></footer>'


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def run_info(run_dir: Path) -> dict[str, str]:
    """The run's pipeline, id, base model and registered version, for the page's title, when recorded."""
    info: dict[str, str] = {}
    state = _read_json(run_dir / "state.json") or {}
    info.update({k: str(state[s]) for k, s in (("pipeline", "pipeline_name"), ("run_id", "run_id")) if state.get(s)})
    registered = ((state.get("steps") or {}).get("register") or {}).get("outputs") or {}
    if registered.get("name"):
        info["registered"] = f"registered {registered['name']} v{registered.get('version', '?')}"
    resolved = run_dir / "pipeline.resolved.yaml"
    if resolved.is_file():
        import yaml

        base = ((yaml.safe_load(resolved.read_text(encoding="utf-8")) or {}).get("model") or {}).get("base")
        if base:
            info["base_model"] = str(base)
    return info


def write_html(report_dir: Path, run_dir: Path | None = None) -> Path:
    """REPORT/eval.html (atomic) from REPORT/eval.json, eval/examples.jsonl and, in a run, RUN/loss_curve.json."""
    report = _read_json(report_dir / "eval.json")
    if not isinstance(report, dict):
        raise UserError(f"{report_dir / 'eval.json'} is missing or not a JSON object: run the evaluation first")
    rows_file = report_dir / "eval" / "examples.jsonl"
    rows = [json.loads(line) for line in rows_file.read_text(encoding="utf-8").splitlines() if line.strip()] \
        if rows_file.is_file() else []
    return html_for(report_dir, report, rows, run_dir)


def html_for(report_dir: Path, report: dict[str, Any], rows: list[dict[str, Any]], run_dir: Path | None = None) -> Path:
    """REPORT/eval.html from a report in memory: an evaluation that just ran need not read its files back."""
    curves = None
    if run_dir is not None:
        curves = _read_json(run_dir / "loss_curve.json")
        report = {**report, "run": {**run_info(run_dir), **(report.get("run") or {})}}
    out = report_dir / "eval.html"
    atomic_write(out, render_html(report, rows, curves, report.get("overfitting")))
    return out
