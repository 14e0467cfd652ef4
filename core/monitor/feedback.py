"""Feedback on served answers, shaped like MLflow 3 assessments: ``{request_id, name, value, rationale?,
source_type: human|llm_judge|code, source_id?}``. It is stored beside the requests in the request log's
file (table ``feedback``, never pruned with the requests: it is labelled data) by ``POST /v1/feedback``
and ``ftp feedback import``.

Names with a meaning: ``expected`` (the right answer: ground truth, and a retraining example when the
prompt is known), ``correct`` (true / false), ``score`` (a number in [0, 1]). Others are kept and shown.
A line of an imported file may carry ``messages`` (the prompt) instead of a ``request_id``: labelled data
collected outside the server.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ftp.errors import UserError
from ftp.monitor.features import answer_sha256
from ftp.serve.request_log import read_table, utc_now, writing

KNOWN = ("expected", "correct", "score")


class Feedback(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str | None = None
    name: str = Field(min_length=1, max_length=200)
    value: Any
    rationale: str | None = None
    source_type: Literal["human", "llm_judge", "code"] = "human"
    source_id: str | None = None
    messages: list[dict[str, Any]] | None = None  # the prompt, when there is no request_id
    model: str | None = None  # the deployment name, when there is no request_id

    @model_validator(mode="after")
    def _meaningful(self) -> "Feedback":
        if self.request_id is None and not self.messages:
            raise ValueError("give request_id (the served answer's id) or messages (the prompt)")
        if self.name == "expected" and not isinstance(self.value, str):
            raise ValueError("expected: value must be the right answer as a string")
        if self.name == "correct" and not isinstance(self.value, bool):
            raise ValueError("correct: value must be true or false")
        if self.name == "score" and (isinstance(self.value, bool) or not isinstance(self.value, (int, float))
                                     or not 0 <= self.value <= 1):
            raise ValueError("score: value must be a number from 0 to 1")
        return self


def parse_feedback(data: Any, where: str) -> Feedback:
    """One item, or a UserError naming ``where`` and the first bad field."""
    try:
        return Feedback.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = "".join(f"{p}: " for p in first["loc"][:1])
        raise UserError(f"{where}: {field}{first['msg'].removeprefix('Value error, ')}") from None


def add_feedback(log: Path, items: Iterable[Feedback]) -> list[int]:
    """Store ``items`` in one transaction; their ids."""
    ids = []
    with writing(Path(log)) as db:
        for item in items:
            cursor = db.execute(
                "INSERT INTO feedback (ts, request_id, model, name, value, rationale, source_type, source_id, messages)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (utc_now(), item.request_id, item.model, item.name, json.dumps(item.value, ensure_ascii=False),
                 item.rationale, item.source_type, item.source_id,
                 json.dumps(item.messages, ensure_ascii=False) if item.messages else None))
            ids.append(int(cursor.lastrowid or 0))
    return ids


def import_feedback(log: Path, file: Path) -> int:
    """Every line of a JSONL file, all or nothing (a bad line names file:line and stores none)."""
    items = []
    with open(file, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except ValueError:
                raise UserError(f"{file}:{number}: not JSON; each line is one feedback object") from None
            items.append(parse_feedback(data, f"{file}:{number}"))
    if not items:
        raise UserError(f"{file}: no feedback lines")
    add_feedback(log, items)
    return len(items)


def read_feedback(log: Path) -> list[dict[str, Any]]:
    """Every stored item, oldest first (values decoded); none when the file has no feedback yet."""
    rows = read_table(log, "feedback", "SELECT * FROM feedback ORDER BY id")
    for row in rows:
        row["value"] = json.loads(row["value"])
        row["messages"] = json.loads(row["messages"]) if row["messages"] else None
    return rows


@dataclass(frozen=True)
class Label:
    """One served answer's verdict from its latest feedback: ``correct`` (None: no verdict, only e.g. a
    comment), the ``expected`` answer when one was given."""

    request: dict[str, Any]
    correct: bool | None
    score: float | None
    expected: str | None
    at: str


def labels(requests: list[dict[str, Any]], feedback: list[dict[str, Any]]) -> list[Label]:
    """Feedback joined to the requests it names (latest per request and name wins). ``expected`` is
    correct when it equals the answer as exact match normalises it; ``score`` counts as correct at 0.5."""
    by_id: dict[str, dict[str, dict[str, Any]]] = {}
    for item in feedback:
        if item["request_id"] and item["name"] in KNOWN:
            by_id.setdefault(item["request_id"], {})[item["name"]] = item
    out = []
    for row in requests:
        given = by_id.get(row["request_id"])
        if not given or row.get("mirrored"):
            continue
        expected = given.get("expected")
        score = float(given["score"]["value"]) if "score" in given else None
        correct: bool | None = None
        if "correct" in given:
            correct = bool(given["correct"]["value"])
        elif expected is not None and row.get("output_sha256"):
            correct = answer_sha256(expected["value"]) == row["output_sha256"]
        elif score is not None:
            correct = score >= 0.5
        at = max(item["ts"] for item in given.values())
        out.append(Label(row, correct, score, expected["value"] if expected else None, at))
    return out


def known_requests(log: Path, ids: Iterable[str]) -> set[str]:
    """Which of ``ids`` the log holds (a feedback naming another is refused: a typo would be lost)."""
    wanted = sorted(set(ids))
    if not wanted:
        return set()
    marks = ", ".join("?" * len(wanted))
    rows = read_table(Path(log), "requests", f"SELECT request_id FROM requests WHERE request_id IN ({marks})", wanted)
    return {r["request_id"] for r in rows}
