"""Hostile and malformed data lines through every command that reads data: each is a finding (or one
UserError line) naming the file and line, exit 2, and never a traceback.

The files are the corpus's hostile cases (tests/test_data_corpus.py HOSTILE): nesting 100,000 deep,
5,000-digit numbers, NaN, lone surrogates, repeated keys, malformed content parts and tool calls.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import invoke
from test_data_corpus import CORPUS, HOSTILE

from ftp.data.files import iter_jsonl, message_text
from ftp.errors import UserError
from ftp.json_safe import MAX_DEPTH, JsonLineError, loads_line, nesting_depth

PARSER_CODES = {"too-deep", "number-too-long", "nan-value", "lone-surrogate", "duplicate-key"}
NAMES = [c[0] for c in HOSTILE]
PARSER_REFUSED = [c[0] for c in HOSTILE if c[3][0][1] in PARSER_CODES]


def code_of(name: str) -> str:
    return next(c[3][0][1] for c in HOSTILE if c[0] == name)


def no_traceback(result: object) -> str:
    text = result.output + result.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in text, text[-3000:]
    return text


# --- the parser ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, code", [
    ("[" * 1_000_000, "too-deep"),
    ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "too-deep"),
    ('{"a": ' + "7" * 4301 + "}", "number-too-long"),
    ('{"a": -' + "7" * 101 + "}", "number-too-long"),
    ('{"a": 1e400}', "nan-value"),
    ('{"a": -Infinity}', "nan-value"),
    ('{"a": 1, "b": {"c": 1, "c": 2}}', "duplicate-key"),
    ('{"a": ["ok", "\\udfff"]}', "lone-surrogate"),
    ('{"a": "x"', "invalid-json"),
])
def test_loads_line_refuses_with_a_code(text: str, code: str) -> None:
    with pytest.raises(JsonLineError) as info:
        loads_line(text)
    assert info.value.code == code


@pytest.mark.parametrize("text", [
    "[" * MAX_DEPTH + "]" * MAX_DEPTH,
    json.dumps({"a": "[" * 10_000 + '\\"]}' * 100}),  # brackets and escaped quotes inside a string
    '{"a": ' + "7" * 100 + ', "b": 1.5e300, "c": -0.0}',
    '{"a": "\\ud83d\\ude00 and \\\\ud800 as plain text"}',
])
def test_loads_line_accepts_what_is_fine(text: str) -> None:
    assert loads_line(text) == json.loads(text)


def test_nesting_depth_ignores_brackets_in_strings() -> None:
    assert nesting_depth('["' + "[" * 500 + '\\"' + "{" * 500 + '"]') <= 1
    assert nesting_depth("[" * 100 + '"]]]"' + "]" * 100) == 100


def test_message_text_skips_parts_without_string_text() -> None:
    parts = [{"type": "text", "text": "a"}, {"type": "text", "text": 5}, "b", {"type": "image_url"}, None]
    assert message_text(parts) == "a"


# --- every command on every hostile file -----------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_data_split_refuses_a_hostile_file_in_one_line(name: str, tmp_path: Path) -> None:
    result = invoke("data", "split", str(CORPUS / name), "--out", str(tmp_path / "out"))
    text = no_traceback(result)
    assert result.exit_code == 2
    assert f"{name}: " in result.stderr and "error(s) in the data" in result.stderr, text
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", PARSER_REFUSED)
def test_iter_jsonl_names_file_and_line(name: str) -> None:
    with pytest.raises(UserError) as info:
        list(iter_jsonl(CORPUS / name))
    assert f"{name}:2: " in str(info.value) and f"[{code_of(name)}]" in str(info.value)


@pytest.mark.parametrize("name", PARSER_REFUSED)
def test_the_split_hook_without_validation_is_a_user_error(name: str, tmp_path: Path) -> None:
    """``ftp run --steps split`` skips validation: the split still refuses the line, naming it."""
    from ftp.data.files import dataset_ref
    from ftp.hooks import default_hooks

    with pytest.raises(UserError, match=f"{name}:2: "):
        default_hooks().split(dataset_ref(CORPUS / name), (0.8, 0.1, 0.1), 42, tmp_path)


def with_hostile_lines(project: Path, *names: str) -> list[int]:
    """Append line 2 of each corpus file to the project's 60 good examples; the lines they landed on."""
    train = project / "data" / "train.jsonl"
    good = train.read_bytes()
    hostile = [(CORPUS / n).read_bytes().splitlines(keepends=True)[1] for n in names]
    train.write_bytes(good + b"".join(hostile))
    first = good.count(b"\n") + 1
    return list(range(first, first + len(names)))


def test_ftp_validate_reports_each_hostile_line(project: Path) -> None:
    """One validate over every hostile line, with the model's real tokenizer counting tokens (where the
    lone surrogate used to crash)."""
    lines = with_hostile_lines(project, *NAMES)
    result = invoke("validate", "pipeline.yaml", "--json")
    no_traceback(result)
    assert result.exit_code == 2
    findings = json.loads(result.output)["findings"]
    got = {(f["code"], f["line"]) for f in findings if f["severity"] == "error"}
    expected = {(code_of(n), line) for n, line in zip(NAMES, lines)}
    assert expected <= got, sorted(expected - got)


def test_ftp_run_stops_at_validate_with_exit_2(project: Path) -> None:
    lines = with_hostile_lines(project, "deep_nesting_100k.jsonl", "number_5000_digits.jsonl",
                               "lone_surrogate_high.jsonl", "nan_value.jsonl", "duplicate_messages_key.jsonl",
                               "content_part_text_not_string.jsonl", "tool_calls_not_list.jsonl")
    result = invoke("run", "pipeline.yaml")
    text = no_traceback(result)
    assert result.exit_code == 2, text[-2000:]
    assert "validate" in result.stderr and "error(s) in the data" in result.stderr
    assert "RecursionError" not in text and "ValueError" not in text
    for line, code in zip(lines, ("too-deep", "number-too-long", "lone-surrogate", "nan-value", "duplicate-key",
                                  "bad-content-part", "bad-tool-calls")):
        assert f"train.jsonl:{line}: error:" in result.output and f"[{code}]" in result.output
    run_dir = next((project / "runs" / "tiny").iterdir())
    state = json.loads((run_dir / "state.json").read_text())
    assert state["steps"]["validate"]["status"] == "failed" and state["steps"]["split"]["status"] == "pending"


def test_ftp_run_steps_split_without_validate_names_the_line(project: Path) -> None:
    [line] = with_hostile_lines(project, "deep_nesting_100k.jsonl")
    result = invoke("run", "pipeline.yaml", "--steps", "split")
    no_traceback(result)
    assert result.exit_code == 2
    assert f"train.jsonl:{line}: " in result.stderr and "[too-deep]" in result.stderr


def test_a_hostile_validation_file_is_reported_too(tmp_path: Path) -> None:
    train = tmp_path / "train.jsonl"
    shutil.copy(CORPUS / "eighty_examples.jsonl", train)
    result = invoke("data", "check", str(train), "--validation", str(CORPUS / "lone_surrogate_low.jsonl"),
                    "--json")
    no_traceback(result)
    assert result.exit_code == 2
    findings = json.loads(result.output)["findings"]
    assert any(f["code"] == "lone-surrogate" and f["line"] == 2 and f["file"].endswith("lone_surrogate_low.jsonl")
               for f in findings)
