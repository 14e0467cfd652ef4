"""Built-in classification metrics: accuracy and macro-F1 of answers mapped onto a label set.

A generated answer is rarely the bare label, so each answer is first mapped to one: the label it equals
(after strip and casefold), else the label it names earliest as a whole word or phrase, else
``__invalid__``. Both metrics carry the same report: per-class precision/recall/F1 (the numbers of
scikit-learn's ``classification_report`` with ``zero_division=0``; tests check them against it) and the
confusion matrix with ``__invalid__`` as its last row and column. They are counted here rather than by
scikit-learn, whose first import (1-2 s) was nearly all of the scoring phase of ``ftp eval`` (1.0-1.7 s of
22 s on an H200 machine, profiled on a CPU): more than the metrics themselves.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from ftp import hookimpl
from ftp.plugins.metrics import f1_from_counts
from ftp.types import AnswerFormat, EvalRequest, Metric, MetricSpec

INVALID = "__invalid__"


def label_set(settings: dict[str, Any], answer_format: AnswerFormat | None,
              references: Sequence[str]) -> tuple[list[str], str]:
    """The labels answers are mapped onto, and where they came from (said in the report): the file's
    ``evaluate.labels`` first, then the detected answer format's, then the distinct references."""
    given = (settings.get("evaluate") or {}).get("labels")
    if given:
        return _distinct(str(label) for label in given), "evaluate.labels"
    if answer_format is not None and answer_format.kind == "label" and answer_format.labels:
        return _distinct(answer_format.labels), "answer format"
    return sorted({r.strip() for r in references}), "references"


def _distinct(labels: Any) -> list[str]:
    """Labels in their given order, each once (two spellings of one label would split its counts)."""
    seen: set[str] = set()
    out: list[str] = []
    for label in labels:
        label = label.strip()
        if label.casefold() not in seen:
            seen.add(label.casefold())
            out.append(label)
    return out


def map_answer(answer: str, labels: Sequence[str]) -> str:
    """The label ``answer`` gives: equal after strip+casefold; else the one named earliest as a whole
    word or phrase (on a tie the longest, so "very positive" beats "positive"); else ``__invalid__``."""
    text = answer.strip().casefold()
    for label in labels:
        if label.casefold() == text:
            return label
    best: tuple[int, int, str] | None = None
    for label in labels:
        if not label:
            continue
        found = re.search(r"(?<!\w)" + re.escape(label.casefold()) + r"(?!\w)", text)
        if found and (best is None or (found.start(), -len(label)) < best[:2]):
            best = (found.start(), -len(label), label)
    return best[2] if best else INVALID


def reference_label(reference: str, labels: Sequence[str]) -> str:
    """The gold label of a reference: the label it equals after strip+casefold, else its own stripped
    text (a class answers can never map to, so it counts wrong rather than disappearing)."""
    text = reference.strip()
    return next((label for label in labels if label.casefold() == text.casefold()), text)


def classes_of(labels: Sequence[str], gold: Sequence[str]) -> list[str]:
    """Every class a count may fall in: the label set, references outside it, then ``__invalid__``."""
    extra = sorted({g for g in gold if g not in labels and g != INVALID})
    return [*labels, *extra, INVALID]


def class_counts(gold: Sequence[str], mapped: Sequence[str], classes: Sequence[str]) -> list[list[float]]:
    """Per example, (tp, fp, fn) for each class in order: the rows a resample sums for macro-F1."""
    rows = []
    for g, p in zip(gold, mapped):
        row: list[float] = []
        for c in classes:
            row += [float(g == c and p == c), float(p == c and g != c), float(g == c and p != c)]
        rows.append(row)
    return rows


def macro_f1_from_sums(sums: Sequence[float]) -> float:
    """Macro-F1 from summed (tp, fp, fn) triples, over the classes that occur as reference or answer:
    what ``f1_score(average="macro", zero_division=0)`` gives on the same examples."""
    f1s = [f1_from_counts(*sums[i:i + 3]) for i in range(0, len(sums) - 2, 3) if sum(sums[i:i + 3]) > 0]
    return sum(f1s) / len(f1s) if f1s else 0.0


def per_class_report(gold: Sequence[str], mapped: Sequence[str],
                     present: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(per class, averages): precision, recall, f1-score and support of each class in ``present``, and
    their macro and support-weighted means, as ``classification_report(..., output_dict=True,
    zero_division=0)`` gives them for ``labels=present``."""
    tp: Counter[str] = Counter(g for g, p in zip(gold, mapped) if g == p)
    predicted, support = Counter(mapped), Counter(gold)
    rows: dict[str, Any] = {}
    for c in present:
        hits, said, real = tp[c], predicted[c], support[c]
        rows[c] = {"precision": hits / said if said else 0.0, "recall": hits / real if real else 0.0,
                   "f1-score": f1_from_counts(hits, said - hits, real - hits), "support": real}
    total = sum(r["support"] for r in rows.values())
    keys = ("precision", "recall", "f1-score")
    averages = {
        "macro avg": {**{k: sum(r[k] for r in rows.values()) / len(rows) for k in keys}, "support": total},
        "weighted avg": {**{k: (sum(r[k] * r["support"] for r in rows.values()) / total if total else 0.0)
                            for k in keys}, "support": total},
    } if rows else {}
    return rows, averages


def confusion(gold: Sequence[str], mapped: Sequence[str], classes: Sequence[str]) -> list[list[int]]:
    """Rows: the reference's class; columns: the answer's (``confusion_matrix(gold, mapped, labels=classes)``)."""
    where = {c: i for i, c in enumerate(classes)}
    matrix = [[0] * len(classes) for _ in classes]
    for g, p in zip(gold, mapped):
        if g in where and p in where:
            matrix[where[g]][where[p]] += 1
    return matrix


def report_details(gold: Sequence[str], mapped: Sequence[str], classes: Sequence[str],
                   labels: Sequence[str], source: str) -> dict[str, Any]:
    """What the report shows beside the numbers, as plain JSON values."""
    seen = set(gold) | set(mapped)
    per_class, averages = per_class_report(gold, mapped, [c for c in classes if c in seen])
    return {
        "per_class": per_class,
        "averages": averages,
        "confusion_matrix": {"labels": list(classes), "matrix": confusion(gold, mapped, classes) if gold else []},
        "invalid": sum(p == INVALID for p in mapped),
        "labels": {"set": list(labels), "source": source},
    }


@hookimpl
def ftp_metrics() -> list[MetricSpec]:
    return [
        MetricSpec(name="accuracy", description="share of answers mapped to the reference's label "
                   "(equal after casefold, else the first label named, else __invalid__)"),
        MetricSpec(name="macro_f1", description="mean F1 over the classes in the references or the mapped answers "
                   "(__invalid__ included), with per-class report and confusion matrix"),
    ]


@hookimpl
def ftp_evaluate(request: EvalRequest) -> list[Metric]:
    wanted = {"accuracy", "macro_f1"} & set(request.metrics)
    if not wanted:
        return []
    labels, source = label_set(request.settings, request.answer_format, request.references)
    gold = [reference_label(r, labels) for r in request.references]
    mapped = [map_answer(p, labels) for p in request.predictions]
    classes = classes_of(labels, gold)
    details = report_details(gold, mapped, classes, labels, source)
    n = len(request.references)
    out: list[Metric] = []
    if "accuracy" in wanted:
        scores = [float(g == p) for g, p in zip(gold, mapped)]
        out.append(Metric(name="accuracy", value=sum(scores) / n if n else 0.0, candidate=request.candidate, n=n,
                          scores=scores, details=details))
    if "macro_f1" in wanted:
        stats = class_counts(gold, mapped, classes)
        sums = [sum(col) for col in zip(*stats)] if stats else []
        out.append(Metric(name="macro_f1", value=macro_f1_from_sums(sums), candidate=request.candidate, n=n,
                          stats=stats, from_stats=macro_f1_from_sums, details=details))
    return out
