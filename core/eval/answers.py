"""The evaluate step's pieces: answering the test prompts in batches, and the report it writes.

Kept apart from the runner, which only orders the steps; evaluation features (metrics with
intervals, per-example scores) grow here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ftp.run.store import atomic_write
from ftp.types import Comparison, EvalReport, Metric, Predictor


def auto_max_new_tokens(predictor: Predictor, references: list[str]) -> int:
    """Enough room for the longest reference answer plus a margin, so rambling models stop early."""
    longest = max((predictor.count_tokens(r) for r in references), default=32)
    return min(1024, int(longest * 1.25) + 8)


def generate_batched(predictor: Predictor, conversations: list[Any], max_new_tokens: int, batch_size: int,
                     reporter: Any, label: str) -> list[str]:
    task = reporter.progress(f"generate ({label})", len(conversations))
    out: list[str] = []
    try:
        for i in range(0, len(conversations), batch_size):
            out += predictor.generate(conversations[i:i + batch_size], max_new_tokens)
            task.update(len(out))
    finally:
        task.close()
    return out


def eval_report(metrics: list[Metric], n: int, comparisons: list[Comparison] | None = None) -> EvalReport:
    table: dict[str, dict[str, float]] = {}
    for m in metrics:
        table.setdefault(m.candidate, {})[m.name] = m.value
    return EvalReport(metrics=table, higher_is_better={m.name: m.higher_is_better for m in metrics}, n=n,
                      comparisons=comparisons or [])


def format_report(report: EvalReport) -> str:
    ft, base = report.metrics.get("fine-tuned", {}), report.metrics.get("base", {})
    parts = []
    for name, value in ft.items():
        parts.append(f"{name} {value:.4f}" + (f" (base {base[name]:.4f})" if name in base else ""))
    paired = [c.describe() for c in report.comparisons]
    return f"n={report.n}: " + ", ".join(parts) + "".join(f"; {p}" for p in paired)


def write_eval(run_dir: Path, report: EvalReport, metrics: list[Metric], examples: list[dict[str, Any]],
               references: list[str], predictions: dict[str, list[str]], skipped: dict[str, str] | None = None) -> None:
    rows = [{"index": i, "prompt": ex["messages"][:-1], "reference": ref,
             **{label: preds[i] for label, preds in predictions.items()}}
            for i, (ex, ref) in enumerate(zip(examples, references))]
    payload = {"n": report.n, "metrics": report.metrics, "higher_is_better": report.higher_is_better,
               "comparisons": [c.model_dump(mode="json") for c in report.comparisons],
               "details": [m.model_dump(mode="json") for m in metrics], "examples": rows,
               **({"not_evaluated": skipped} if skipped else {})}
    atomic_write(run_dir / "eval.json", json.dumps(payload, indent=2, ensure_ascii=False))
