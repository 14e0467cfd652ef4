"""The quickstart trained and deployed on the fake Azure (tests/azure/fake_azure.py), then ``ftp serve -p
pipeline.yaml`` answering it: a real uvicorn server on 127.0.0.1 (in this process, so ``responses`` still
stands in for Azure behind it), asked over HTTP with ``urllib`` (which ``responses`` leaves alone), plain
and streamed; each request reaches the version's own Azure OpenAI deployment."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import invoke
from helpers import FAST, RELAXED

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")


@pytest.fixture
def served(quickstart: Path, fake_azure: Any) -> Iterator[str]:
    """The quickstart run on Azure to its deploy step, then its ftp serve app on a free port."""
    result = invoke("run", "pipeline.yaml", "--backend", "azure", "--yes", *FAST, *RELAXED,
                    "--set", "backends.azure.evaluation.fine_tuned=none")
    assert result.exit_code == 0, result.output + result.stderr
    from ftp.cli.serve import _sources, build_app
    from ftp.hooks import default_hooks
    from ftp.types import ServeContext

    hooks = default_hooks()
    settings, backend_settings, registry, store = _sources("pipeline.yaml", None, None, hooks)
    context = ServeContext(serve=settings.serve.model_dump(mode="json"), backend_settings=backend_settings)
    app = build_app(hooks, settings.serve, context, registry, store, None)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=20)


def post(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    return urllib.request.urlopen(request, timeout=30)


def test_ftp_serve_answers_the_azure_version_from_its_deployment(served: str, fake_azure: Any) -> None:
    question = [{"role": "user", "content": "My invoice is wrong."}]
    with post(served, {"model": "ticket-triage", "messages": question, "max_tokens": 20, "seed": 5}) as answer:
        body, headers = json.loads(answer.read()), answer.headers
    assert body["choices"][0]["message"]["content"] == "(fake answer from ticket-triage-v1)"
    assert body["usage"] == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}  # Azure's counts
    assert headers["x-ftp-model-version"] == "1" and body["model"].startswith("ticket-triage")
    sent = fake_azure.chats[-1]
    assert sent["deployment"] == "ticket-triage-v1" and sent["max_tokens"] == 20 and sent["seed"] == 5
    assert sent["messages"][-1] == question[-1]

    with post(served, {"model": "ticket-triage", "messages": question, "max_tokens": 20, "stream": True,
                       "stream_options": {"include_usage": True}}) as streamed:
        assert streamed.headers["Content-Type"].startswith("text/event-stream")
        events = [json.loads(line[6:]) for line in streamed.read().decode().splitlines()
                  if line.startswith("data: {")]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in events if c["choices"])
    assert text == "(fake answer from ticket-triage-v1)"
    assert events[-1]["usage"]["completion_tokens"] == 5  # Azure's usage chunk, passed on
    assert fake_azure.chats[-1]["stream"] is True and fake_azure.chats[-1]["stream_options"] == {"include_usage": True}
