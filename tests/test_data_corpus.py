"""The malformed-data corpus: every file in tests/data/corpus gets its exact finding, line and exit code
from ``ftp data check``, and none produces a traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import invoke

CORPUS = Path(__file__).parent / "data" / "corpus"
NO_QUANTITY = ("--disable", "quantity")

# file, extra options, exit code, findings that must be there: (severity, code, line)
CASES: list[tuple[str, tuple[str, ...], int, list[tuple[str, str, int | None]]]] = [
    ("empty.jsonl", (), 2, [("error", "empty-file", None)]),
    ("only_blank_lines.jsonl", (), 2, [("error", "empty-file", None), ("info", "blank-lines", 1)]),
    ("bom.jsonl", NO_QUANTITY, 0, [("info", "bom", 1)]),
    ("crlf.jsonl", NO_QUANTITY, 0, [("info", "crlf", None)]),
    ("mixed_line_endings.jsonl", NO_QUANTITY, 0, [("info", "crlf", None)]),
    ("blank_lines.jsonl", NO_QUANTITY, 0, [("info", "blank-lines", 2)]),
    ("invalid_utf8.jsonl", NO_QUANTITY, 2, [("error", "not-utf8", 2)]),
    ("latin1.jsonl", NO_QUANTITY, 2, [("error", "not-utf8", 2)]),
    ("truncated_last_line.jsonl", NO_QUANTITY, 2, [("error", "truncated-last-line", 3)]),
    ("json_array_pretty.jsonl", NO_QUANTITY, 2, [("error", "json-array", 1)]),
    ("json_array_one_line.jsonl", NO_QUANTITY, 2, [("error", "json-array", 1)]),
    ("not_object_number.jsonl", NO_QUANTITY, 2, [("error", "not-object", 2)]),
    ("not_object_string.jsonl", NO_QUANTITY, 2, [("error", "not-object", 2)]),
    ("null_line.jsonl", NO_QUANTITY, 2, [("error", "invalid-json", 2)]),
    ("trailing_comma.jsonl", NO_QUANTITY, 2, [("error", "invalid-json", 2)]),
    ("python_repr.jsonl", NO_QUANTITY, 2, [("error", "invalid-json", 2)]),
    ("prompt_completion.jsonl", NO_QUANTITY, 2, [("error", "no-messages", 2)]),
    ("messages_not_list.jsonl", NO_QUANTITY, 2, [("error", "no-messages", 2)]),
    ("messages_empty.jsonl", NO_QUANTITY, 2, [("error", "no-messages", 2)]),
    ("empty_object.jsonl", NO_QUANTITY, 2, [("error", "no-messages", 2)]),
    ("message_not_object.jsonl", NO_QUANTITY, 2, [("error", "message-not-object", 2)]),
    ("bad_role.jsonl", NO_QUANTITY, 2, [("error", "bad-role", 2)]),
    ("missing_role.jsonl", NO_QUANTITY, 2, [("error", "bad-role", 2)]),
    ("unknown_message_key.jsonl", NO_QUANTITY, 2, [("error", "unknown-key", 2), ("error", "missing-content", 2)]),
    ("content_number.jsonl", NO_QUANTITY, 2, [("error", "bad-content", 2)]),
    ("missing_content.jsonl", NO_QUANTITY, 2, [("error", "missing-content", 2)]),
    ("system_not_first.jsonl", NO_QUANTITY, 2, [("error", "system-not-first", 2)]),
    ("no_assistant.jsonl", NO_QUANTITY, 2, [("error", "no-assistant", 2)]),
    ("last_not_assistant.jsonl", NO_QUANTITY, 2, [("error", "last-not-assistant", 2)]),
    ("weight_two.jsonl", NO_QUANTITY, 2, [("error", "bad-weight", 2)]),
    ("weight_on_user.jsonl", NO_QUANTITY, 2, [("error", "bad-weight", 2)]),
    ("preference_dpo.jsonl", NO_QUANTITY, 2, [("error", "preference-data", 1)]),
    ("tool_calls_valid.jsonl", NO_QUANTITY, 0, []),
    ("content_parts_valid.jsonl", NO_QUANTITY, 0, []),
    ("unicode_valid.jsonl", NO_QUANTITY, 0, []),
    ("several_problems.jsonl", NO_QUANTITY, 2, [("error", "invalid-json", 2), ("info", "blank-lines", 3),
                                                ("error", "no-assistant", 4), ("error", "not-object", 6)]),
    ("nine_examples.jsonl", (), 2, [("error", "too-few-examples", None)]),
    ("thirty_examples.jsonl", (), 0, [("warning", "few-examples", None)]),
    ("thirty_examples.jsonl", ("--strict",), 1, [("warning", "few-examples", None)]),
    ("eighty_examples.jsonl", (), 0, [("warning", "few-examples", None)]),
    ("over_azure_limit.jsonl", ("--backend", "azure", *NO_QUANTITY), 0, [("warning", "too-long", 2)]),
    ("bom.jsonl", ("--provenance", "synthetic", *NO_QUANTITY), 0, [("warning", "synthetic-only", None)]),
    ("leak_train.jsonl", ("--test", str(CORPUS / "leak_test.jsonl")), 0, [("warning", "leakage", 2)]),
    ("pii_email.jsonl", NO_QUANTITY, 0, [("warning", "pii-email", 3)]),
    ("pii_email.jsonl", (*NO_QUANTITY, "--strict"), 1, [("warning", "pii-email", 3)]),
    ("pii_card.jsonl", NO_QUANTITY, 0, [("warning", "pii-credit-card", 5)]),
    ("pii_iban.jsonl", NO_QUANTITY, 0, [("warning", "pii-iban", 2)]),
    ("secret_private_key.jsonl", NO_QUANTITY, 2, [("error", "secret-private-key", 4)]),
    ("secret_aws_key.jsonl", NO_QUANTITY, 2, [("error", "secret-aws-access-key", 6)]),
    ("duplicates_exact.jsonl", NO_QUANTITY, 0, [("info", "duplicate-inputs", 3), ("warning", "duplicate-share", None)]),
    ("near_duplicates.jsonl", NO_QUANTITY, 0, [("info", "near-duplicate-inputs", 5)]),
    ("format_outlier.jsonl", NO_QUANTITY, 0, [("warning", "format-outlier", 9), ("warning", "format-outlier", 11)]),
    # hostile lines: refused by the strict parser (ftp.json_safe) before json.loads can crash or accept them
    ("deep_nesting_100k.jsonl", NO_QUANTITY, 2, [("error", "too-deep", 2)]),
    ("deep_nesting_5000.jsonl", NO_QUANTITY, 2, [("error", "too-deep", 2)]),
    ("deep_nesting_objects.jsonl", NO_QUANTITY, 2, [("error", "too-deep", 2)]),
    ("deep_nesting_in_content.jsonl", NO_QUANTITY, 2, [("error", "too-deep", 2)]),
    ("deep_nesting_unclosed.jsonl", NO_QUANTITY, 2, [("error", "too-deep", 2)]),
    ("deep_nesting_over_limit.jsonl", NO_QUANTITY, 2, [("error", "too-deep", 2)]),
    ("deep_nesting_at_limit.jsonl", NO_QUANTITY, 0, []),
    ("brackets_in_strings.jsonl", NO_QUANTITY, 0, []),
    ("number_5000_digits.jsonl", NO_QUANTITY, 2, [("error", "number-too-long", 2)]),
    ("number_negative_5000_digits.jsonl", NO_QUANTITY, 2, [("error", "number-too-long", 2)]),
    ("number_float_5000_digits.jsonl", NO_QUANTITY, 2, [("error", "number-too-long", 2)]),
    ("number_overflow_float.jsonl", NO_QUANTITY, 2, [("error", "nan-value", 2)]),
    ("number_long_but_fine.jsonl", NO_QUANTITY, 0, []),
    ("nan_value.jsonl", NO_QUANTITY, 2, [("error", "nan-value", 2)]),
    ("infinity_value.jsonl", NO_QUANTITY, 2, [("error", "nan-value", 2)]),
    ("negative_infinity_value.jsonl", NO_QUANTITY, 2, [("error", "nan-value", 2)]),
    ("lone_surrogate_high.jsonl", NO_QUANTITY, 2, [("error", "lone-surrogate", 2)]),
    ("lone_surrogate_low.jsonl", NO_QUANTITY, 2, [("error", "lone-surrogate", 2)]),
    ("surrogates_reversed.jsonl", NO_QUANTITY, 2, [("error", "lone-surrogate", 2)]),
    ("lone_surrogate_in_key.jsonl", NO_QUANTITY, 2, [("error", "lone-surrogate", 2)]),
    ("surrogate_pair_valid.jsonl", NO_QUANTITY, 0, []),
    ("duplicate_messages_key.jsonl", NO_QUANTITY, 2, [("error", "duplicate-key", 2)]),
    ("duplicate_role_key.jsonl", NO_QUANTITY, 2, [("error", "duplicate-key", 2)]),
    ("duplicate_key_in_part.jsonl", NO_QUANTITY, 2, [("error", "duplicate-key", 2)]),
    # message structure the format check used to accept (or, for a list role, crash on)
    ("role_list.jsonl", NO_QUANTITY, 2, [("error", "bad-role", 2)]),
    ("role_object.jsonl", NO_QUANTITY, 2, [("error", "bad-role", 2)]),
    ("content_parts_images_only.jsonl", NO_QUANTITY, 0, [("warning", "no-text-content", 2)]),
    ("content_parts_answer_images_only.jsonl", NO_QUANTITY, 2, [("error", "no-text-content", 2)]),
    ("content_parts_empty_list.jsonl", NO_QUANTITY, 2, [("error", "no-text-content", 2)]),
    ("content_part_not_object.jsonl", NO_QUANTITY, 2, [("error", "bad-content-part", 2)]),
    ("content_part_no_type.jsonl", NO_QUANTITY, 2, [("error", "bad-content-part", 2)]),
    ("content_part_unknown_type.jsonl", NO_QUANTITY, 2, [("error", "bad-content-part", 2)]),
    ("content_part_text_not_string.jsonl", NO_QUANTITY, 2, [("error", "bad-content-part", 2)]),
    ("content_parts_image_and_text.jsonl", NO_QUANTITY, 0, []),
    ("tool_calls_not_list.jsonl", NO_QUANTITY, 2, [("error", "bad-tool-calls", 2)]),
    ("tool_calls_entry_not_object.jsonl", NO_QUANTITY, 2, [("error", "bad-tool-calls", 2)]),
    ("tool_calls_no_function.jsonl", NO_QUANTITY, 2, [("error", "bad-tool-calls", 2)]),
    ("tool_calls_arguments_object.jsonl", NO_QUANTITY, 2, [("error", "bad-tool-calls", 2)]),
    ("tool_calls_on_user.jsonl", NO_QUANTITY, 2, [("error", "bad-tool-calls", 2)]),
]
HOSTILE = [c for c in CASES if c[2] == 2 and c[3] and c[3][0][1] in {
    "too-deep", "number-too-long", "nan-value", "lone-surrogate", "duplicate-key", "bad-role", "no-text-content",
    "bad-content-part", "bad-tool-calls"}]
RAW_SECRETS = ("jane.doe@example.org", "4111 1111 1111 1111", "AKIAIOSFODNN7EXAMPLE", "MIIEabc")


def check(path: Path | str, *args: str) -> tuple[int, list[dict], str]:
    result = invoke("data", "check", str(path), "--json", *args)
    assert "Traceback" not in result.output + result.stderr
    return result.exit_code, json.loads(result.output)["findings"] if result.output.strip() else [], result.stderr


@pytest.mark.parametrize("name, args, exit_code, expected", CASES, ids=[f"{c[0]}{'+' if c[1] else ''}{'-'.join(a.strip('-') for a in c[1] if a.startswith('--'))}" for c in CASES])
def test_corpus_file(name: str, args: tuple[str, ...], exit_code: int, expected: list) -> None:
    code, findings, stderr = check(CORPUS / name, *args)
    assert code == exit_code, findings
    got = {(f["severity"], f["code"], f["line"]) for f in findings}
    for item in expected:
        assert item in got, f"{item} not in {sorted(got, key=str)}"
    if exit_code == 0:
        assert not [f for f in findings if f["severity"] == "error"]
    assert not any(secret in json.dumps(findings) for secret in RAW_SECRETS)  # PII is masked in reports
    leak = [f for f in findings if f["code"] == "leakage"]
    if leak:
        assert leak[0]["file"].endswith("leak_test.jsonl") and "line 4" in leak[0]["message"]


def test_the_corpus_has_at_least_80_files() -> None:
    assert len(list(CORPUS.glob("*.jsonl"))) >= 80
    assert {c[0] for c in CASES} >= {p.name for p in CORPUS.glob("*.jsonl") if p.name != "leak_test.jsonl"}


def test_a_50_mb_line_is_one_finding_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "huge_line.jsonl"
    with path.open("wb") as fh:
        fh.write(b'{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n')
        fh.write(b'{"messages": [{"role": "user", "content": "' + b"x" * (50 * 2**20) + b'"}]}\n')
    code, findings, _ = check(path, *NO_QUANTITY, "--backend", "azure")  # its 512 MB file limit
    assert code == 2
    [finding] = [f for f in findings if f["code"] == "line-too-long"]
    assert finding["line"] == 2 and "50.0 MiB" in finding["message"]


def test_a_2_gb_file_is_reported_without_loading_it(tmp_path: Path) -> None:
    """A sparse 2 GB file of NUL bytes: no newline anywhere. It is streamed, never held in memory."""
    import resource

    path = tmp_path / "two_gb.jsonl"
    with path.open("wb") as fh:
        fh.truncate(2 * 2**30)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    code, findings, _ = check(path, *NO_QUANTITY, "--backend", "azure")  # its 512 MB file limit
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert code == 2
    codes = {f["code"] for f in findings}
    assert {"large-file", "line-too-long"} <= codes
    assert grown_mb < 200


def test_html_report_is_self_contained(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = invoke("data", "check", str(CORPUS / "several_problems.jsonl"), "--report", str(out), "--disable", "quantity")
    assert result.exit_code == 2
    page = out.read_text()
    assert page.startswith("<!doctype html>") and "no-assistant" in page and "src=\"http" not in page
    assert "data:image/png;base64," in page


def test_data_check_stays_light(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = ("import sys\nfrom ftp.cli import main\ntry:\n    main(['data', 'check', %r, '--json'])\nexcept SystemExit:\n"
            "    pass\nprint('HEAVY', [m for m in ('torch', 'transformers') if m in sys.modules])") % str(CORPUS / "bom.jsonl")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ})
    assert out.stdout.strip().splitlines()[-1] == "HEAVY []"
