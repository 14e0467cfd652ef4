"""What the task's answers look like, and which metrics fit them.

A user who names no ``evaluate.metrics`` should still get the metrics a careful engineer would pick:
accuracy and macro-F1 for labels, per-field scores for JSON, overlap metrics for free text. The
reference answers (and, in a run, the training answers) say which kind of task it is; the choice
and its reason go into the run log and ``eval.json``.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

from ftp.eval.normalize import normalize
from ftp.types import AnswerFormat

MAX_LABELS = 50  # more distinct short answers than this is not a label set
MAX_LABEL_WORDS = 4
MAX_LABEL_CHARS = 48
MIN_SHARE = 0.8  # the share of answers a format must cover to be the task's format

LOSS = ["loss"]
LABEL_METRICS = ["exact_match", "accuracy", "macro_f1", "format_compliance"]
JSON_METRICS = ["exact_match", "json_parse_rate", "field_accuracy", "field_f1_micro", "field_f1_macro",
                "perfect_record_rate", "format_compliance"]
TEXT_METRICS = ["exact_match", "token_f1", "rouge_l", "chrf", "bleu", "length_ratio"]
# metric -> the module it needs (the ``eval`` extra); without it the metric is left out, and said
NEEDS = {"chrf": "sacrebleu", "bleu": "sacrebleu", "schema_valid_rate": "jsonschema", "judge_score": "openai",
         "judge_preference": "openai"}


def _json_keys(text: str) -> tuple[str, ...] | None:
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return None
    return tuple(sorted(value)) if isinstance(value, dict) else None


def _is_short(text: str) -> bool:
    return 0 < len(text) <= MAX_LABEL_CHARS and len(text.split()) <= MAX_LABEL_WORDS and "\n" not in text


def answer_format(references: Sequence[str], training: Iterable[str] = (), labels: Sequence[str] | None = None,
                  regex: str | None = None) -> AnswerFormat:
    """The answers' kind: ``labels`` when given, JSON objects when most answers are, a label set when
    most answers are a few short values each seen more than once, else free text."""
    answers = [a.strip() for a in list(references) + list(training)]
    n = len(answers) or 1
    if labels:
        return AnswerFormat(kind="label", labels=list(labels), pattern=regex, reason="labels from evaluate.labels")
    keys = [k for k in (_json_keys(a) for a in answers) if k is not None]
    if len(keys) >= MIN_SHARE * n and keys:
        (top, count), = Counter(keys).most_common(1)
        dominant = list(top) if count >= MIN_SHARE * len(keys) else []
        return AnswerFormat(kind="json", keys=dominant, pattern=regex, share=len(keys) / n,
                            reason=f"{len(keys) / n:.0%} of the answers are JSON objects"
                                   + (f" with keys {', '.join(dominant)}" if dominant else ""))
    short = Counter(a for a in answers if _is_short(a))
    repeated = {v: c for v, c in short.items() if c >= 2}
    covered = sum(repeated.values())
    if repeated and len(repeated) <= MAX_LABELS and covered >= MIN_SHARE * n and len(repeated) <= n / 2:
        found = sorted(repeated)
        return AnswerFormat(kind="label", labels=found, pattern=regex, share=covered / n,
                            reason=f"{covered / n:.0%} of the answers are one of {len(found)} labels")
    return AnswerFormat(kind="text", pattern=regex, reason="the answers are free text")


def _installed(metric: str) -> bool:
    module = NEEDS.get(metric)
    return module is None or importlib.util.find_spec(module) is not None


def choose_metrics(fmt: AnswerFormat, *, with_loss: bool, gated: Sequence[str] = (), json_schema: bool = False,
                   judge_mode: str | None = None, known: Iterable[str] | None = None) -> tuple[list[str], str]:
    """The metrics for this kind of answer, the gated ones included; those whose library is missing
    (``pip install 'ftp[eval]'``) or that no plugin declares are left out, and the reason says so."""
    names = (LOSS if with_loss else []) + {"label": LABEL_METRICS, "json": JSON_METRICS}.get(fmt.kind, TEXT_METRICS)
    if fmt.kind == "json" and json_schema:
        names = names + ["schema_valid_rate"]
    if judge_mode:
        names = names + ["judge_score" if judge_mode == "pointwise" else "judge_preference"]
    names = list(dict.fromkeys([*names, *gated]))
    declared = set(known) if known is not None else None
    missing = [m for m in names if not _installed(m) or (declared is not None and m not in declared)]
    chosen = [m for m in names if m not in missing]
    reason = f"{fmt.reason}: {', '.join(chosen)}"
    if missing:
        reason += f" (left out, not installed: {', '.join(missing)}; pip install 'ftp[eval]')"
    return chosen, reason


def same_answer(a: str, b: str) -> bool:
    """Two answers a reader would call identical (whitespace and case aside): the sign of an adapter
    that was never applied, when the fine-tuned model says what the base model says."""
    return normalize(a, "basic") == normalize(b, "basic")


def json_object(text: str) -> dict[str, object] | None:
    """``text`` as a JSON object, or None (an array, a number, not JSON)."""
    try:
        value = json.loads(text.strip())
    except (json.JSONDecodeError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def in_format(fmt: AnswerFormat | None, regex: str | None = None,
              labels: Sequence[str] | None = None) -> tuple[Callable[[str], bool], str]:
    """The in-format test for one answer and its one-line description, the same for evaluation's format
    compliance and the deploy smoke test: a full match of ``regex`` (``evaluate.format_regex``) when
    given; else by the format's kind: a label of the set (strip + casefold), a JSON object with exactly
    the expected top-level keys (any object when none are known), or a full match of the format's
    pattern; else any non-empty answer. ``regex`` must already be valid."""
    if regex:
        compiled = re.compile(regex)
        return (lambda a: compiled.fullmatch(a.strip()) is not None), f"matches evaluate.format_regex {regex!r}"
    if fmt is not None and fmt.kind == "label" and (labels or fmt.labels):
        known = {str(label).strip().casefold() for label in (labels or fmt.labels)}
        shown = ", ".join(sorted(known)[:10]) + (", ..." if len(known) > 10 else "")
        return (lambda a: a.strip().casefold() in known), f"one of {len(known)} labels: {shown}"
    if fmt is not None and fmt.kind == "json":
        keys = set(fmt.keys)
        if not keys:
            return (lambda a: json_object(a) is not None), "a JSON object"
        return ((lambda a: (o := json_object(a)) is not None and set(o) == keys),
                f"a JSON object with exactly the keys {', '.join(sorted(keys))}")
    if fmt is not None and fmt.pattern:
        pattern = re.compile(fmt.pattern)
        return (lambda a: pattern.fullmatch(a.strip()) is not None), f"text matching {fmt.pattern!r}"
    return (lambda a: bool(a.strip())), "non-empty text"
