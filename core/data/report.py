"""The data report: a terminal summary, JSON, and one self-contained HTML page with plots."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

from ftp.data.check import DataReport

BILLED_TOKENS_PER_EXAMPLE = 16_385  # OpenAI's cookbook caps what one example is billed for


def training_estimate(report: DataReport, epochs: float, price_per_1m: float | None) -> dict[str, Any]:
    """Training tokens x epochs and, given a price, the cost (the user's price to check)."""
    length = report.summaries.get("length", {})
    train = (length.get("splits") or {}).get("train") or {}
    tokens = int(train.get("total_tokens", 0))
    billed = min(tokens, BILLED_TOKENS_PER_EXAMPLE * int(train.get("examples", 0)))
    out: dict[str, Any] = {"train_tokens": tokens, "epochs": epochs, "training_tokens": int(billed * epochs),
                           "estimated": not length.get("exact", False)}
    if price_per_1m is not None:
        out["price_per_1m_tokens"] = price_per_1m
        out["cost_usd"] = round(billed * epochs / 1e6 * price_per_1m, 2)
        out["note"] = "prices are configurable and yours to check: providers change them"
    return out


def _rows(report: DataReport) -> list[tuple[str, str]]:
    """Headline facts, in the order a reader wants them."""
    s = report.summaries
    rows = [(f"{ref.split or 'data'} file", f"{ref.path} ({ref.examples:,} lines, sha256 {ref.sha256[:12]})")
            for ref in report.data.files()]
    fmt = s.get("format", {})
    if fmt:
        rows.append(("valid examples", f"{fmt.get('valid_examples', 0):,}"))
        rows.append(("roles", ", ".join(f"{k} {v:,}" for k, v in fmt.get("roles", {}).items())))
        rows.append(("assistant turns per example", ", ".join(f"{k}: {v:,}" for k, v in
                                                               fmt.get("assistant_turns", {}).items())))
    length = s.get("length", {})
    for split, st in (length.get("splits") or {}).items():
        rows.append((f"tokens ({split})", f"min {st['min']:,}, median {st['median']:,.0f}, p95 {st['p95']:,}, "
                     f"max {st['max']:,}, total {st['total_tokens']:,}"))
    if length:
        name = str(length.get("tokenizer"))
        exact = length.get("exact") or name.startswith("estimate")
        rows.append(("tokenizer", name + ("" if exact else " (template tokens estimated)")))
        if length.get("limit"):
            rows.append(("over the limit", f"{length.get('over_limit', 0):,} of limit {length['limit']:,} tokens"))
    dup = s.get("duplicates", {})
    if dup:
        share = dup.get("duplicate_share", dup.get("share"))
        rows.append(("duplicate share", f"{share:.1%}" if isinstance(share, (int, float)) else str(share)))
    pii = s.get("pii", {})
    if pii:
        counts = pii.get("counts", pii)
        rows.append(("PII", ", ".join(f"{k} {v}" for k, v in counts.items() if isinstance(v, int)) or "none"))
    out_fmt = s.get("output_format", {})
    if out_fmt:
        share = out_fmt.get("share")
        rows.append(("answer format", f"{out_fmt.get('format') or 'none inferred'}"
                     + (f" ({share:.0%} of answers)" if isinstance(share, (int, float)) else "")))
        if "outliers" in out_fmt:
            rows.append(("format outliers", f"{out_fmt['outliers']:,}"))
    prov = s.get("provenance", {})
    if prov:
        rows.append(("provenance", str(prov.get("provenance") or "not declared")))
    return rows


def render_terminal(report: DataReport, estimate: dict[str, Any], console: Any, limit: int = 30) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(show_header=False, box=None, padding=(0, 2))
    for key, value in _rows(report):
        table.add_row(f"[bold]{escape(key)}[/]", escape(value))
    _estimate_rows(table, estimate)
    console.print(table)
    hist = ((report.summaries.get("length", {}).get("splits") or {}).get("train") or {}).get("histogram")
    if hist:
        console.print("\n[bold]tokens per training example[/]")
        top = max(hist["counts"]) or 1
        for lo, n in zip(hist["edges"], hist["counts"]):
            console.print(f"  {lo:>8,.0f}  {'█' * round(30 * n / top):<30} {n:,}")
    findings = report.sorted_findings()
    counts = report.counts()
    console.print(f"\n[bold]findings[/]: {counts['error']} error(s), {counts['warning']} warning(s), "
                  f"{counts['info']} info")
    colours = {"error": "red", "warning": "yellow", "info": "dim"}
    for f in findings[:limit]:
        console.print(f"  [{colours[f.severity]}]{escape(f.format())}[/]", soft_wrap=True)
    if len(findings) > limit:
        console.print(f"  ... {len(findings) - limit} more (--json or --report for all)")


def _estimate_rows(table: Any, estimate: dict[str, Any]) -> None:
    label = " (estimate)" if estimate.get("estimated") else ""
    table.add_row("[bold]training tokens[/]", f"{estimate['train_tokens']:,} x {estimate['epochs']:g} epochs = "
                  f"{estimate['training_tokens']:,}{label}")
    if "cost_usd" in estimate:
        table.add_row("[bold]estimated cost[/]", f"${estimate['cost_usd']:,.2f} at ${estimate['price_per_1m_tokens']:g} "
                      f"per 1M tokens ({estimate['note']})")


def _histogram_png(report: DataReport) -> str | None:
    splits = (report.summaries.get("length", {}).get("splits") or {})
    if not splits:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3), dpi=100)
    for split, st in splits.items():
        edges, counts = st["histogram"]["edges"], st["histogram"]["counts"]
        ax.stairs(counts, edges, label=split, fill=split == "train", alpha=0.6)
    ax.set_xlabel("tokens per example")
    ax.set_ylabel("examples")
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def render_html(report: DataReport, estimate: dict[str, Any]) -> str:
    """One page, no external resources: it can be mailed or attached to a ticket."""
    e = html.escape
    rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in _rows(report))
    est = f"{estimate['train_tokens']:,} x {estimate['epochs']:g} epochs = {estimate['training_tokens']:,}"
    rows += f"<tr><th>training tokens</th><td>{e(est)}{' (estimate)' if estimate.get('estimated') else ''}</td></tr>"
    if "cost_usd" in estimate:
        rows += (f"<tr><th>estimated cost</th><td>${estimate['cost_usd']:,.2f} at ${estimate['price_per_1m_tokens']:g}"
                 f" per 1M tokens ({e(estimate['note'])})</td></tr>")
    png = _histogram_png(report)
    plot = f'<img alt="token histogram" src="data:image/png;base64,{png}">' if png else ""
    counts = report.counts()
    findings = "".join(
        f'<tr class="{f.severity}"><td>{e(f.severity)}</td><td>{e(f.file or "")}</td><td>{f.line or ""}</td>'
        f"<td>{e(f.code)}</td><td>{e(f.message)}{(' — ' + e(f.hint)) if f.hint else ''}</td>"
        f"<td>{e(f.plugin or '')}</td></tr>" for f in report.sorted_findings())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ftp data report</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;max-width:70em;color:#222}}
table{{border-collapse:collapse;margin:1em 0}} th,td{{text-align:left;padding:.25em .8em;border-bottom:1px solid #ddd;
vertical-align:top}} tr.error td:first-child{{color:#b00;font-weight:bold}} tr.warning td:first-child{{color:#a60}}
tr.info td:first-child{{color:#777}}
</style></head><body>
<h1>Data report</h1>
<p>backend <b>{e(report.backend)}</b> — {counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} info</p>
<table>{rows}</table>
{plot}
<h2>Findings</h2>
<table><tr><th>severity</th><th>file</th><th>line</th><th>code</th><th>message</th><th>plugin</th></tr>{findings}</table>
</body></html>
"""
