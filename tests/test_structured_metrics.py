"""Classification, extraction and format-compliance metrics on hand-computed examples, and once
through the real ``ftp_evaluate`` hook."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from ftp.errors import UserError
from ftp.hooks import default_hooks
from ftp.plugins import classification_metrics as cls
from ftp.plugins import extraction_metrics as ext
from ftp.plugins import format_metrics as fmt
from ftp.types import AnswerFormat, EvalRequest, Metric, ModelRef

MODEL = ModelRef(kind="base", base="tiny", backend="local")


def request(predictions: list[str], references: list[str], metrics: list[str], evaluate: dict[str, Any] | None = None,
            answer_format: AnswerFormat | None = None) -> EvalRequest:
    return EvalRequest(candidate="fine-tuned", model=MODEL, examples=[], predictions=predictions, references=references,
                       metrics=metrics, settings={"evaluate": evaluate or {}}, answer_format=answer_format)


def by_name(metrics: Iterable[Metric]) -> dict[str, Metric]:
    return {m.name: m for m in metrics}


def resampled(metric: Metric, rows: list[int]) -> float:
    """The metric on a resample, as ftp_compare recomputes it: the chosen rows' stats summed."""
    assert metric.stats is not None and metric.from_stats is not None
    return metric.from_stats([sum(col) for col in zip(*(metric.stats[i] for i in rows))])


# --- classification ---

LABELS = ["negative", "neutral", "positive"]
SENTIMENT_REFS = ["positive", "negative", "neutral", "positive", "negative", "neutral"]
SENTIMENT_ANSWERS = ["Positive", "I think it is negative.", "no idea", "neutral", "  NEGATIVE ",
                     "neutral, maybe positive"]


def test_answers_map_to_the_equal_label_else_the_earliest_named_else_invalid() -> None:
    assert cls.map_answer("  POSITIVE\n", ["negative", "positive"]) == "positive"
    assert cls.map_answer("it is positive, not negative", ["negative", "positive"]) == "positive"  # earliest
    assert cls.map_answer("new york city", ["new", "new york"]) == "new york"  # same start: the longest
    assert cls.map_answer("positively", ["positive"]) == cls.INVALID  # whole words only
    assert cls.map_answer("nonpositive", ["positive"]) == cls.INVALID
    assert cls.map_answer("", ["positive"]) == cls.INVALID


def test_accuracy_macro_f1_and_the_confusion_matrix_by_hand() -> None:
    found = by_name(cls.ftp_evaluate(request(SENTIMENT_ANSWERS, SENTIMENT_REFS, ["accuracy", "macro_f1"],
                                             {"labels": LABELS})))
    accuracy, macro = found["accuracy"], found["macro_f1"]
    assert accuracy.scores == [1.0, 1.0, 0.0, 0.0, 1.0, 1.0] and accuracy.value == pytest.approx(4 / 6)
    assert accuracy.n == macro.n == 6 and accuracy.candidate == "fine-tuned" and accuracy.plugin is None
    # F1 per class: negative 1, neutral 2/(2+1+1), positive 2/3, __invalid__ 0 (one answer, no reference)
    assert macro.value == pytest.approx((1 + 0.5 + 2 / 3 + 0) / 4) == pytest.approx(13 / 24)
    details = accuracy.details
    assert details == macro.details
    assert details["confusion_matrix"] == {"labels": ["negative", "neutral", "positive", "__invalid__"],
                                           "matrix": [[2, 0, 0, 0],   # reference negative
                                                      [0, 1, 0, 1],   # reference neutral: "no idea" invalid
                                                      [0, 1, 1, 0],   # reference positive: one said neutral
                                                      [0, 0, 0, 0]]}
    assert details["invalid"] == 1
    assert details["labels"] == {"set": LABELS, "source": "evaluate.labels"}
    assert set(details["per_class"]) == {"negative", "neutral", "positive", "__invalid__"}
    assert details["per_class"]["positive"] == {"precision": 1.0, "recall": 0.5, "f1-score": pytest.approx(2 / 3),
                                                "support": 2}
    assert details["per_class"]["__invalid__"]["support"] == 0
    json.dumps(details)  # the report writes it


def test_macro_f1_equals_sklearn_on_the_whole_set_and_on_resamples() -> None:
    from sklearn.metrics import f1_score

    rng = random.Random(7)
    labels = ["a", "b", "c", "d"]
    refs = [rng.choice(labels) for _ in range(60)]
    answers = [r if rng.random() < 0.5 else rng.choice(labels + ["???", "b or c"]) for r in refs]
    macro = cls.ftp_evaluate(request(answers, refs, ["macro_f1"]))[0]
    mapped = [cls.map_answer(a, labels) for a in answers]
    assert cls.INVALID in mapped and mapped != refs
    assert macro.value == pytest.approx(f1_score(refs, mapped, average="macro", zero_division=0))
    for _ in range(5):
        rows = [rng.randrange(8) for _ in range(8)]  # small: some classes drop out of the resample
        expected = f1_score([refs[i] for i in rows], [mapped[i] for i in rows], average="macro", zero_division=0)
        assert resampled(macro, rows) == pytest.approx(expected)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_per_class_report_and_confusion_matrix_equal_sklearns(seed: int) -> None:
    """Counted by hand (scikit-learn's import cost more than the metrics), so checked against it: random
    label sets with classes no answer names, answers outside the set, a reference outside it."""
    from sklearn.metrics import classification_report, confusion_matrix

    rng = random.Random(seed)
    labels = ["a", "b", "c", "d", "e"][: rng.randint(2, 5)]
    refs = [rng.choice(labels[:-1]) for _ in range(rng.randint(5, 80))] + ["zz"]  # the last label never the answer
    answers = [r if rng.random() < 0.6 else rng.choice(labels + ["???"]) for r in refs]
    details = cls.ftp_evaluate(request(answers, refs, ["accuracy"], {"labels": labels}))[0].details
    gold = [cls.reference_label(r, labels) for r in refs]
    mapped = [cls.map_answer(a, labels) for a in answers]
    present = [c for c in details["confusion_matrix"]["labels"] if c in set(gold) | set(mapped)]
    expected = classification_report(gold, mapped, labels=present, output_dict=True, zero_division=0)
    assert list(details["per_class"]) == present
    for key, row in expected.items():
        if isinstance(row, dict):
            ours = details["per_class"].get(key) or details["averages"][key]
            assert ours == {k: pytest.approx(v) for k, v in row.items()}, key
    assert set(details["averages"]) == {k for k, v in expected.items() if isinstance(v, dict)} - set(present)
    classes = details["confusion_matrix"]["labels"]
    assert details["confusion_matrix"]["matrix"] == confusion_matrix(gold, mapped, labels=classes).tolist()


def test_the_label_set_comes_from_settings_then_the_answer_format_then_the_references() -> None:
    refs = ["b", "a", "b"]
    assert cls.label_set({}, None, refs) == (["a", "b"], "references")
    label_format = AnswerFormat(kind="label", labels=["b", "a", "c"])
    assert cls.label_set({}, label_format, refs) == (["b", "a", "c"], "answer format")
    assert cls.label_set({"evaluate": {"labels": ["x", "X", "y"]}}, label_format, refs) == (["x", "y"], "evaluate.labels")
    # a reference outside the given labels is a class of its own, which no answer can reach
    accuracy = cls.ftp_evaluate(request(["x", "z"], ["x", "z"], ["accuracy"], {"labels": ["x", "y"]}))[0]
    assert accuracy.scores == [1.0, 0.0]
    assert accuracy.details["confusion_matrix"]["labels"] == ["x", "y", "z", "__invalid__"]


# --- extraction ---

RECORD_REFS = [
    json.dumps({"name": "Ann", "address": {"city": "Paris", "zip": [75, {"code": "A1"}]}, "qty": 3,
                "when": "2024-01-05"}),
    json.dumps({"name": "Bob", "qty": 2, "date": "2024-02-01"}),
    json.dumps({"name": "Cy", "qty": 1}),
    json.dumps({"name": "Di", "qty": 5}),
]
RECORD_ANSWERS = [
    # fenced; qty as a string and the date with a time: wrong exactly, right normalised
    '```json\n{"name": "Ann", "address": {"city": "Paris", "zip": [75, {"code": "A1"}]}, "qty": "3", '
    '"when": "2024-01-05T00:00:00"}\n```',
    # in prose; name in lower case, qty 2.0: wrong exactly, right normalised; date missing; note extra
    'Sure! Here is the record: {"name": "bob", "qty": 2.0, "note": "x"} Hope it helps {oops}',
    '{"qty": 1, "name": "Cy"}',  # perfect, in another key order
    "not json at all",  # every field wrong
]
FIELD_METRICS = ["json_parse_rate", "json_parse_rate_lenient", "field_accuracy", "field_f1_micro", "field_f1_macro",
                 "perfect_record_rate"]


def test_records_flatten_to_dotted_leaf_paths() -> None:
    assert ext.flatten({"a": {"b": [1, {"c": 2}]}}) == {"a.b[0]": 1, "a.b[1].c": 2}
    assert ext.flatten([{"x": None}, []]) == {"[0].x": None, "[1]": []}
    assert ext.flatten({"a": {}}) == {"a": {}}


def test_parsing_strict_and_lenient() -> None:
    assert ext.parse_strict(' {"a": 1}\n') == {"a": 1}
    assert ext.parse_strict("3") is None and ext.parse_strict('"x"') is None  # not a record
    assert ext.parse_strict(RECORD_ANSWERS[0]) is None
    assert ext.parse_lenient(RECORD_ANSWERS[0]) == json.loads(RECORD_REFS[0]) | {"qty": "3",
                                                                                "when": "2024-01-05T00:00:00"}
    assert ext.parse_lenient(RECORD_ANSWERS[1]) == {"name": "bob", "qty": 2.0, "note": "x"}
    assert ext.parse_lenient("the list [x] is [1, 2] long") == [1, 2]  # the first balanced one that is JSON
    assert ext.parse_lenient("{ never closed") is None
    assert ext.parse_lenient('Step [1] gives:\n```json\n{"a": 1}\n```') == {"a": 1}  # the fence before prose


def test_normalised_values() -> None:
    assert ext.same_normalised("3", 3) and ext.same_normalised(3.0, 3) and ext.same_normalised(" Paris ", "paris")
    assert ext.same_normalised("2024-01-05", "2024-01-05T00:00:00")
    assert not ext.same_exact("3", 3) and not ext.same_exact(3.0, 3) and ext.same_exact({"a": 1, "b": 2}, {"b": 2, "a": 1})
    assert not ext.same_normalised("2024-01-05", "2024-01-06") and not ext.same_normalised(True, 1)
    assert not ext.same_normalised("3", 4)


def test_extraction_metrics_by_hand() -> None:
    found = by_name(ext.ftp_evaluate(request(RECORD_ANSWERS, RECORD_REFS, FIELD_METRICS + ["schema_valid_rate"])))
    assert set(found) == set(FIELD_METRICS)  # no evaluate.json_schema: no schema_valid_rate
    assert found["json_parse_rate"].scores == [0.0, 0.0, 1.0, 0.0]
    assert found["json_parse_rate_lenient"].scores == [1.0, 1.0, 1.0, 0.0]
    assert found["field_accuracy"].scores == [pytest.approx(4 / 6), 0.0, 1.0, 0.0]
    assert found["field_accuracy"].value == pytest.approx(5 / 12)
    assert found["perfect_record_rate"].scores == [0.0, 0.0, 1.0, 0.0]
    # tp 6 (right), fp 6 wrong + 1 extra, fn 6 wrong + 1 missing
    assert found["field_f1_micro"].value == pytest.approx(12 / (12 + 7 + 7))
    # per field: 3 address fields 1, date 0, name 2*2/(4+2+2), qty 2*1/(2+3+3), when 0
    assert found["field_f1_macro"].value == pytest.approx((3 + 0 + 0.5 + 0.25 + 0) / 7)
    assert all(m.n == 4 and m.candidate == "fine-tuned" for m in found.values())
    details = found["field_accuracy"].details
    assert (details["missing"], details["wrong_value"], details["extra"]) == (1, 6, 1)
    fields = details["fields"]
    assert sorted(fields) == ["address.city", "address.zip[0]", "address.zip[1].code", "date", "name", "qty", "when"]
    assert fields["qty"] == {"accuracy": 0.25, "normalized_accuracy": 0.75, "presence": 0.75, "missing": 0,
                             "wrong": 3, "extra": 0, "n": 4}
    assert fields["name"] == {"accuracy": 0.5, "normalized_accuracy": 0.75, "presence": 0.75, "missing": 0,
                              "wrong": 2, "extra": 0, "n": 4}
    assert fields["date"] == {"accuracy": 0.0, "normalized_accuracy": 0.0, "presence": 0.0, "missing": 1,
                              "wrong": 0, "extra": 0, "n": 1}
    assert fields["when"]["normalized_accuracy"] == 1.0 and fields["when"]["accuracy"] == 0.0
    assert fields["address.zip[1].code"]["accuracy"] == 1.0
    json.dumps(details)


def test_field_f1_resamples_equal_the_metric_on_the_resampled_examples() -> None:
    found = by_name(ext.ftp_evaluate(request(RECORD_ANSWERS, RECORD_REFS, ["field_f1_micro", "field_f1_macro"])))
    for rows in ([1, 1, 3], [0, 2], [2, 2, 2, 1]):
        again = by_name(ext.ftp_evaluate(request([RECORD_ANSWERS[i] for i in rows], [RECORD_REFS[i] for i in rows],
                                                 ["field_f1_micro", "field_f1_macro"])))
        for name in again:
            assert resampled(found[name], rows) == pytest.approx(again[name].value), (name, rows)
    assert resampled(found["field_f1_macro"], [1]) == pytest.approx(0.0)  # name, qty wrong, date missing


def test_an_extra_field_another_reference_has_counts_against_that_field() -> None:
    refs, answers = ['{"a": 1}', '{"a": 1, "b": 2}'], ['{"a": 1, "b": 2}', '{"a": 1, "b": 2}']
    found = by_name(ext.ftp_evaluate(request(answers, refs, ["field_f1_micro", "field_f1_macro", "field_accuracy"])))
    assert found["field_f1_micro"].value == pytest.approx(6 / 7)  # tp 3, fp 1 (b extra in the first), fn 0
    assert found["field_f1_macro"].value == pytest.approx((1 + 2 / 3) / 2)  # b: tp 1, fp 1
    assert found["field_accuracy"].scores == [1.0, 1.0]
    assert found["field_accuracy"].details["fields"]["b"]["extra"] == 1


def test_schema_validity_against_a_real_schema_file(tmp_path: Path) -> None:
    schema = tmp_path / "record.schema.json"
    schema.write_text(json.dumps({"type": "object", "required": ["name", "qty"],
                                  "properties": {"name": {"type": "string"}, "qty": {"type": "number"}}}))
    found = ext.ftp_evaluate(request(RECORD_ANSWERS, RECORD_REFS, ["schema_valid_rate"], {"json_schema": str(schema)}))
    assert [(m.name, m.scores) for m in found] == [("schema_valid_rate", [0.0, 1.0, 1.0, 0.0])]  # "3" is no number
    with pytest.raises(UserError, match="evaluate.json_schema.*not found"):
        ext.ftp_evaluate(request(RECORD_ANSWERS, RECORD_REFS, ["schema_valid_rate"],
                                 {"json_schema": str(tmp_path / "absent.json")}))
    schema.write_text(json.dumps({"type": "no-such-type"}))
    with pytest.raises(UserError, match="evaluate.json_schema.*not a valid JSON Schema"):
        ext.ftp_evaluate(request(RECORD_ANSWERS, RECORD_REFS, ["schema_valid_rate"], {"json_schema": str(schema)}))
    schema.write_text("{not json")
    with pytest.raises(UserError, match="evaluate.json_schema"):
        ext.ftp_evaluate(request(RECORD_ANSWERS, RECORD_REFS, ["schema_valid_rate"], {"json_schema": str(schema)}))


# --- format compliance ---


def compliance(answers: list[str], evaluate: dict[str, Any] | None = None, answer_format: AnswerFormat | None = None,
               references: list[str] | None = None) -> Metric:
    refs = references or ["x"] * len(answers)
    return fmt.ftp_evaluate(request(answers, refs, ["format_compliance"], evaluate, answer_format))[0]


def test_format_compliance_for_each_kind() -> None:
    regex = compliance(["ABC-12", " XYZ-3 \n", "abc-1", "ABC-12 extra"], {"format_regex": r"[A-Z]{3}-\d+"},
                       AnswerFormat(kind="label", labels=["ABC-12"]))  # the regex wins over the kind
    assert regex.scores == [1.0, 1.0, 0.0, 0.0] and "format_regex" in regex.details["format"]
    label = compliance(["Yes", " no ", "maybe", "yes."], answer_format=AnswerFormat(kind="label", labels=["yes", "no"]))
    assert label.scores == [1.0, 1.0, 0.0, 0.0] and label.value == 0.5
    keyed = AnswerFormat(kind="json", keys=["a", "b"])
    as_json = compliance(['{"b": 1, "a": 2}', '{"a": 1}', "[1]", '```json\n{"a": 1, "b": 2}\n```',
                          '{"a": 1, "b": 2, "c": 3}'], answer_format=keyed)
    assert as_json.scores == [1.0, 0.0, 0.0, 0.0, 0.0] and as_json.details == {
        "format": "a JSON object with exactly the keys a, b"}
    assert compliance(["{}", "[1]", "{"], answer_format=AnswerFormat(kind="json")).scores == [1.0, 0.0, 0.0]
    pattern = compliance(["3 items", "three items"], answer_format=AnswerFormat(kind="text", pattern=r"\d+ items"))
    assert pattern.scores == [1.0, 0.0]
    assert compliance(["hi", "  \n"], answer_format=AnswerFormat(kind="text")).scores == [1.0, 0.0]
    with pytest.raises(UserError, match="evaluate.format_regex"):
        compliance(["a"], {"format_regex": "("})


def test_without_an_answer_format_the_format_is_read_off_the_references() -> None:
    assert fmt.guess_format(['{"a": 1}', '{"a": 2}', "oops"]) == AnswerFormat(
        kind="json", keys=["a"], share=2 / 3, reason="2 of 3 references are JSON objects")
    assert fmt.guess_format(["yes", "no", "yes", "no"]).labels == ["no", "yes"]
    assert fmt.guess_format(["a long free answer", "another one"]).kind == "text"
    found = compliance(['{"a": 5}', '{"b": 1}', "a"], references=['{"a": 1}', '{"a": 2}', '{"a": 3}'])
    assert found.scores == [1.0, 0.0, 0.0] and "read off the references" in found.details["format"]


# --- through the hook ---


def test_the_builtin_plugins_answer_through_the_real_hook() -> None:
    hooks = default_hooks()
    declared = hooks.metrics()
    ours = ["accuracy", "macro_f1", "format_compliance", *FIELD_METRICS, "schema_valid_rate"]
    assert all(declared[name].description for name in ours)
    found = [m for m in hooks.evaluate(request(SENTIMENT_ANSWERS, SENTIMENT_REFS, ["accuracy", "macro_f1",
                                                                                     "format_compliance"],
                                               answer_format=AnswerFormat(kind="label", labels=LABELS)))
             if m.name in ours]
    assert {(m.name, m.plugin) for m in found} == {("accuracy", "ftp.plugins.classification_metrics"),
                                                    ("macro_f1", "ftp.plugins.classification_metrics"),
                                                    ("format_compliance", "ftp.plugins.format_metrics")}
    got = by_name(found)
    assert got["accuracy"].value == pytest.approx(4 / 6) and got["macro_f1"].value == pytest.approx(13 / 24)
    assert resampled(got["macro_f1"], list(range(6))) == pytest.approx(13 / 24)  # from_stats survives the stamp
    assert got["format_compliance"].scores == [1.0, 0.0, 0.0, 1.0, 1.0, 0.0]
    records = by_name(m for m in hooks.evaluate(request(RECORD_ANSWERS, RECORD_REFS, FIELD_METRICS))
                      if m.plugin == "ftp.plugins.extraction_metrics")
    assert set(records) == set(FIELD_METRICS) and records["field_f1_micro"].value == pytest.approx(12 / 26)
