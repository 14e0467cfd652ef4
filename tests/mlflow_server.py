"""A real MLflow tracking server for the tests: the full ``mlflow`` package (dev extra), a SQLite
backend store and a local artifact root in a temporary folder, a free port on 127.0.0.1.

One per test session (``mlflow_server``): it takes 10-30 s to start on two cores, most of it creating
the database's tables. Job execution is off (it would spawn huey consumers that outlive the server),
and the server runs in its own process group, which is stopped as a whole afterwards.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

START_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class MlflowServer:
    uri: str
    folder: Path
    started_in_s: float


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthy(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the whole group, SIGKILL to what is left after 10 s."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            os.killpg(process.pid, 0)  # the leader is gone: anything left in its group?
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def start(folder: Path) -> tuple[subprocess.Popen[bytes], MlflowServer]:
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    (folder / "artifacts").mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    log = (folder / "server.log").open("wb")
    began = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
         "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    while not healthy(uri):
        if process.poll() is not None or time.monotonic() - began > START_TIMEOUT_S:
            stop(process)
            tail = (folder / "server.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"mlflow server did not answer /health at {uri}:\n{tail}")
        time.sleep(0.2)
    return process, MlflowServer(uri, folder, round(time.monotonic() - began, 1))


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """The session's MLflow server; skipped where the full mlflow package is not installed."""
    pytest.importorskip("mlflow.server", reason="the full mlflow package (dev extra) runs the test server")
    process, server = start(tmp_path_factory.mktemp("mlflow-server"))
    print(f"\nmlflow server at {server.uri}, up in {server.started_in_s} s")
    try:
        yield server
    finally:
        stop(process)
