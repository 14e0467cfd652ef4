"""Secrets never printed or stored: not in an error, not in ``--dry-run``, not in the run directory or the
registry, whether they came from ``${VAR}``, a secret-named key, a value's shape or ``--set``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import invoke
from pydantic import BaseModel, ConfigDict, Field

from ftp import hookimpl, redact
from ftp.types import ConfigSection, EvalRequest, Metric

OPENAI_STYLE = "sk-proj-Zx81Qa5LmN3oPq7Rs2Tu9Vw4Xy6Ab0Cd"
AZURE_HEX = "5c1e0a9b3d7f42e68a0b1c2d3e4f5a6b"
CLIENT_SECRET = "Qy8~kR2.mZ5_vT9-wX1yA4bC7dE0fG3hJ6"
ACCESS_TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJmdHAifQ.c2lnbmF0dXJlLXZhbHVl"
SAS_SIGNATURE = "r4nd0mSiGnAtUrE%2Bvalue%3D"
BEARER = "abc123def456ghi789jkl"
FROM_SET = "set-secret-Mq2Wn8Zr4Kx6"
ALL = (OPENAI_STYLE, AZURE_HEX, CLIENT_SECRET, ACCESS_TOKEN, SAS_SIGNATURE, BEARER, FROM_SET)


class Notify(BaseModel):
    """A plugin's section with every style of secret name (camel, snake, kebab, secret_*)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    clientSecret: str = ""  # noqa: N815 - the camelCase spelling is the point
    accessToken: str = ""  # noqa: N815
    secret_value: str = ""
    client_secret: str = Field("", alias="client-secret")
    webhook: str = ""
    header: str = ""
    password: str = ""
    label: str = ""


class NotifyPlugin:
    @hookimpl
    def ftp_config_sections(self) -> list[ConfigSection]:
        return [ConfigSection(path="notify", model=Notify)]


@pytest.fixture(autouse=True)
def clean_secrets() -> Iterator[None]:
    redact.forget_all()
    yield
    redact.forget_all()


def everything_written(*folders: Path) -> str:
    """Every byte ftp left in these folders, as text (a secret in a SQLite page or a binary file counts)."""
    return "".join(p.read_bytes().decode("utf-8", "replace") for folder in folders for p in folder.rglob("*")
                   if p.is_file())


def assert_nowhere(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text, f"{secret[:6]}... leaked"


def add_to_pipeline(project: Path, text: str) -> None:
    path = project / "pipeline.yaml"
    path.write_text(path.read_text() + text, encoding="utf-8")


def test_the_wrong_variable_is_named_not_printed(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_API_KEY", OPENAI_STYLE)
    path = project / "pipeline.yaml"
    path.write_text(path.read_text().replace("epochs: 2", 'epochs: "${SOME_API_KEY}"'), encoding="utf-8")
    for args in (("validate", "pipeline.yaml"), ("run", "pipeline.yaml", "--dry-run"), ("run", "pipeline.yaml")):
        result = invoke(*args)
        assert result.exit_code == 2 and result.stderr.count("\n") == 1
        assert "pipeline.yaml:10: train.epochs:" in result.stderr and "got the value of $SOME_API_KEY" in result.stderr
        assert_nowhere(result.output + result.stderr, OPENAI_STYLE)


def test_a_key_pasted_as_the_endpoint_is_not_shown(project: Path) -> None:
    add_to_pipeline(project, f"  azure:\n    endpoint: {AZURE_HEX}\n    model: {{base: gpt-4o-mini-2024-07-18}}\n")
    for args in (("validate", "pipeline.yaml", "-b", "azure"), ("run", "pipeline.yaml", "-b", "azure", "--dry-run")):
        result = invoke(*args)
        assert result.exit_code == 2 and result.stderr.count("\n") == 1
        assert "backends.azure.endpoint: must be a URL" in result.stderr and "not shown" in result.stderr
        assert_nowhere(result.output + result.stderr, AZURE_HEX)


def test_api_key_env_refuses_the_key_itself(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", AZURE_HEX)
    add_to_pipeline(project, "  azure:\n    endpoint: https://x.openai.azure.com\n"
                             "    api_key_env: ${AZURE_OPENAI_API_KEY}\n    model: {base: gpt-4o-mini-2024-07-18}\n")
    for args in (("validate", "pipeline.yaml", "-b", "azure"), ("run", "pipeline.yaml", "-b", "azure"),
                 ("run", "pipeline.yaml", "-b", "azure", "--dry-run")):
        result = invoke(*args)
        assert result.exit_code == 2
        assert ("backends.azure.api_key_env: must be the name of the environment variable that holds the key"
                in result.stderr) and "got the value of $AZURE_OPENAI_API_KEY" in result.stderr
        assert_nowhere(result.output + result.stderr, AZURE_HEX)
        assert "export" not in result.stderr


SECRET_SECTION = f"""\
notify:
  clientSecret: {CLIENT_SECRET}
  accessToken: ${{NOTIFY_TOKEN}}
  secret_value: ${{ANY_NAME}}
  client-secret: {CLIENT_SECRET}
  webhook: "https://acct.blob.core.windows.net/c/f.jsonl?sv=2024-01-01&sp=r&sig={SAS_SIGNATURE}"
  header: "Bearer {BEARER}"
  label: ${{HIGH_ENTROPY}}
"""


def test_no_secret_in_dry_run_run_directory_or_registry(project: Path, pm, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    pm.register(NotifyPlugin(), name="notify")
    monkeypatch.setenv("NOTIFY_TOKEN", ACCESS_TOKEN)
    monkeypatch.setenv("ANY_NAME", AZURE_HEX)
    monkeypatch.setenv("HIGH_ENTROPY", OPENAI_STYLE)
    add_to_pipeline(project, SECRET_SECTION)
    args = ("pipeline.yaml", "--set", f"notify.password={FROM_SET}")
    dry = invoke("run", *args, "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert_nowhere(dry.output + dry.stderr, *ALL)
    assert "sig=***" in dry.output and "Bearer ***" in dry.output and "clientSecret: '***'" in dry.output

    result = invoke("run", *args, "--json")
    assert result.exit_code == 0, result.stderr
    assert_nowhere(result.output + result.stderr, *ALL)
    run_dir = next((project / "runs" / "tiny").iterdir())
    assert_nowhere(everything_written(run_dir, project / ".ftp"), *ALL)
    state = json.loads((run_dir / "state.json").read_text())
    assert state["overrides"] == ["notify.password=***"]
    resolved = (run_dir / "pipeline.resolved.yaml").read_text()
    assert "accessToken: '***'" in resolved and "secret_value: '***'" in resolved and "label: '***'" in resolved
    assert "max_new_tokens: 12" in resolved  # a key that mentions tokens is no secret
    for cmd in (("runs", "show", state["run_id"], "--json"), ("models", "show", "tiny-model", "--json")):
        assert_nowhere(invoke(*cmd).output, *ALL)


def test_resume_asks_for_a_secret_given_with_set_again(project: Path, pm) -> None:  # noqa: ANN001
    pm.register(NotifyPlugin(), name="notify")
    first = invoke("run", "pipeline.yaml", "--steps", "validate,split", "--set", f"notify.password={FROM_SET}",
                   "--quiet")
    assert first.exit_code == 0, first.stderr
    run_id = next((project / "runs" / "tiny").iterdir()).name
    again = invoke("run", "--resume", run_id, "--steps", "validate,split,train")
    assert again.exit_code == 2 and again.stderr.count("\n") == 1
    assert f"run {run_id} was started with a secret in --set notify.password, which is not stored" in again.stderr
    other = invoke("run", "--resume", run_id, "--set", "train.epochs=1")
    assert other.exit_code == 2 and "--set cannot change a run being resumed" in other.stderr
    assert "only the secret --set notify.password may be given again" in other.stderr
    ok = invoke("run", "--resume", run_id, "--steps", "validate,split,train", "--quiet",
                "--set", f"notify.password={FROM_SET}")
    assert ok.exit_code == 0, ok.stderr
    assert_nowhere(everything_written(project / "runs"), FROM_SET)


class LeakyEvaluator:
    """A plugin whose error quotes a key, as libraries' errors sometimes do."""

    @hookimpl
    def ftp_evaluate(self, request: EvalRequest) -> list[Metric]:
        raise RuntimeError(f"upstream refused api-key {AZURE_HEX} (Authorization: Bearer {BEARER})")


def test_a_step_error_that_quotes_a_key_is_scrubbed(project: Path, pm, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("PARTNER_API_KEY", AZURE_HEX)  # a secret-named variable: its value is scrubbed everywhere
    pm.register(LeakyEvaluator(), name="leaky")
    result = invoke("run", "pipeline.yaml")
    assert result.exit_code == 1 and "evaluate: RuntimeError: upstream refused api-key ***" in result.stderr
    debug = invoke("run", "--resume", next((project / "runs" / "tiny").iterdir()).name, "--debug")
    assert debug.exit_code == 1
    run_dir = next((project / "runs" / "tiny").iterdir())
    assert_nowhere(result.output + result.stderr + debug.output + debug.stderr, AZURE_HEX, BEARER)
    assert_nowhere(everything_written(run_dir), AZURE_HEX, BEARER)
    assert "RuntimeError" in (run_dir / "run.log").read_text()  # the traceback is there, without the key


@pytest.mark.parametrize(("name", "secret"), [
    ("api_key", True), ("apiKey", True), ("API-KEY", True), ("clientSecret", True), ("client_secret", True),
    ("secret_value", True), ("accessToken", True), ("refresh-token", True), ("AZURE_CLIENT_SECRET", True),
    ("password", True), ("db_passwd", True), ("connection_string", True), ("sas", True), ("private_key", True),
    ("max_new_tokens", False), ("pack_tokens", False), ("api_key_env", False), ("token_env", False),
    ("eos_token", False), ("tokenizer", False), ("auth", False), ("keywords", False), ("secretary", False),
])
def test_secret_names_in_every_style(name: str, secret: bool) -> None:
    assert redact.is_secret_name(name) is secret


@pytest.mark.parametrize(("value", "secret"), [
    (OPENAI_STYLE, True), (AZURE_HEX, True), (ACCESS_TOKEN, True), (f"Bearer {BEARER}", True),
    ("AKIAIOSFODNN7EXAMPLE", True), ("ghp_" + "a1B2c3D4e5" * 4, True), (f"https://x/?sv=1&sig={SAS_SIGNATURE}", True),
    ("DefaultEndpointsProtocol=https;AccountName=a;AccountKey=abc123==;", True),
    ("https://user:hunter22@example.org/x", True), ("x7Kp2QmZ9vLr4TnB8wYc3HdF6sJe1Ua5", True),
    ("gpt-4o-mini-2024-07-18", False), ("builtin:gemma-3-270m", False), ("/home/me/data/train.jsonl", False),
    ("https://myresource.openai.azure.com", False), ("meta-llama/Llama-3.1-8B-Instruct", False),
    ("AZURE_OPENAI_API_KEY", False), ("0" * 40, False), ("7" * 5000, False), ("ticket-triage", False),
])
def test_secret_values_by_shape(value: str, secret: bool) -> None:
    assert redact.looks_secret(value) is secret


def test_masking_keeps_what_is_not_secret() -> None:
    assert redact.mask_shapes(f"GET https://a.blob/c?sv=1&sig={SAS_SIGNATURE}&se=2") == "GET https://a.blob/c?sv=1&sig=***&se=2"
    assert redact.mask_shapes(f"Authorization: Bearer {BEARER}") == "Authorization: Bearer ***"
    assert redact.redact_assignment("train.epochs=3") == "train.epochs=3"
    assert redact.redact_assignment(f"notify.webhook=https://x/?sig={SAS_SIGNATURE}") == "notify.webhook=***"
