"""The pure parts of the Azure backend: retry waits, error shapes, status names, results.csv, the
overfitting verdict, settings errors located in the file; and the CLI without the azure extra."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import pytest
from fake_azure import FakeClock
from ftp.backends.azure.http import Backoff, error_fields, retry_after
from ftp.backends.azure.jobs import chronological, normalise
from ftp.backends.azure.results import overfitting, parse_results_csv
from ftp.backends.azure.settings import AzureSettings, RetrySettings


def test_retry_after_in_seconds_milliseconds_or_a_date() -> None:
    assert retry_after({"Retry-After": "7"}) == 7.0
    assert retry_after({"retry-after-ms": "1500", "Retry-After": "9"}) == 1.5
    later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (retry_after({"Retry-After": later}) or 0) <= 31
    assert retry_after({}) is None


def test_backoff_doubles_with_jitter_and_stops_at_its_bounds() -> None:
    backoff = Backoff(RetrySettings(attempts=5, base_delay=1, max_delay=3, max_total=100), FakeClock())
    waits = [backoff.next_wait(None) for _ in range(5)]  # 5 tries: 4 waits between them, then no more
    assert waits[4] is None
    first, second, third, fourth = waits[:4]
    assert 0.5 <= first <= 1 and 1 <= second <= 2 and 1.5 <= third <= 3 and 1.5 <= fourth <= 3  # capped at 3
    hinted = Backoff(RetrySettings(attempts=10, max_delay=60, max_total=20), FakeClock())
    assert hinted.next_wait(15) == 15 and hinted.next_wait(15) is None  # the total budget is 20 s


def test_both_error_shapes_are_read() -> None:
    azure = {"error": {"code": "invalidPayload", "message": "bad\n  value", "innererror": {"code": "x"}}}
    openai = {"error": {"message": "Invalid file", "type": "invalid_request_error", "param": "file", "code": None}}
    assert error_fields(azure) == ("invalidPayload", "bad value")
    assert error_fields(openai) == ("invalid_request_error", "Invalid file")
    assert error_fields("oops") == (None, None)


@pytest.mark.parametrize(("raw", "normal"), [
    ("created", "queued"), ("pending", "queued"), ("validating_files", "queued"), ("queued", "queued"),
    ("running", "running"), ("pausing", "running"), ("resuming", "running"), ("paused", "paused"),
    ("succeeded", "succeeded"), ("failed", "failed"), ("cancelled", "cancelled"), ("Canceled", "cancelled"),
    ("somethingNew", "somethingnew")])
def test_statuses_are_normalised(raw: str, normal: str) -> None:
    assert normalise(raw) == normal


def test_events_come_out_oldest_first_whichever_way_they_are_listed() -> None:
    events = [{"id": "c", "created_at": 3}, {"id": "b", "created_at": 2}, {"id": "a", "created_at": 1}]
    assert [e["id"] for e in chronological(events)] == ["a", "b", "c"]
    assert [e["id"] for e in chronological(list(reversed(events)))] == ["a", "b", "c"]


def test_results_csv_accepts_both_accuracy_spellings() -> None:
    text = textwrap.dedent("""\
        \ufeffstep,train_loss,train_mean_token_accuracy,valid_loss,validation_mean_token_accuracy,full_valid_loss,full_valid_mean_token_accuracy
        2,1.5,0.6,1.7,0.55,,
        1,2.0,0.5,2.1,0.45,,
        3,1.0,0.7,1.4,0.65,1.3,0.68
        """)
    rows = parse_results_csv(text)
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert rows[0] == {"step": 1, "train_loss": 2.0, "eval_loss": 2.1, "train_token_accuracy": 0.5,
                       "eval_token_accuracy": 0.45}
    assert rows[2]["eval_loss"] == 1.3 and rows[2]["eval_token_accuracy"] == 0.68  # the full validation set wins


def test_overfitting_is_validation_rising_while_training_falls() -> None:
    falling = [{"step": s, "train_loss": 2 - 0.1 * s, "eval_loss": 2.1 - 0.1 * s} for s in range(1, 10)]
    assert overfitting(falling) is None
    rising = [{"step": s, "train_loss": 2 - 0.15 * s, "eval_loss": 2.0 - 0.2 * s if s < 5 else 1.0 + 0.1 * s}
              for s in range(1, 12)]
    verdict = overfitting(rising)
    assert verdict and verdict.startswith("overfitting: validation loss rose from 1.2000 (step 4)")


def test_settings_errors_name_the_key_and_line(tmp_path: Path) -> None:
    from conftest import invoke

    (tmp_path / "data.jsonl").write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    (tmp_path / "p.yaml").write_text("name: p\ndata: {train: data.jsonl}\nbackends:\n  azure:\n"
                                     "    suffix: this-suffix-is-much-longer-than-forty-characters\n")
    result = invoke("validate", str(tmp_path / "p.yaml"), "--backend", "azure")
    assert result.exit_code == 2
    assert "p.yaml:5: backends.azure.suffix: must be 1-40 characters" in result.stderr
    assert AzureSettings(deployment={"sku": "developertier"}).deployment.sku == "DeveloperTier"


BLOCKER = """
import importlib.abc, sys
BLOCKED = {"azure", "requests", "responses", "msal", "tiktoken", "urllib3"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
        return None
sys.meta_path.insert(0, Block())
for name in list(sys.modules):
    if name.split(".")[0] in BLOCKED:
        del sys.modules[name]
from ftp.cli import main
main(sys.argv[1:])
"""


def ftp_without_azure(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-c", BLOCKER, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})}, check=False)


def test_the_cli_and_the_local_backend_work_without_the_azure_extra(quickstart: Path) -> None:
    assert ftp_without_azure("--help", cwd=quickstart).returncode == 0
    plugins = ftp_without_azure("plugins", cwd=quickstart)
    assert plugins.returncode == 0 and "ftp.backends.azure" in plugins.stdout
    dry = ftp_without_azure("run", "pipeline.yaml", "--backend", "local", "--dry-run", cwd=quickstart)
    assert dry.returncode == 0, dry.stderr
    checked = ftp_without_azure("validate", "pipeline.yaml", "--backend", "local", cwd=quickstart)
    assert checked.returncode == 0, checked.stderr
    azure = ftp_without_azure("validate", "pipeline.yaml", "--backend", "azure", cwd=quickstart,
                              env={"AZURE_OPENAI_ENDPOINT": "https://x.openai.azure.com"})
    assert azure.returncode == 2
    assert azure.stderr.strip().endswith("the azure backend needs the azure extra: pip install 'ftp[azure]'")
