"""benchmarks/serve_load.py: its accounting against a real HTTP server (the judge server, scripted to
fail), and, marked slow, 1,000 requests from 16 clients against a real ``ftp serve`` on the tiny model."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from conftest import invoke, write_jsonl
from judge_server import JudgeServer, Reply, running
from serve_helpers import free_port, serving

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "benchmarks" / "serve_load.py"
TOKEN = "load-test-token"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("serve_load", TOOL)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


load = _load()


def test_percentiles_and_urls() -> None:
    assert load.percentile([], 50) is None
    assert load.percentile([3.0], 99) == 3.0
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert load.percentile(values, 50) == pytest.approx(50.5) and load.percentile(values, 99) == pytest.approx(99.01)
    assert load.completions_url("http://h:1/v1/") == "http://h:1/v1/chat/completions"
    assert load.completions_url("http://h:1") == "http://h:1/v1/chat/completions"
    assert load.completions_url("http://h:1/v1/chat/completions") == "http://h:1/v1/chat/completions"


def test_errors_are_counted_by_status(tmp_path: Path) -> None:
    """Three scripted 500s and a 429 among 40 requests: counted by status, latency over the rest."""
    with running(JudgeServer(script=[Reply(status=500)] * 3 + [Reply(status=429)])) as server:
        result = load.run_load(server.url, "any", requests=40, concurrency=4, max_tokens=4, warmup=0)
        assert result["errors"] == {"429": 1, "500": 3} and result["error_count"] == 4
        assert result["succeeded"] == 36 and result["completion_tokens"] == 36 * 5  # the judge's usage
        assert result["latency_ms"]["p50"] is not None and result["requests_per_s"] > 0
        bodies = server.bodies()
        assert len(bodies) == 40 and {b["max_tokens"] for b in bodies} == {4} and "user" not in bodies[0]

    with running(JudgeServer()) as server:  # the command line: exit 0, the summary written
        prompts = write_jsonl(tmp_path / "chat.jsonl", [
            {"messages": [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"}]},
            {"messages": [{"role": "user", "content": "q2"}]}])
        out = tmp_path / "results.json"
        env = {**os.environ, "LOAD_TOKEN": TOKEN}
        done = subprocess.run([sys.executable, str(TOOL), "--url", server.url, "--model", "m", "--requests", "10",
                               "--concurrency", "3", "--prompts", str(prompts), "--users", "2", "--token-env",
                               "LOAD_TOKEN", "--out", str(out)], capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "p50" in done.stdout and "errors: 0" in done.stdout
        assert json.loads(out.read_text())["succeeded"] == 10
        sent = server.requests
        assert {r["headers"]["authorization"] for r in sent} == {f"Bearer {TOKEN}"}
        assert {r["body"]["messages"][-1]["content"] for r in sent} == {"q1", "q2"}  # the answer dropped
        assert {r["body"]["user"] for r in sent} == {"load-0", "load-1"}

    dead = subprocess.run([sys.executable, str(TOOL), "--url", f"http://127.0.0.1:{free_port()}/v1", "--model", "m",
                           "--requests", "3", "--warmup", "0"], capture_output=True, text=True, timeout=60)
    assert dead.returncode == 1 and "errors: 3 (ConnectError: 3)" in dead.stdout


@pytest.fixture
def served(project: Path) -> Iterator[int]:
    """One trained, registered and deployed version of the tiny model behind a real ``ftp serve``."""
    trained = invoke("run", "pipeline.yaml", "--quiet", "--set", "train.epochs=1", "--set", "deploy.smoke_test=0")
    assert trained.exit_code == 0, trained.stderr
    with serving(project, "-p", "pipeline.yaml", "--token-env", "SERVE_TOKEN", env={"SERVE_TOKEN": TOKEN}) as port:
        yield port


def run_tool(port: int, *args: str, out: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    done = subprocess.run([sys.executable, str(TOOL), "--url", f"http://127.0.0.1:{port}/v1", "--model", "tiny-model",
                           "--max-tokens", "8", "--token-env", "SERVE_TOKEN", "--out", str(out), *args],
                          capture_output=True, text=True, env={**os.environ, "SERVE_TOKEN": TOKEN}, timeout=300)
    print(done.stdout)
    return done, json.loads(out.read_text()) if out.exists() else {}


def logged_rows(path: Path, expected: int, seconds: float = 15) -> list[dict[str, Any]]:
    """The request log's rows once it holds ``expected`` of them (the server writes from a thread)."""
    from ftp.serve.request_log import read_requests

    end = time.monotonic() + seconds
    rows: list[dict[str, Any]] = []
    while time.monotonic() < end:
        rows = read_requests(path) if path.exists() else []
        if len(rows) >= expected:
            break
        time.sleep(0.2)
    return rows


def requests_counted(port: int) -> float:
    """The sum of ``ftp_requests_total`` on the server's /metrics."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    ask = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(ask, timeout=10) as answer:
        text = answer.read().decode("utf-8")
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == "ftp_requests_total")


@pytest.mark.slow
def test_a_thousand_requests_from_sixteen_clients(served: int, project: Path, tmp_path: Path) -> None:
    """The tool against ftp serve: no errors, p50/p95/p99 printed; the server logged and counted every request."""
    start = time.monotonic()
    done, result = run_tool(served, "--requests", "1000", "--concurrency", "16", out=tmp_path / "plain.json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert result["succeeded"] == 1000 and result["error_count"] == 0
    latency = result["latency_ms"]
    assert isinstance(latency, dict) and 0 < latency["p50"] <= latency["p95"] <= latency["p99"]
    print(f"1000 plain requests: {time.monotonic() - start:.1f} s including the tool's start")
    logged = logged_rows(project / ".ftp" / "requests.db", 1001)  # the warm-up request too
    assert len(logged) == 1001 and {r["status"] for r in logged} == {200}
    assert sum(r["completion_tokens"] for r in logged) == result["completion_tokens"] + 8
    assert requests_counted(served) == 1001

    streamed, summary = run_tool(served, "--requests", "100", "--concurrency", "16", "--stream",
                                 out=tmp_path / "stream.json")
    assert streamed.returncode == 0, streamed.stdout + streamed.stderr
    ttft = summary["ttft_ms"]
    assert summary["error_count"] == 0 and isinstance(ttft, dict) and ttft["p50"] is not None
    assert summary["completion_tokens"] > 0  # from the include_usage chunk

    denied = subprocess.run([sys.executable, str(TOOL), "--url", f"http://127.0.0.1:{served}/v1", "--model",
                             "tiny-model", "--requests", "10", "--warmup", "0"], capture_output=True, text=True,
                            timeout=60)
    assert denied.returncode == 1 and "errors: 10 (401: 10)" in denied.stdout
