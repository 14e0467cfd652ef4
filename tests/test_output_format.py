"""The output-format check: the dominant answer shape, its outliers with lines, labels, lists, lengths, settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import write_jsonl

from ftp.data.checks import Record
from ftp.data.files import dataset_ref
from ftp.plugins.output_format import OutputFormatCheck, OutputFormatSettings, classify, final_answer
from ftp.types import Finding


def chat(answer: Any, prompt: str = "q") -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]}


def run_check(path: Path, **settings: Any) -> tuple[list[Finding], dict[str, Any]]:
    """The check on its own, fed the way the scanner feeds it."""
    from ftp.data.scan import read_records

    check = OutputFormatCheck(OutputFormatSettings(**settings))
    ref = dataset_ref(path, "train")
    found: list[Finding] = list(check.begin(ref) or [])
    for record in read_records(ref):
        found += check.observe(record) or []
    found += check.finish() + check.overflow()
    return found, check.summary()


def report(path: Path, settings: dict[str, Any] | None = None):
    """Every data check, through the real plugin manager."""
    from ftp.data.check import check_data
    from ftp.hooks import Hooks
    from ftp.plugin_manager import get_plugin_manager
    from ftp.types import DataBundle

    return check_data(Hooks(get_plugin_manager()), DataBundle(train=dataset_ref(path, "train")),
                      settings or {}, "local")


def mine(findings: list[Finding], *codes: str) -> list[tuple[int | None, str, str]]:
    return [(f.line, f.code, f.severity) for f in findings if f.code in codes]


def ticket(i: int) -> str:
    return json.dumps({"category": ["billing", "bug"][i % 2], "priority": "high", "product": f"p{i % 5}"})


def test_json_objects_dominant_flags_missing_key_and_free_text_with_lines(tmp_path: Path) -> None:
    rows = [chat(ticket(i)) for i in range(40)]
    rows[6] = chat(json.dumps({"category": "bug", "product": "p1"}))  # line 7: priority missing
    rows[12] = chat(json.dumps({"category": "bug", "priority": "low", "product": "p1", "urgency": 2}))  # line 13
    rows[20] = chat("Sorry, I cannot classify this ticket.")  # line 21
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    rep = report(path)  # the real plugin manager: the check is registered and runs in the scan
    assert mine(rep.findings, "format-outlier") == [(7, "format-outlier", "warning"),
                                                   (13, "format-outlier", "warning"),
                                                   (21, "format-outlier", "warning")]
    by_line = {f.line: f for f in rep.findings if f.code == "format-outlier"}
    assert all(f.file == str(path) and f.plugin == "ftp.plugins.output_format" for f in by_line.values())
    common = "; 92% of answers are JSON objects with keys category, priority, product"
    assert by_line[7].message == "answer is a JSON object missing key priority" + common
    assert by_line[13].message == "answer is a JSON object extra key urgency" + common
    assert by_line[21].message == "answer is free text" + common
    info = [f for f in rep.findings if f.code == "output-format"]
    assert len(info) == 1 and info[0].severity == "info"
    assert info[0].message == "answers are JSON objects with keys category, priority, product (92% of 40)"
    s = rep.summaries["output_format"]
    assert s["format"] == "a JSON object with keys category, priority, product" and s["outliers"] == 3
    assert s["shapes"][0] == {"shape": "a JSON object with keys category, priority, product", "count": 37}
    assert set(s["words"]) == {"min", "median", "p90", "max"}


def test_missing_and_extra_keys_are_both_named(tmp_path: Path) -> None:
    rows = [chat(ticket(i)) for i in range(20)]
    rows[3] = chat(json.dumps({"category": "bug", "team": "x"}))
    found, _ = run_check(write_jsonl(tmp_path / "d.jsonl", rows))
    [f] = [f for f in found if f.code == "format-outlier"]
    assert f.line == 4 and f.message.startswith(
        "answer is a JSON object missing keys priority, product and extra key team; 95% of answers")


def test_label_set_dominant_flags_an_out_of_set_label(tmp_path: Path) -> None:
    labels = ["positive", "negative", "neutral"]
    rows = [chat(labels[i % 3].capitalize() if i % 4 == 0 else labels[i % 3]) for i in range(30)]
    rows.insert(9, chat("mixed"))  # line 10
    found, summary = run_check(write_jsonl(tmp_path / "d.jsonl", rows))
    assert mine(found, "format-outlier") == [(10, "format-outlier", "warning")]
    [f] = [f for f in found if f.code == "format-outlier"]
    assert f.message == ('answer "mixed" is not one of the labels; 97% of answers are one of 3 labels '
                         "(negative, neutral, positive)")
    assert summary["labels"] == ["negative", "neutral", "positive"] and summary["outliers"] == 1
    assert summary["format"] == "one of 3 labels (negative, neutral, positive)"


def test_numbered_list_dominant(tmp_path: Path) -> None:
    rows = [chat(f"Steps:\n1. open item {i}\n2. check it\n3) close it") for i in range(15)]
    rows.append(chat("- just a bullet\n- and another"))  # line 16
    rows.append(chat("Just do it, and then report back to the team."))  # line 17
    found, summary = run_check(write_jsonl(tmp_path / "d.jsonl", rows))
    assert mine(found, "format-outlier") == [(16, "format-outlier", "warning"), (17, "format-outlier", "warning")]
    assert [f.message for f in found if f.code == "format-outlier"] == [
        "answer is a bulleted list; 88% of answers are numbered lists",
        "answer is free text; 88% of answers are numbered lists"]
    assert summary["format"] == "a numbered list" and summary["enforced"]


def test_no_dominant_format_is_one_info(tmp_path: Path) -> None:
    rows = [chat(ticket(i)) for i in range(10)] + [chat(f"Free text answer number {i} here.") for i in range(8)]
    rows += [chat("1. a\n2. b") for _ in range(4)]
    found, summary = run_check(write_jsonl(tmp_path / "d.jsonl", rows))
    assert [(f.code, f.severity) for f in found] == [("no-consistent-format", "info")]
    assert found[0].message == ("the 22 answers have no consistent format: 45% JSON objects with keys category, "
                                "priority, product, 36% free text, 18% numbered lists")
    assert summary["outliers"] == 0 and not summary["enforced"]
    assert [s["count"] for s in summary["shapes"]] == [10, 8, 4]


def test_free_text_length_outliers(tmp_path: Path) -> None:
    rows = [chat(" ".join(["word"] * (20 + i % 5)) + ".") for i in range(30)]
    rows[4] = chat(" ".join(["long"] * 200))  # line 5: > 4x the median of 22
    rows[17] = chat("Too short, okay? Fine.")  # line 18: 4 words < 22 / 4
    found, summary = run_check(write_jsonl(tmp_path / "d.jsonl", rows))
    assert mine(found, "format-outlier", "length-outlier") == [(5, "length-outlier", "info"),
                                                               (18, "length-outlier", "info")]
    msgs = [f.message for f in found if f.code == "length-outlier"]
    assert msgs == ["answer of 200 words, over 4x the median of 22 words",
                    "answer of 4 words, under 1/4 of the median of 22 words"]
    assert summary["format"] == "free text" and summary["length_outliers"] == 2
    assert summary["words"]["max"] == 200 and summary["words"]["min"] == 4


def test_outlier_listing_is_capped(tmp_path: Path) -> None:
    rows = [chat(ticket(i)) for i in range(200)]
    for i in range(0, 200, 20):
        rows[i] = chat("plain words")
    found, summary = run_check(write_jsonl(tmp_path / "d.jsonl", rows), max_outliers_listed=3)
    assert [f.line for f in found if f.code == "format-outlier"] == [1, 21, 41]
    [more] = [f for f in found if f.code == "format-outliers-not-listed"]
    assert more.message.startswith("7 more answers") and summary["outliers"] == 10


def test_turned_off_and_severity_override(tmp_path: Path) -> None:
    rows = [chat(ticket(i)) for i in range(20)] + [chat("free text")]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    on = report(path)
    assert [f.line for f in on.findings if f.code == "format-outlier"] == [21]
    off = report(path, {"validate": {"output_format": {"enabled": False}}})
    assert not [f for f in off.findings if f.plugin == "ftp.plugins.output_format"]
    assert "output_format" not in off.summaries
    err = report(path, {"validate": {"output_format": "error"}})
    assert [f.severity for f in err.findings if f.code == "format-outlier"] == ["error"]


def test_min_share_and_min_examples(tmp_path: Path) -> None:
    rows = [chat(ticket(i)) for i in range(17)] + [chat("free text here") for _ in range(3)]  # 85%
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    assert len(mine(run_check(path)[0], "format-outlier")) == 3
    assert mine(run_check(path, min_share=0.9)[0], "format-outlier") == []
    few = write_jsonl(tmp_path / "few.jsonl", rows[:4] + rows[-1:])
    assert run_check(few)[0] == []


@pytest.mark.parametrize("answer, shape", [
    ('{"b": 1, "a": 2}', ("object", ("a", "b"))),
    ("[1, 2]", ("array",)),
    ('"quoted"', ("json", "str")),
    ("{not json}", ("bad-json",)),
    ("```json\n{\"a\": 1}\n```", ("code", "json")),
    ("* one\n* two\n* three", ("bulleted",)),
    ("1) one\n2) two", ("numbered",)),
    ("Positive.", ("text",)),
    ("   ", ("empty",)),
])
def test_classify(answer: str, shape: tuple) -> None:
    assert classify(answer)[0] == shape


def test_final_answer_reads_parts_and_the_last_assistant_turn() -> None:
    ex = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "first"},
                       {"role": "user", "content": "b"},
                       {"role": "assistant", "content": [{"type": "text", "text": '{"a":'}, {"type": "text", "text": " 1}"}]}]}
    assert final_answer(ex) == '{"a": 1}'
    assert final_answer({"prompt": "p", "completion": "c"}) == "c"
    assert final_answer({"messages": [{"role": "user", "content": "x"}]}) is None
    assert final_answer([1]) is None


def test_state_is_compact_per_answer() -> None:
    check = OutputFormatCheck(OutputFormatSettings())
    for i in range(5000):
        check.observe(Record(file="f", split=None, line=i + 1, raw=b"", example=chat(f"free text {i} " * 3)))
    assert len(check.a_line) == 5000 and check.a_line.itemsize <= 4
    assert len(check.shapes) == 1 and len(check.values) == 0
