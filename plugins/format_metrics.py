"""Built-in format compliance: the share of answers in the references' dominant format.

"In format" is, in this order: a full match of ``evaluate.format_regex`` on the stripped answer;
else by the answer format's kind: a label of the label set (strip + casefold), a JSON object with
exactly the expected top-level keys (any object when none are known), or for free text a full match of
the format's pattern, else any non-empty answer. A request without an answer format (a plugin or test
calling the hook directly) gets one read off its references by :func:`guess_format`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from ftp import hookimpl
from ftp.errors import UserError
from ftp.eval.formats import in_format, json_object
from ftp.types import AnswerFormat, EvalRequest, Metric, MetricSpec

Check = Callable[[str], bool]
MAX_LABELS = 50  # more distinct answers than this is not a label set
MAX_LABEL_CHARS = 60


def guess_format(references: Sequence[str]) -> AnswerFormat:
    """What the references look like, when the run gave no answer format: JSON when most are objects
    (keys: the commonest top-level key set), labels when a few short answers repeat, else text."""
    refs = [r.strip() for r in references]
    objects = [o for o in map(json_object, refs) if o is not None]
    if refs and len(objects) * 2 > len(refs):
        keys, count = Counter(tuple(sorted(o)) for o in objects).most_common(1)[0]
        return AnswerFormat(kind="json", keys=list(keys), share=count / len(refs),
                            reason=f"{len(objects)} of {len(refs)} references are JSON objects")
    distinct = sorted(set(refs))
    if (refs and len(distinct) <= MAX_LABELS and len(distinct) * 2 <= len(refs)
            and all(0 < len(r) <= MAX_LABEL_CHARS and "\n" not in r for r in distinct)):
        return AnswerFormat(kind="label", labels=distinct, reason=f"{len(distinct)} distinct short references repeat")
    return AnswerFormat(kind="text", reason="references are free text")


def format_check(settings: dict[str, Any], answer_format: AnswerFormat,
                 references: Sequence[str] = ()) -> tuple[Check, str]:
    """The in-format test for one answer and a one-line description of it for the report."""
    regex = (settings.get("evaluate") or {}).get("format_regex")
    if regex:
        try:
            re.compile(regex)
        except re.error as exc:
            raise UserError(f"evaluate.format_regex: {regex!r} is not a valid regular expression ({exc}); "
                            "fix it") from None
        return in_format(answer_format, regex=regex)
    labels = (settings.get("evaluate") or {}).get("labels") or answer_format.labels or references
    return in_format(answer_format, labels=[str(label) for label in labels])


@hookimpl
def ftp_metrics() -> list[MetricSpec]:
    return [MetricSpec(name="format_compliance",
                       description="share of answers in the references' format (evaluate.format_regex, a label, "
                       "a JSON object with the expected keys, or non-empty text)")]


@hookimpl
def ftp_evaluate(request: EvalRequest) -> list[Metric]:
    if "format_compliance" not in request.metrics:
        return []
    answer_format = request.answer_format or guess_format(request.references)
    check, description = format_check(request.settings, answer_format, request.references)
    if request.answer_format is None and not (request.settings.get("evaluate") or {}).get("format_regex"):
        description += f" (read off the references: {answer_format.reason})"
    scores = [float(check(p)) for p in request.predictions]
    n = len(request.references)
    return [Metric(name="format_compliance", value=sum(scores) / n if n else 0.0, candidate=request.candidate, n=n,
                   scores=scores, details={"format": description})]
