"""ftp-plugin-example: an answer-length validator and evaluator, registered through the ``ftp``
entry point like any third-party plugin.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ftp import hookimpl
from ftp.types import ConfigSection, DataBundle, EvalRequest, Finding, Metric, MetricSpec

SECTION = "answer_length"


class AnswerLength(BaseModel):
    """``validate.answer_length`` in a pipeline file."""

    model_config = ConfigDict(extra="forbid")

    max_words: int = Field(200, gt=0)
    severity: Literal["error", "warning", "info"] = "warning"


def words(text: Any) -> int:
    return len(str(text or "").split())


@hookimpl
def ftp_config_sections() -> list[ConfigSection]:
    return [ConfigSection(path=f"validate.{SECTION}", model=AnswerLength)]


@hookimpl
def ftp_metrics() -> list[MetricSpec]:
    return [MetricSpec(name="answer_words", description="mean words per generated answer", higher_is_better=False)]


@hookimpl
def ftp_validate_data(data: DataBundle, settings: dict[str, Any]) -> list[Finding]:
    """Long answers cost tokens and usually mean the format is not the narrow one intended."""
    config = AnswerLength.model_validate(settings.get("validate", {}).get(SECTION, {}))
    findings = []
    for ref in data.files():
        with ref.path.open(encoding="utf-8-sig") as fh:
            for number, line in enumerate(fh, start=1):
                try:
                    messages = json.loads(line).get("messages") or []
                except (json.JSONDecodeError, AttributeError):
                    continue  # the built-in format validator reports malformed lines
                for i, m in enumerate(messages):
                    if isinstance(m, dict) and m.get("role") == "assistant" and words(m.get("content")) > config.max_words:
                        findings.append(Finding(
                            severity=config.severity, code="long-answer", file=str(ref.path), line=number,
                            message=f"messages[{i}] has {words(m.get('content'))} words (max_words {config.max_words})",
                            hint="shorten the answer or raise validate.answer_length.max_words"))
    return findings


@hookimpl
def ftp_evaluate(request: EvalRequest) -> list[Metric]:
    if "answer_words" not in request.metrics or not request.predictions:
        return []
    mean = sum(words(p) for p in request.predictions) / len(request.predictions)
    return [Metric(name="answer_words", value=mean, candidate=request.candidate, n=len(request.predictions),
                   higher_is_better=False)]
