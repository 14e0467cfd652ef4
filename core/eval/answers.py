"""Answering the test prompts (in batches of similar length, as many per batch as fit) and the one-line
summary of an evaluation; ``ftp.eval.session`` runs an evaluation with them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ftp.types import Comparison, EvalReport, Example, Metric, Predictor


def auto_max_new_tokens(predictor: Predictor, references: list[str]) -> int:
    """Enough room for the longest reference answer plus a margin, so rambling models stop early."""
    longest = max((predictor.count_tokens(r) for r in references), default=32)
    return min(1024, int(longest * 1.25) + 8)


def prompt_order(conversations: list[Any]) -> list[int]:
    """Longest prompts first: a batch then holds prompts of similar length (little padding), and the
    largest batch runs first, so running out of memory shows at once rather than at the end."""
    size = [sum(len(str(m.get("content", ""))) for m in c) if isinstance(c, list) else len(str(c)) for c in conversations]
    return sorted(range(len(conversations)), key=lambda i: -size[i])


def batch_size_for(predictor: Predictor, setting: int | str, prompts: int, max_new_tokens: int) -> int:
    """``evaluate.batch_size``, or with ``auto`` what the predictor says fits in free memory (a GPU
    predictor knows its cache size per token), else 8."""
    if isinstance(setting, int):
        return setting
    suggest = getattr(predictor, "suggest_batch_size", None)
    size = int(suggest(max_new_tokens)) if callable(suggest) else 8
    return max(1, min(size, prompts))


def generate_batched(predictor: Predictor, conversations: list[Any], max_new_tokens: int, batch_size: int,
                     reporter: Any, label: str, examples: Sequence[Example] | None = None) -> list[str]:
    """Every conversation's answer, in the given order; generated in batches of similar length.

    ``examples`` (whose prompts the conversations are, when the loss will be asked for): a predictor with
    ``generate_scored`` answers them instead, scoring their loss from the same pass over the prompts."""
    task = reporter.progress(f"generate ({label})", len(conversations))
    order = prompt_order(conversations)
    answers: dict[int, str] = {}
    scored = getattr(predictor, "generate_scored", None) if examples is not None else None
    try:
        for i in range(0, len(order), batch_size):
            chunk = order[i:i + batch_size]
            if callable(scored) and examples is not None:
                got = scored([examples[j] for j in chunk], max_new_tokens)
            else:
                got = predictor.generate([conversations[j] for j in chunk], max_new_tokens)
            for index, answer in zip(chunk, got):
                answers[index] = answer
            task.update(len(answers))
    finally:
        task.close()
    return [answers[i] for i in range(len(conversations))]


def eval_report(metrics: list[Metric], n: int, comparisons: list[Comparison] | None = None) -> EvalReport:
    table: dict[str, dict[str, float]] = {}
    for m in metrics:
        table.setdefault(m.candidate, {})[m.name] = m.value
    return EvalReport(metrics=table, higher_is_better={m.name: m.higher_is_better for m in metrics}, n=n,
                      comparisons=comparisons or [])


def format_report(report: EvalReport, candidate: str = "fine-tuned") -> str:
    """``n=120: exact_match 0.8125 (base 0.1000, +0.7125 [+0.6083, +0.8083] p=1e-21), ...``: each metric
    of the candidate with every baseline's value and the paired interval where there is one."""
    parts = []
    for name, value in report.metrics.get(candidate, {}).items():
        others = []
        for baseline, values in report.metrics.items():
            if baseline == candidate or name not in values:
                continue
            c = report.comparison(name, baseline, candidate)
            interval = (f", {c.difference:+.4f} [{c.low:+.4f}, {c.high:+.4f}]"
                        + (f" p={c.p_value:.2g}" if c.p_value is not None else "")) if c else ""
            others.append(f"{baseline} {values[name]:.4f}{interval}")
        parts.append(f"{name} {value:.4f}" + (f" ({'; '.join(others)})" if others else ""))
    extra = [c.describe() for c in report.comparisons if c.metric not in report.metrics.get(candidate, {})]
    return f"n={report.n}: " + ", ".join(parts) + "".join(f"; {e}" for e in extra)
