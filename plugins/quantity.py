"""How many examples there are, judged by the field's guidance (and by what a split needs)."""

from __future__ import annotations

from typing import Any

from ftp import hookimpl
from ftp.types import DataBundle, Finding

MIN_EXAMPLES = 10
FEW_SHOT_BELOW = 50
WARN_BELOW = 100
RECOMMENDED = 1000


def judge(count: int, file: str) -> Finding | None:
    if count < MIN_EXAMPLES:
        return Finding(severity="error", code="too-few-examples", file=file,
                       message=f"{count} examples; at least {MIN_EXAMPLES} are needed (Azure refuses fewer)")
    if count < FEW_SHOT_BELOW:
        return Finding(severity="warning", code="few-examples", file=file,
                       message=f"{count} examples; under {FEW_SHOT_BELOW}, few-shot prompting usually beats fine-tuning")
    if count < WARN_BELOW:
        return Finding(severity="warning", code="few-examples", file=file,
                       message=f"{count} examples; aim for at least {WARN_BELOW}")
    if count < RECOMMENDED:
        return Finding(severity="info", code="examples", file=file,
                       message=f"{count} examples; {RECOMMENDED}+ is recommended for production")
    return None


@hookimpl
def ftp_validate_data(data: DataBundle, settings: dict[str, Any]) -> list[Finding]:
    finding = judge(data.train.examples, str(data.train.path))
    return [finding] if finding else []
