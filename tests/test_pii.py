"""The PII check: what it finds and what it leaves alone, settings, masking, and the report through check_data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ftp.data.checks import Record
from ftp.data.files import dataset_ref
from ftp.plugins.pii import PiiCheck, PiiSettings
from ftp.plugins.pii_detect import detect, iban_valid, luhn, mask


def kinds(text: str) -> list[str]:
    return [k for k, _ in detect(text)]


def values(text: str, kind: str) -> list[str]:
    return [v for k, v in detect(text) if k == kind]


@pytest.mark.parametrize("text, kind, value", [
    ("mail john.doe@example.com today", "email", "john.doe@example.com"),
    ("write to jane+ft@mail.sub.example.co.uk.", "email", "jane+ft@mail.sub.example.co.uk"),
    ("call +44 20 7946 0958 now", "phone", "+44 20 7946 0958"),
    ("call +14155552671", "phone", "+14155552671"),
    ("call (415) 555-2671", "phone", "(415) 555-2671"),
    ("call 415.555.2671.", "phone", "415.555.2671"),
    ("call 1-800-555-0199", "phone", "1-800-555-0199"),
    ("ring 020 7946 0958", "phone", "020 7946 0958"),
    ("appelez 06 12 34 56 78", "phone", "06 12 34 56 78"),
    ("card 4111 1111 1111 1111 exp 12/27", "credit_card", "4111 1111 1111 1111"),
    ("card 5500-0055-5555-5559", "credit_card", "5500-0055-5555-5559"),
    ("amex 378282246310005", "credit_card", "378282246310005"),
    ("IBAN DE89 3704 0044 0532 0130 00 please", "iban", "DE89 3704 0044 0532 0130 00"),
    ("IBAN GB82WEST12345698765432", "iban", "GB82WEST12345698765432"),
    ("IBAN NL91ABNA0417164300.", "iban", "NL91ABNA0417164300"),
    ("ssn 123-45-6789", "ssn", "123-45-6789"),
    ("NI number AB123456C", "uk_nino", "AB123456C"),
    ("NI number AB 12 34 56 C", "uk_nino", "AB 12 34 56 C"),
    ("from 203.0.113.42 at noon", "ipv4", "203.0.113.42"),
    ("host 2001:db8:85a3::8a2e:370:7334", "ipv6", "2001:db8:85a3::8a2e:370:7334"),
    ("host 2001:0db8:85a3:0000:0000:8a2e:0370:7334.", "ipv6", "2001:0db8:85a3:0000:0000:8a2e:0370:7334"),
    ("link fe80::1", "ipv6", "fe80::1"),
    ("key AKIAIOSFODNN7EXAMPLE", "aws_access_key", "AKIAIOSFODNN7EXAMPLE"),
    ("token ghp_" + "a1B2" * 9, "github_token", "ghp_" + "a1B2" * 9),
    ("token github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "github_token",
     "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz"),
    ("OPENAI_API_KEY=sk-proj-" + "Ab3d" * 10, "openai_key", "sk-proj-" + "Ab3d" * 10),
    ("slack xoxb-123456789012-abcdefABCDEF", "slack_token", "xoxb-123456789012-abcdefABCDEF"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA", "private_key", "-----BEGIN RSA PRIVATE KEY-----"),
    ("-----BEGIN OPENSSH PRIVATE KEY-----", "private_key", "-----BEGIN OPENSSH PRIVATE KEY-----"),
    ("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk",
     "jwt", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
])
def test_detects(text: str, kind: str, value: str) -> None:
    assert values(text, kind) == [value], detect(text)


@pytest.mark.parametrize("text", [
    "order 1234567890 shipped",                      # a plain order number: no separators, no +
    "order #98765432101 and invoice 2024000123",
    "on 2024-01-15 at 10:30, or 15.01.2024, or 01/02/2024",
    "in 1999 and 2000 and 2023 2024 2025",
    "on 01.02.2024 12 people came",
    "card 4111 1111 1111 1112",                      # fails Luhn
    "card 4111111111111112 and 1234567812345670",    # Luhn-invalid; Luhn-valid but no card issuer
    "IBAN DE89 3704 0044 0532 0130 01",              # fails mod-97
    "IBAN GB82WEST12345698765433 and XX82WEST12345698765432",
    "ssn 000-12-3456, 666-12-3456, 900-12-3456, 123-00-4567, 123-45-0000",
    "NI QQ123456C and GB123456A and AB123456E",      # invalid prefixes / suffix
    "ip 256.1.1.1 and 1.2.3 and version 1.2.3.4 and 127.0.0.1 and 0.0.0.0",
    "slice a[1::2], time 12:30:45, std::vector, ::1",
    "use sk-learn-is-a-great-library-for-machine-learning",
    "AKIA is a prefix; AKIAshort",
    "ghp_short and eyJ alone",
    "mail me at john at example dot com, or @handle",
    "price 19.99, v3.2.1, 3.14159",
])
def test_leaves_alone(text: str) -> None:
    assert detect(text) == []


def test_luhn_and_mod97() -> None:
    assert luhn("4111111111111111") and not luhn("4111111111111112")
    assert iban_valid("DE89370400440532013000") and not iban_valid("DE89370400440532013001")
    assert not iban_valid("DE8937040044053201300")  # wrong length for DE


def test_kinds_and_groups_restrict_detectors() -> None:
    text = "john@example.com AKIAIOSFODNN7EXAMPLE 203.0.113.42"
    assert kinds(text) == ["aws_access_key", "email", "ipv4"]
    assert detect(text, frozenset({"email"})) == [("email", "john@example.com")]
    check = PiiCheck(PiiSettings(kinds=["secrets"]))
    assert check.kinds == {"private_key", "jwt", "github_token", "openai_key", "slack_token", "aws_access_key"}
    with pytest.raises(ValueError, match="unknown kind"):
        PiiSettings(kinds=["emails"])


def record(*contents: object, line: int = 1) -> Record:
    roles = ["system", "user", "assistant"]
    example = {"messages": [{"role": roles[i % 3], "content": c} for i, c in enumerate(contents)]}
    return Record(file="d.jsonl", split="train", line=line, raw=json.dumps(example).encode(), example=example)


def test_findings_name_the_message_and_mask_the_value() -> None:
    check = PiiCheck()
    found = check.observe(record("be nice", "I am john.doe@example.com",
                                 [{"type": "text", "text": "key AKIAIOSFODNN7EXAMPLE"}]))
    assert found is not None
    by_code = {f.code: f for f in found}
    email, aws = by_code["pii-email"], by_code["secret-aws-access-key"]
    assert email.message == "messages[1] contains an email address: j***@e*****.com"
    assert (email.severity, email.file, email.line) == ("warning", "d.jsonl", 1)
    assert aws.severity == "error" and aws.message.startswith("messages[2] contains an AWS access key id: AKIA*")
    assert check.observe(record("nothing", "to see", "here")) is None
    summary = check.summary()
    assert summary["counts"] == {"email": 1, "aws_access_key": 1}
    assert summary["samples"]["email"] == ["j***@e*****.com"] and summary["lines_with_pii"] == 1


def test_allow_list_exact_and_regex() -> None:
    check = PiiCheck(PiiSettings(allow=["support@acme.com", r".*@example\.org", "+44 20 7946 0958"]))
    assert check.observe(record("x", "write to support@acme.com or bob@example.org, call +44 20 7946 0958")) is None
    found = check.observe(record("x", "or SUPPORT@acme.com or eve@evil.com"))
    assert found and [f.code for f in found] == ["pii-email"] and "e***@e*****.com" in found[0].message
    assert check.summary()["counts"] == {"email": 1}


def test_summary_caps_samples_at_five() -> None:
    check = PiiCheck()
    for i in range(8):
        check.observe(record("x", f"mail {chr(97 + i)}x@{chr(97 + i)}y.com", line=i + 1))
    s = check.summary()
    assert s["counts"]["email"] == 8 and len(s["samples"]["email"]) == 5


RAW = {
    "email": "john.doe@example.com", "phone": "+44 20 7946 0958", "credit_card": "4111 1111 1111 1111",
    "iban": "DE89 3704 0044 0532 0130 00", "ssn": "123-45-6789", "uk_nino": "AB123456C", "ipv4": "203.0.113.42",
    "ipv6": "2001:db8:85a3::8a2e:370:7334", "aws_access_key": "AKIAIOSFODNN7EXAMPLE",
    "github_token": "ghp_" + "a1B2" * 9, "openai_key": "sk-proj-" + "Ab3d" * 10,
    "slack_token": "xoxb-123456789012-abcdefABCDEF",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk",
}
PRIVATE_KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAsecretbody\n-----END RSA PRIVATE KEY-----"


def test_the_raw_value_never_reaches_the_report() -> None:
    check = PiiCheck()
    found = []
    for i, (kind, raw) in enumerate(RAW.items()):
        found += check.observe(record("sys", f"here it is: {raw} ok", line=i + 1)) or []
    found += check.observe(record("sys", PRIVATE_KEY, line=99)) or []
    assert {f.code.split("-", 1)[1].replace("-", "_") for f in found} == set(RAW) | {"private_key"}
    dump = json.dumps([f.model_dump() for f in found]) + json.dumps(check.summary())
    for kind, raw in RAW.items():
        assert raw not in dump, kind
        assert raw.replace(" ", "") not in dump, kind
        assert mask(kind, raw) in dump
    assert "MIIEowIBAAKCAQEAsecretbody" not in dump and "-----BEGIN" not in dump
    assert "4111" not in mask("credit_card", "4111 1111 1111 2222")[:-4] and mask("credit_card", "4111 1111 1111 2222").endswith("2222")


# --- through check_data and the real plugin manager -----------------------------------------------

def run(path: Path, settings: dict) -> object:
    from ftp.data.check import check_data
    from ftp.hooks import Hooks
    from ftp.plugin_manager import get_plugin_manager
    from ftp.types import DataBundle

    return check_data(Hooks(get_plugin_manager()), DataBundle(train=dataset_ref(path, "train")),
                      {"validate": {"quantity": {"enabled": False}, **settings}}, "local")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    rows = [
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
        {"messages": [{"role": "user", "content": "reach me at jane@corp.example.com"},
                      {"role": "assistant", "content": "noted"}]},
        {"messages": [{"role": "user", "content": "deploy"},
                      {"role": "assistant", "content": "use key AKIAIOSFODNN7EXAMPLE"}]},
    ]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def pii_findings(report: object) -> list:
    return [f for f in report.findings if f.plugin == "ftp.plugins.pii"]  # type: ignore[attr-defined]


def test_end_to_end_file_line_and_severity(data: Path) -> None:
    report = run(data, {})
    got = sorted((f.line, f.severity, f.code) for f in pii_findings(report))
    assert got == [(2, "warning", "pii-email"), (3, "error", "secret-aws-access-key")]
    email = next(f for f in pii_findings(report) if f.code == "pii-email")
    assert email.file == str(data) and email.format().startswith(f"{data}:2: warning: messages[0] contains an email")
    assert report.summaries["pii"]["counts"] == {"email": 1, "aws_access_key": 1}  # type: ignore[attr-defined]
    text = json.dumps(report.to_json())  # type: ignore[attr-defined]
    assert "jane@corp.example.com" not in text and "AKIAIOSFODNN7EXAMPLE" not in text


def test_off_and_severity_override(data: Path) -> None:
    assert pii_findings(run(data, {"pii": {"enabled": False}})) == []
    assert "pii" not in run(data, {"pii": {"enabled": False}}).summaries  # type: ignore[attr-defined]
    assert {f.severity for f in pii_findings(run(data, {"pii": {"severity": "error"}}))} == {"error"}
    assert {f.severity for f in pii_findings(run(data, {"pii": {"severity": "info"}}))} == {"info"}
    allowed = pii_findings(run(data, {"pii": {"allow": [r".*@corp\.example\.com"], "kinds": ["personal"]}}))
    assert allowed == []


# --- the line gates: judged on raw bytes, they must never hide what detect finds in the texts -------

GATE_TEXTS = [
    "mail john.doe@example.com today", "call +44 20 7946 0958 now", "call (415) 555-2671", "call 415.555.2671.",
    "ring 020 7946 0958", "appelez 06 12 34 56 78", "card 4111 1111 1111 1111 exp 12/27", "amex 378282246310005",
    "IBAN DE89 3704 0044 0532 0130 00 please", "IBAN GB82WEST12345698765432", "ssn 123-45-6789",
    "NI number AB 12 34 56 C", "NI number AB123456C", "from 203.0.113.42 at noon", "link fe80::1",
    "host 2001:0db8:85a3:0000:0000:8a2e:0370:7334.", "key AKIAIOSFODNN7EXAMPLE", "token ghp_" + "a1B2" * 9,
    "OPENAI_API_KEY=sk-proj-" + "Ab3d" * 10, "slack xoxb-123456789012-abcdefABCDEF", PRIVATE_KEY,
    "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk",
    "said \"x\"\nand then\tcall\n+44 20 7946 0958\n\"quoted\" mail \"jane@corp.example.com\"/path\\back",
    "Grüße, ruf an: +44 20 7946 0958 oder schreib an müller@example.de / jane@corp.example.com",
    "Ticket 123456: thermostat login crash. Order 2024-01-15 at 10:30, v3.2.1, 19.99.",
]


def found_kinds(check: PiiCheck, rec: Record) -> list[str]:
    return sorted(f.code.split("-", 1)[1].replace("-", "_") for f in check.observe(rec) or [])


@pytest.mark.parametrize("text", GATE_TEXTS)
@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_line_gates_hide_nothing(text: str, ensure_ascii: bool) -> None:
    example = {"messages": [{"role": "system", "content": "Triage the ticket as JSON."},
                            {"role": "user", "content": f"Ticket 12: {text}"},
                            {"role": "assistant", "content": json.dumps({"category": "bug"})}]}
    raw = json.dumps(example, ensure_ascii=ensure_ascii).encode()
    expected = sorted({k for m in example["messages"] for k, _ in detect(m["content"])})
    got = found_kinds(PiiCheck(), Record(file="d", split=None, line=1, raw=raw, example=example))
    assert got == expected
    # the same line without raw bytes (every detector on every text) agrees
    assert found_kinds(PiiCheck(), Record(file="d", split=None, line=1, raw=b"", example=example)) == expected


def test_escaped_characters_in_the_raw_line_are_still_found() -> None:
    # JSON may spell any character as \uXXXX (or / as \/): the raw bytes then lack the '@', the digits, the 'AKIA'
    text = "mail jane@corp.example.com, call +44 20 7946 0958, key AKIAIOSFODNN7EXAMPLE, see a/b"
    example = {"messages": [{"role": "user", "content": text}]}
    spelled = "".join(f"\\u{ord(ch):04x}" if ch in "@+4AK" else "\\/" if ch == "/" else ch for ch in text)
    raw = ('{"messages": [{"role": "user", "content": "' + spelled + '"}]}').encode()
    assert json.loads(raw) == example and b"@" not in raw and b"AKIA" not in raw
    got = found_kinds(PiiCheck(), Record(file="d", split=None, line=1, raw=raw, example=example))
    assert got == ["aws_access_key", "email", "phone"]


def test_plain_lines_skip_every_detector() -> None:
    check = PiiCheck()
    for content in ("Ticket 123456: thermostat login crash, please help.", "order 12345678 at 10:30 today",
                    "see https://example.com/a_b-c for JSON. Then XY12 ok"):
        example = {"messages": [{"role": "user", "content": content}]}
        raw = json.dumps(example).encode()
        assert not (check.gate.line_kinds(raw, example["messages"]) & {"phone", "ssn", "credit_card", "ipv4", "email"})
    example = {"messages": [{"role": "user", "content": "Ticket 123456: thermostat login crash."}]}
    assert check.gate.line_kinds(json.dumps(example).encode(), example["messages"]) == frozenset()
