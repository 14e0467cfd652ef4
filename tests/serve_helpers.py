"""Starting ``ftp serve`` as a user does (``python -m ftp serve``) for the tests that talk to a real server."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

SERVE = ["-m", "ftp", "serve"]  # the command a user types


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(port: int, proc: subprocess.Popen[bytes], seconds: float = 90) -> None:
    import urllib.request

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"ftp serve exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("ftp serve did not answer /health in time")


@contextlib.contextmanager
def serving(cwd: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[int]:
    """A server on a free port of 127.0.0.1 with ``args`` (e.g. ``-p pipeline.yaml``), killed afterwards."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, *SERVE, *args, "--port", str(port)], cwd=cwd,
                            env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_healthy(port, proc)
        yield port
    finally:
        proc.kill()
        proc.wait(timeout=10)
