"""Azure's numbers in ftp's shape: metrics rows for ``metrics.jsonl`` (hence the same loss-curve PNG
and review as a local run) and the overfitting verdict from validation against training loss.

Azure names: ``train_loss``, ``valid_loss``/``full_valid_loss``, ``train_mean_token_accuracy``,
``valid_mean_token_accuracy`` (``validation_mean_token_accuracy`` in results.csv). ftp's names:
``train_loss``, ``eval_loss``, ``train_token_accuracy``, ``eval_token_accuracy``. ``full_valid_*``
(the whole validation file) wins over ``valid_*`` (one batch) where both are present.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

from ftp.eval.overfitting import verdict

SOURCES: dict[str, tuple[str, ...]] = {
    "train_loss": ("train_loss",),
    "eval_loss": ("full_valid_loss", "valid_loss"),
    "train_token_accuracy": ("train_mean_token_accuracy",),
    "eval_token_accuracy": ("full_valid_mean_token_accuracy", "valid_mean_token_accuracy",
                            "validation_mean_token_accuracy"),
}


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def metrics_row(raw: dict[str, Any]) -> dict[str, Any] | None:
    """One step's Azure metrics as an ftp row (``step`` plus whatever is known), or None without a step."""
    step = _number(raw.get("step"))
    if step is None:
        return None
    row: dict[str, Any] = {"step": int(step)}
    for ours, theirs in SOURCES.items():
        for name in theirs:
            value = _number(raw.get(name))
            if value is not None:
                row[ours] = value
                break
    return row if len(row) > 1 else None


def parse_results_csv(text: str) -> list[dict[str, Any]]:
    """results.csv (one row per step) to metrics rows, in step order."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    rows = [r for r in (metrics_row({k.strip(): v for k, v in raw.items() if k}) for raw in reader) if r]
    return sorted(rows, key=lambda r: r["step"])


def final_metrics(rows: list[dict[str, Any]]) -> dict[str, float]:
    """The last value of each metric: what the job ended on."""
    out: dict[str, float] = {}
    for row in rows:
        out.update({k: v for k, v in row.items() if k != "step"})
    return out


def overfitting(rows: list[dict[str, Any]]) -> str | None:
    """The verdict a local run with these curves would get."""
    return verdict([(r["step"], r["train_loss"]) for r in rows if "train_loss" in r],
                   [(r["step"], r["eval_loss"]) for r in rows if "eval_loss" in r])
