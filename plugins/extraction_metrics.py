"""Built-in extraction metrics for JSON answers: parse rates, schema validity, per-field accuracy,
field-F1 and perfect records.

Records are compared field by field on dotted leaf paths (``{"a": {"b": [1, {"c": 2}]}}`` has the
fields ``a.b[0]`` and ``a.b[1].c``). A field is right when the answer holds the same JSON value there
(``json.dumps`` equal, so ``3`` and ``3.0`` differ); the normalised comparison the report also shows
treats numbers as numbers (``"3"``, ``3``, ``3.0``), strings modulo strip and casefold, and ISO dates
as dates. An answer that does not parse, even leniently, gets every reference field wrong.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ftp import hookimpl
from ftp.errors import UserError
from ftp.plugins.metrics import f1_from_counts
from ftp.types import EvalRequest, Metric, MetricSpec

_FENCE = re.compile(r"```[ \t]*[A-Za-z0-9_-]*[ \t]*\n?(.*?)```", re.DOTALL)
_MAX_STARTS = 200  # bracket positions tried when digging an object out of prose
OTHER = "(not in any reference)"  # the stats column for extra answer paths no reference has


def parse_strict(answer: str) -> dict[str, Any] | list[Any] | None:
    """The answer as a JSON object or array, or None: what a program reading it raw would get."""
    try:
        value = json.loads(answer.strip())
    except (json.JSONDecodeError, ValueError, RecursionError):
        return None
    return value if isinstance(value, (dict, list)) else None


def parse_lenient(answer: str) -> dict[str, Any] | list[Any] | None:
    """Also read answers wrapped in a code fence or in prose: the fence's body, else the first
    balanced ``{...}`` or ``[...]`` in the text that is valid JSON."""
    value = parse_strict(answer)
    if value is not None:
        return value
    for body in _FENCE.findall(answer):
        value = parse_strict(body) or _first_balanced(body)
        if value is not None:
            return value
    return _first_balanced(answer)


def _first_balanced(text: str) -> dict[str, Any] | list[Any] | None:
    decoder = json.JSONDecoder()
    starts = [i for i, ch in enumerate(text) if ch in "{["][:_MAX_STARTS]
    for start in starts:
        try:
            value, _ = decoder.raw_decode(text, start)
        except (json.JSONDecodeError, ValueError, RecursionError):
            continue
        if isinstance(value, (dict, list)):
            return value
    return None


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted leaf paths to leaf values; an empty object or array inside a record is a leaf itself.
    (Keys that contain dots or brackets make ambiguous paths; JSON extraction targets rarely do.)"""
    if isinstance(value, dict) and (value or not prefix):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list) and (value or not prefix):
        out = {}
        for i, item in enumerate(value):
            out.update(flatten(item, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def same_exact(a: Any, b: Any) -> bool:
    """The same JSON value, written the same way (key order aside)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _date(value: Any) -> datetime | None:
    if not isinstance(value, str) or not re.match(r"\s*\d{4}-\d{2}-\d{2}", value):
        return None
    try:
        return datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None


def same_normalised(a: Any, b: Any) -> bool:
    """Equal as a person reading the record would judge: numbers as numbers, ISO dates as dates,
    strings modulo surrounding space and case."""
    if same_exact(a, b):
        return True
    x, y = _number(a), _number(b)
    if x is not None and y is not None:
        return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)
    d, e = _date(a), _date(b)
    if d is not None and e is not None:
        return d == e
    if isinstance(a, str) and isinstance(b, str):
        return a.strip().casefold() == b.strip().casefold()
    return False


@dataclass
class Record:
    """One example compared field by field."""

    parsed: bool
    right: set[str] = field(default_factory=set)
    normal_right: set[str] = field(default_factory=set)
    present: set[str] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)
    wrong: set[str] = field(default_factory=set)
    extra: set[str] = field(default_factory=set)
    fields: int = 0

    @property
    def perfect(self) -> bool:
        return self.parsed and not (self.missing or self.wrong or self.extra)

    @property
    def accuracy(self) -> float:
        """Share of the reference's fields right; a reference without fields needs a perfect record."""
        return len(self.right) / self.fields if self.fields else float(self.perfect)


def compare(answer: str, reference: str) -> Record:
    """The per-field verdicts of one answer against its reference."""
    ref = parse_lenient(reference)
    gold = flatten(ref) if ref is not None else {}
    value = parse_lenient(answer)
    if value is None:
        return Record(parsed=False, wrong=set(gold), fields=len(gold))
    got = flatten(value)
    rec = Record(parsed=True, fields=len(gold), extra=set(got) - set(gold))
    for path, expected in gold.items():
        if path not in got:
            rec.missing.add(path)
            continue
        rec.present.add(path)
        (rec.right if same_exact(got[path], expected) else rec.wrong).add(path)
        if same_normalised(got[path], expected):
            rec.normal_right.add(path)
    return rec


def field_stats(records: Sequence[Record], paths: Sequence[str]) -> list[list[float]]:
    """Per example, (tp, fp, fn) per reference field path of the test set, then one triple for extra
    paths no reference has: tp = right, fp = wrong + extra, fn = wrong + missing."""
    rows = []
    for rec in records:
        row: list[float] = []
        for path in paths:
            row += [float(path in rec.right), float(path in rec.wrong or path in rec.extra),
                    float(path in rec.wrong or path in rec.missing)]
        row += [0.0, float(len(rec.extra - set(paths))), 0.0]
        rows.append(row)
    return rows


def micro_f1_from_sums(sums: Sequence[float]) -> float:
    """Field-F1 over all fields pooled: 2tp / (2tp + fp + fn)."""
    return f1_from_counts(sum(sums[0::3]), sum(sums[1::3]), sum(sums[2::3]))


def macro_f1_from_sums(sums: Sequence[float]) -> float:
    """Mean per-field F1 over the field paths the (resampled) references hold (tp + fn > 0)."""
    f1s = [f1_from_counts(*sums[i:i + 3]) for i in range(0, len(sums) - 2, 3) if sums[i] + sums[i + 2] > 0]
    return sum(f1s) / len(f1s) if f1s else 0.0


def field_details(records: Sequence[Record], paths: Sequence[str]) -> dict[str, Any]:
    """Per reference field: exact and normalised accuracy, presence, and the error counts."""
    fields: dict[str, dict[str, float | int]] = {}
    for path in paths:
        mine = [r for r in records if path in r.right | r.wrong | r.missing]
        n = len(mine)
        fields[path] = {
            "accuracy": sum(path in r.right for r in mine) / n if n else 0.0,
            "normalized_accuracy": sum(path in r.normal_right for r in mine) / n if n else 0.0,
            "presence": sum(path in r.present for r in mine) / n if n else 0.0,
            "missing": sum(path in r.missing for r in mine),
            "wrong": sum(path in r.wrong for r in mine),
            "extra": sum(path in r.extra for r in records),
            "n": n,
        }
    return {"fields": fields, "missing": sum(len(r.missing) for r in records),
            "wrong_value": sum(len(r.wrong) for r in records), "extra": sum(len(r.extra) for r in records)}


def load_schema(settings: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON Schema ``evaluate.json_schema`` names, checked to be one; None when no file is named."""
    name = (settings.get("evaluate") or {}).get("json_schema")
    if not name:
        return None
    from jsonschema import SchemaError
    from jsonschema.validators import validator_for

    path = Path(str(name))
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"evaluate.json_schema: file not found: {path}; give the path of a JSON Schema file") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"evaluate.json_schema: {path} is not readable JSON ({exc}); fix the file") from None
    if not isinstance(schema, (dict, bool)):
        raise UserError(f"evaluate.json_schema: {path} is not a JSON Schema (an object); fix the file")
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise UserError(f"evaluate.json_schema: {path} is not a valid JSON Schema: {exc.message}; fix the file") from None
    return schema if isinstance(schema, dict) else {"not": {}} if schema is False else {}


def schema_scores(predictions: Sequence[str], schema: dict[str, Any]) -> list[float]:
    """1.0 where the leniently parsed answer validates against the schema."""
    from jsonschema.validators import validator_for

    validator = validator_for(schema)(schema)
    scores = []
    for answer in predictions:
        value = parse_lenient(answer)
        scores.append(float(value is not None and validator.is_valid(value)))
    return scores


@hookimpl
def ftp_metrics() -> list[MetricSpec]:
    return [
        MetricSpec(name="json_parse_rate", description="share of answers that are a JSON object or array as they are"),
        MetricSpec(name="json_parse_rate_lenient",
                   description="share of answers holding a JSON object or array (code fences and prose stripped)"),
        MetricSpec(name="schema_valid_rate", description="share of answers valid against evaluate.json_schema"),
        MetricSpec(name="field_accuracy", description="per record, share of the reference's fields (dotted paths) "
                   "the answer gets exactly right; per-field report"),
        MetricSpec(name="field_f1_micro", description="F1 over all fields pooled (fp: wrong + extra, fn: wrong + missing)"),
        MetricSpec(name="field_f1_macro", description="mean of per-field F1 over the reference's field paths"),
        MetricSpec(name="perfect_record_rate", description="share of answers with every field right and none extra"),
    ]


@hookimpl
def ftp_evaluate(request: EvalRequest) -> list[Metric]:
    wanted = set(request.metrics)
    n = len(request.references)
    out: list[Metric] = []

    def add(name: str, scores: list[float], **extra: Any) -> None:
        if name in wanted:
            out.append(Metric(name=name, value=sum(scores) / n if n else 0.0, candidate=request.candidate, n=n,
                              scores=scores, **extra))

    add("json_parse_rate", [float(parse_strict(p) is not None) for p in request.predictions])
    add("json_parse_rate_lenient", [float(parse_lenient(p) is not None) for p in request.predictions])
    if "schema_valid_rate" in wanted:
        schema = load_schema(request.settings)
        if schema is not None:
            add("schema_valid_rate", schema_scores(request.predictions, schema))
    if not {"field_accuracy", "field_f1_micro", "field_f1_macro", "perfect_record_rate"} & wanted:
        return out
    records = [compare(p, r) for p, r in zip(request.predictions, request.references)]
    paths = sorted({p for r in records for p in r.right | r.wrong | r.missing})
    add("field_accuracy", [r.accuracy for r in records], details=field_details(records, paths))
    add("perfect_record_rate", [float(r.perfect) for r in records])
    stats = field_stats(records, paths)
    sums = [sum(col) for col in zip(*stats)] if stats else []
    for name, fn in (("field_f1_micro", micro_f1_from_sums), ("field_f1_macro", macro_f1_from_sums)):
        if name in wanted:
            out.append(Metric(name=name, value=fn(sums), candidate=request.candidate, n=n, stats=stats,
                              from_stats=fn, details={"columns": [*paths, OTHER]}))
    return out
