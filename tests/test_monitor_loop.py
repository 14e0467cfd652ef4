"""The monitoring loop end to end on the tiny model through a real ``ftp serve``: traffic like the
training data (no trigger), shifted traffic (the drift trigger fires), feedback marking answers wrong
(the quality trigger fires and a retrain runs: a new version is registered as challenger and gets the
starting traffic), a second trigger inside the cooldown (nothing happens), then an injected error rate
in the new slot (the server rolls it back)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from conftest import PIPELINE, make_examples, write_jsonl
from monitor_traffic import like_training, post, send, shifted
from serve_helpers import serving

FTP = [sys.executable, "-m", "ftp"]
NAME = "tiny-model"

# conftest's pipeline, with the monitoring sections and the server logging texts (to retrain on
# corrections given by request id)
MONITORING = {
    "review": {"samples": 0},
    "deploy": {"smoke_test": 0, "auto_rollback": {"min_samples": 20, "every": "1s", "since": "1h"}},
    "serve": {"log_content": True},
    # the prompts' features: a tiny model trained for seconds does not answer in the data's format, which
    # the output features (answer_in_format, answer_chars) rightly report as drift
    "monitor": {"features": ["prompt_chars", "prompt_words", "prompt_turns", "prompt_nonletter", "prompt_nonascii"],
                "min_samples": 100, "min_labelled": 50, "error_rate": 0.5},
    "retrain_when": {"drift": {"consecutive_windows": 2, "min_samples": 100},
                     "quality": {"below": 0.8, "min_samples": 50}, "cooldown": "1h", "starting_traffic": 20},
}


def pipeline_text(model: Path) -> str:
    import yaml

    return yaml.safe_dump({**yaml.safe_load(PIPELINE.format(model=model)), **MONITORING}, sort_keys=False)


def ftp(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FTP, *args], cwd=cwd, capture_output=True, text=True, timeout=900)


def in_two_windows(port: int, first: list[Any], second: list[Any]) -> tuple[list[Any], list[str]]:
    """Send two batches and the ``--since/--window/--until`` that put each in a window of its own (windows
    are of time, so they are cut where the first batch ended, not where the clock says)."""
    start = datetime.now(timezone.utc)
    answers = send(port, NAME, first)
    middle = datetime.now(timezone.utc)
    answers += send(port, NAME, second)
    end = datetime.now(timezone.utc)
    window = max((middle - start).total_seconds(), (end - middle).total_seconds()) + 0.05
    until = (middle + timedelta(seconds=window)).isoformat(timespec="milliseconds")
    return answers, ["--since", f"{2 * window:.3f}s", "--window", f"{window:.3f}s", "--until", until]


def monitor(cwd: Path, period: list[str], *more: str) -> subprocess.CompletedProcess[str]:
    return ftp(cwd, "monitor", NAME, "--check", *period, *more)


def decisions(cwd: Path) -> list[dict[str, Any]]:
    from ftp.monitor.decisions import read

    return read(cwd / ".ftp" / "requests.db", NAME)


@pytest.mark.slow
def test_the_loop_from_traffic_to_a_retrained_challenger(tmp_path: Path, tiny_model_dir: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    write_jsonl(tmp_path / "data" / "train.jsonl", make_examples(300))
    (tmp_path / "pipeline.yaml").write_text(pipeline_text(tiny_model_dir), encoding="utf-8")
    monkeypatch.setenv("FTP_CACHE_DIR", str(tmp_path / ".cache"))
    monkeypatch.delenv("FTP_RUNS_DIR", raising=False)
    first = ftp(tmp_path, "run", "pipeline.yaml", "--quiet")
    assert first.returncode == 0, first.stderr
    from ftp.deploy import slots
    from ftp.plugins.registry_sqlite import SqliteRegistry

    store, registry = tmp_path / ".ftp" / "deployments.db", SqliteRegistry(tmp_path / ".ftp" / "registry.db")
    with serving(tmp_path, "-p", "pipeline.yaml") as port:
        # 1. traffic like the training data: nothing crosses, nothing fires
        calm, period = in_two_windows(port, like_training(110, seed=11), like_training(110, seed=12))
        assert all(status == 200 for status, _, _ in calm)
        checked = monitor(tmp_path, period)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "0 of" in checked.stdout and "features drifted" in checked.stdout
        assert decisions(tmp_path)[-1]["fired"] is False

        # 2. shifted traffic: the drift check crosses and the drift rule fires (two windows in a row)
        time.sleep(1)  # its first window begins before it does: keep the calm traffic out of it
        _, period = in_two_windows(port, shifted(110, seed=20), shifted(110, seed=21))
        fired_at = 220
        drifting = monitor(tmp_path, period)
        assert drifting.returncode == 10, drifting.stdout + drifting.stderr
        assert "drifted in the last window" in drifting.stderr and "retrain due: drift" in drifting.stderr
        last = decisions(tmp_path)[-1]
        assert last["fired"] is True and last["recommended"] is True and last["action"] == "none"
        assert any(r["rule"] == "drift" and r["fired"] for r in last["rules"])
        assert len(registry.list(NAME)) == 1  # recommended only: --retrain was not given

        # 3. feedback marks the in-distribution answers wrong, with the right answer: quality fires, a retrain runs
        for status, body, right in calm:
            rid = body["id"]
            assert post(port, "/v1/feedback", [{"request_id": rid, "name": "correct", "value": False},
                                               {"request_id": rid, "name": "expected", "value": right}])[0] == 200
        retrained = ftp(tmp_path, "monitor", NAME, "--check", "--retrain", "--since", "1h")
        assert retrained.returncode == 10, retrained.stdout + retrained.stderr
        assert "retrained (quality: accuracy 0.000" in retrained.stderr
        versions = registry.list(NAME)
        assert [v.version for v in versions] == [1, 2]
        assert registry.alias(NAME, "challenger") == 2
        assert slots.state_of(store, NAME).as_json()["traffic"] == {"blue": 80, "green": 20}
        ran = [d for d in decisions(tmp_path) if d["fired"] and d["action"].startswith("run ")]
        assert len(ran) == 1 and ran[0]["new_examples"] > 150 and ran[0]["from_version"] == 1

        # 4. inside the cooldown a second trigger does nothing
        again = ftp(tmp_path, "monitor", NAME, "--check", "--retrain", "--since", "1h")
        assert len(registry.list(NAME)) == 2, again.stderr
        held = decisions(tmp_path)[-1]
        assert held["held_by_cooldown"] is True and held["fired"] is False
        assert any("cooldown" in r for r in held["reasons"])
        count = len(decisions(tmp_path))
        dry = ftp(tmp_path, "retrain", NAME, "--dry-run")
        assert dry.returncode == 0 and "cooldown" in dry.stdout and len(decisions(tmp_path)) == count  # says, records nothing
        forced = ftp(tmp_path, "retrain", NAME, "--force", "--dry-run", "--json")
        assert forced.returncode == 0 and json.loads(forced.stdout)["reasons"] == ["manual: ftp retrain --force"]

        # 5. the new slot fails (its adapter's weights gone): the server rolls it back by itself
        adapter = Path(versions[1].model.path or "")
        for weights in adapter.glob("*.safetensors"):
            weights.unlink()
        bad = send(port, NAME, like_training(25, seed=40), slot="green")
        assert all(status >= 500 for status, _, _ in bad)
        send(port, NAME, like_training(25, seed=41), slot="blue")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and slots.state_of(store, NAME).traffic().get("green"):
            time.sleep(0.5)
        assert slots.state_of(store, NAME).traffic() == {"blue": 100, "green": 0}
        from ftp.deploy import traffic

        entry = traffic.history(store, NAME)[-1]
        assert entry.action == "auto-rollback" and "error_rate" in entry.reason
        assert decisions(tmp_path)[-1]["kind"] == "rollback"
    report = ftp(tmp_path, "monitor", NAME, "--since", "1h", "--json", "--report", "monitor.html")
    assert report.returncode == 0, report.stderr
    summary = json.loads(report.stdout)
    assert {t["slot"] for t in summary["totals"]} == {"blue", "green"}
    assert (tmp_path / "monitor.html").read_text().count("<svg") >= 3
    print(f"drift fired after {fired_at} shifted requests")
    shutil.rmtree(tmp_path / "runs", ignore_errors=True)
