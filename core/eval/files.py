"""The report files of an evaluation: ``eval.json`` (the summary a gate, a registry and a reader use)
and ``eval/examples.jsonl`` (one line per example and candidate, with every per-example score), in the
run directory or the folder ``ftp eval --report`` names. ``eval.html`` is drawn from these two."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ftp.run.store import atomic_write
from ftp.types import Example, Metric

EXAMPLES_FILE = Path("eval") / "examples.jsonl"


def example_id(example: Example, index: int) -> str:
    """The example's own ``id`` when the data has one (so a reviewer can find it), else its position."""
    own = example.get("id") if isinstance(example, dict) else None
    return str(own) if own is not None else str(index)


def example_rows(examples: list[Example], references: list[str], predictions: dict[str, list[str]],
                 metrics: list[Metric]) -> list[dict[str, Any]]:
    """One row per (example, candidate), candidates in evaluation order."""
    scores = {(m.candidate, m.name): m.scores for m in metrics if m.scores is not None}
    rows = []
    for i, (ex, ref) in enumerate(zip(examples, references)):
        for candidate, answers in predictions.items():
            per = {name: s[i] for (c, name), s in scores.items() if c == candidate and i < len(s)}
            rows.append({"id": i, "example_id": example_id(ex, i), "candidate": candidate,
                         "prompt": ex["messages"][:-1], "answer": answers[i], "reference": ref, "scores": per})
    return rows


def metric_entries(metrics: list[Metric]) -> list[dict[str, Any]]:
    """Every metric as ``eval.json`` keeps it: its per-example statistics stay out (they can be large,
    and ``examples.jsonl`` has the per-example scores)."""
    return [m.model_dump(mode="json", exclude={"stats"}) for m in metrics]


def answers_table(examples: list[Example], references: list[str], predictions: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Each test prompt with the reference and every candidate's answer (``eval.json``'s ``examples``)."""
    return [{"index": i, "prompt": ex["messages"][:-1], "reference": ref,
             **{label: answers[i] for label, answers in predictions.items()}}
            for i, (ex, ref) in enumerate(zip(examples, references))]


def write_report(folder: Path, payload: dict[str, Any], rows: list[dict[str, Any]]) -> Path:
    """``eval.json`` and ``eval/examples.jsonl`` in ``folder``, each replaced atomically."""
    (folder / EXAMPLES_FILE).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / EXAMPLES_FILE, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    atomic_write(folder / "eval.json", json.dumps(payload, indent=2, ensure_ascii=False))
    return folder / "eval.json"


def read_report(folder: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    payload = json.loads((folder / "eval.json").read_text(encoding="utf-8"))
    path = folder / EXAMPLES_FILE
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()] if path.exists() else []
    return payload, rows
