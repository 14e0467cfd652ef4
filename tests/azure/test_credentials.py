"""Entra ID sign-in failures end as one line (exit 2) that names the variable and the fix.

azure-identity raises a ValueError when it is handed an empty or malformed service-principal
variable, and ClientAuthenticationError when the token endpoint refuses the secret; each must reach
the user as ftp's sign-in error, never as ``train: ValueError`` with a traceback, and the client
secret's value must appear nowhere (output, run directory).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import invoke
from fake_azure import TENANT
from helpers import FAST, RELAXED, only_run, state

ENTRA = ("--set", "backends.azure.auth=entra")


def run(*extra: str) -> Any:
    return invoke("run", "pipeline.yaml", "--backend", "azure", "--yes", *FAST, *RELAXED, *extra)


def assert_one_sign_in_line(result: Any, *expected: str) -> str:
    """Exit 2, and stderr is exactly one ``error: Entra ID sign-in ...`` line containing ``expected``."""
    assert result.exit_code == 2, result.output + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("error: Entra ID sign-in") and "az login" in line, line
    assert "Traceback" not in result.output + result.stderr and "ValueError" not in line, line
    for text in expected:
        assert text in line, line
    return line


def assert_secret_nowhere(secret: str, result: Any, root: Path) -> None:
    assert secret not in result.output + result.stderr
    for path in (root / "runs").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


@pytest.mark.parametrize(("var", "value", "expected"), [
    ("AZURE_CLIENT_ID", "", "$AZURE_CLIENT_ID is set but empty"),
    ("AZURE_TENANT_ID", "", "$AZURE_TENANT_ID is set but empty"),
    ("AZURE_TENANT_ID", "not a tenant!", "$AZURE_TENANT_ID 'not a tenant!' is not a tenant id"),
    ("AZURE_CLIENT_SECRET", "", "$AZURE_CLIENT_SECRET is set but empty"),
])
def test_an_empty_or_malformed_variable_is_named_in_one_line(quickstart: Path, fake_azure: Any,
                                                              monkeypatch: pytest.MonkeyPatch, var: str, value: str,
                                                              expected: str) -> None:
    monkeypatch.setenv(var, value)
    result = run(*ENTRA)
    line = assert_one_sign_in_line(result, expected, "unset AZURE_TENANT_ID")
    assert "AZURE_OPENAI_API_KEY" in line  # the data plane can also take a key
    st = state(only_run(quickstart))
    assert st["steps"]["train"]["status"] == "failed" and "sign-in" in st["steps"]["train"]["error"]
    assert fake_azure.count("upload") == 0 and not fake_azure.jobs  # refused before anything was sent
    assert_secret_nowhere(fake_azure.client_secret, result, quickstart)


def test_a_refused_client_secret_is_one_line_without_the_secret(quickstart: Path, fake_azure: Any,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = "wrong-secret-value-5c2e9"
    monkeypatch.setenv("AZURE_CLIENT_SECRET", wrong)
    result = run(*ENTRA)
    assert_one_sign_in_line(result, "cognitiveservices.azure.com", "Invalid client secret")
    assert_secret_nowhere(wrong, result, quickstart)
    assert not fake_azure.jobs


def test_a_resumed_run_gets_the_same_line(quickstart: Path, fake_azure: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--resume`` builds the credential in the train step, with the environment of the new process."""
    assert run(*ENTRA, "--steps", "validate,split").exit_code == 0
    run_id = state(only_run(quickstart))["run_id"]
    monkeypatch.setenv("AZURE_CLIENT_ID", "")
    result = invoke("run", "--resume", run_id, "--yes")
    assert_one_sign_in_line(result, "$AZURE_CLIENT_ID is set but empty")


def test_the_management_plane_sign_in_fails_the_same_way(quickstart: Path, fake_azure: Any,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """With an API key the data plane works, and the first deployment (ARM, Entra only) reports the variable."""
    monkeypatch.setenv("AZURE_TENANT_ID", "not a tenant!")
    result = run()
    line = assert_one_sign_in_line(result, "$AZURE_TENANT_ID")
    assert "API key" not in line  # deployments cannot be made with a key
    assert len(fake_azure.jobs) == 1 and fake_azure.count("arm_put") == 0


def test_arm_refusing_the_token_is_a_sign_in_error(quickstart: Path, fake_azure: Any) -> None:
    fake_azure.fail("arm_put", status=401, times=10, body={"error": {
        "code": "InvalidAuthenticationTokenTenant", "message": "The access token is from the wrong issuer."}})
    result = run()
    assert result.exit_code == 2, result.output + result.stderr
    assert "InvalidAuthenticationTokenTenant" in result.stderr and "az login" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_real_process_prints_only_ftp_s_line(quickstart: Path) -> None:
    """azure-identity logs its failure over several lines at WARNING; outside pytest's log capture Python
    would print that to stderr next to ftp's line. Run as a user does, every request going to a proxy
    that refuses connections (nothing leaves the machine)."""
    secret = "real-process-secret-41d7"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "FTP_", "MSI_", "IDENTITY_"))}
    env.update({"AZURE_OPENAI_ENDPOINT": "https://fake.openai.azure.com", "AZURE_TENANT_ID": TENANT,
                "AZURE_CLIENT_ID": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "AZURE_CLIENT_SECRET": secret,
                "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": "",
                "FTP_CACHE_DIR": str(quickstart / ".cache")})
    done = subprocess.run([sys.executable, "-m", "ftp", "run", "pipeline.yaml", "--backend", "azure", "--yes",
                           "--quiet", *ENTRA, *FAST], cwd=quickstart, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("error: Entra ID sign-in") and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert secret not in done.stdout + done.stderr
    assert all(secret.encode() not in p.read_bytes() for p in (quickstart / "runs").rglob("*") if p.is_file())

