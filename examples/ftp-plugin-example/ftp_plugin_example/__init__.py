"""ftp-plugin-example: an answer-length validator, an answer-length evaluator and an ``ftp answer-words`` command.

ftp finds this module through the ``ftp`` entry point in pyproject.toml and registers it exactly as it
registers its own built-in plugins; every function below marked ``@hookimpl`` is a hook implementation.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ftp import hookimpl
from ftp.types import ConfigSection, DataBundle, EvalRequest, Finding, Metric, MetricSpec
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    import click

SECTION = "answer_length"  # the pipeline file's ``validate.answer_length``
METRIC = "answer_words"


class AnswerLength(BaseModel):
    """Settings of ``validate.answer_length``; ``extra="forbid"`` makes a misspelt key an error."""

    model_config = ConfigDict(extra="forbid")

    max_words: int = Field(200, gt=0)
    severity: Literal["error", "warning", "info"] = "warning"


def words(content: Any) -> int:
    """Whitespace-separated words of a message's content (a string, or a list of text parts)."""
    if isinstance(content, list):
        content = " ".join(str(p.get("text", "")) if isinstance(p, dict) else str(p) for p in content)
    return len(str(content or "").split())


def section_settings(settings: dict[str, Any]) -> AnswerLength:
    """This plugin's section from the settings a hook receives; the defaults when it is absent.

    ftp validated the section when it read the pipeline file, so this cannot fail on a user's typo.
    """
    raw = (settings.get("validate") or {}).get(SECTION) or {}
    return AnswerLength.model_validate(raw)


def answers(path: Path) -> Iterator[tuple[int, int, int]]:
    """(line number, message index, words) of each assistant answer.

    Streams the file line by line, because training data can be gigabytes.
    """
    with path.open(encoding="utf-8-sig") as fh:
        for number, line in enumerate(fh, start=1):
            try:
                messages = json.loads(line).get("messages") or []
            except (json.JSONDecodeError, AttributeError):
                continue  # malformed lines are the built-in chat_format validator's to report
            for index, message in enumerate(messages):
                if isinstance(message, dict) and message.get("role") == "assistant":
                    yield number, index, words(message.get("content"))


def long_answers(path: Path, max_words: int) -> Iterator[tuple[int, int, int]]:
    """(line number, message index, words) of each assistant answer over ``max_words``."""
    return ((number, index, count) for number, index, count in answers(path) if count > max_words)


@hookimpl
def ftp_config_sections() -> list[ConfigSection]:
    """Own ``validate.answer_length``, so ftp checks its keys and types when it reads the file."""
    return [ConfigSection(path=f"validate.{SECTION}", model=AnswerLength)]


@hookimpl
def ftp_metrics() -> list[MetricSpec]:
    """Declare ``answer_words`` so pipeline files may list it in evaluate.metrics and gate on it."""
    return [MetricSpec(name=METRIC, description="mean words per generated answer on the test split",
                       higher_is_better=False)]


@hookimpl
def ftp_validate_data(data: DataBundle, settings: dict[str, Any]) -> list[Finding]:
    """Flag long answers: they cost tokens, and usually mean the output is not the narrow format intended."""
    config = section_settings(settings)
    findings = []
    for ref in data.files():
        for number, index, count in long_answers(ref.path, config.max_words):
            findings.append(Finding(
                severity=config.severity, code="long-answer", file=str(ref.path), line=number,
                message=f"messages[{index}] (assistant) has {count} words; max_words is {config.max_words}",
                hint=f"shorten the answer or raise validate.{SECTION}.max_words"))
    return findings


@hookimpl
def ftp_evaluate(request: EvalRequest) -> list[Metric]:
    """Mean answer length per candidate, so a gate can stop a model that learned to ramble."""
    if METRIC not in request.metrics or not request.predictions:
        return []
    mean = sum(words(p) for p in request.predictions) / len(request.predictions)
    return [Metric(name=METRIC, value=mean, candidate=request.candidate, n=len(request.predictions),
                   higher_is_better=False)]


@hookimpl
def ftp_commands(cli: click.Group) -> None:
    """``ftp answer-words FILE``: answer lengths before a run, to choose ``validate.answer_length.max_words``."""
    import click

    @cli.command("answer-words")
    @click.argument("path", type=click.Path(exists=True, dir_okay=False))
    def answer_words(path: str) -> None:
        """How many words the assistant answers of a chat JSONL file have (example plugin)."""
        counts = sorted(count for _, _, count in answers(Path(path)))
        if not counts:
            raise click.ClickException(f"{path}: no assistant answers")
        click.echo(f"{len(counts)} answers; words: min {counts[0]}, median {counts[len(counts) // 2]}, "
                   f"max {counts[-1]}")
