"""``ftp serve`` with a third-party serving engine, registered through ``ftp_serving_engine`` as a plugin
package would: the server's own behaviour (an error after the stream began, 429 past the concurrency
limit, 504 on timeout, mirror copies logged and not returned, the engine loaded once per version) on a
real uvicorn server in this process, driven by the official openai client."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import invoke
from ftp import hookimpl
from ftp.types import Completion, DeployRequest, GenerationRequest, ModelRef, ModelVersion, Provisioned, ServeContext

RELEASE = threading.Event()


class Scripted:
    """Answers by the last message: ``fail`` breaks after the first word, ``hold`` waits for RELEASE,
    ``slow`` sleeps past the timeout; anything else is echoed word by word, prefixed by the version."""

    def __init__(self, label: str) -> None:
        self.label = label

    def stream(self, request: GenerationRequest) -> Iterator[str | Completion]:
        text = str(request.messages[-1]["content"])
        if text == "hold":
            RELEASE.wait(30)
        if text == "slow":
            time.sleep(float(request.timeout_s or 1) + 0.5)
            raise TimeoutError("scripted")
        return self._pieces(f"{self.label} {text}", fail=text == "fail")

    def _pieces(self, text: str, fail: bool) -> Iterator[str | Completion]:
        words = text.split(" ")
        for i, word in enumerate(words):
            yield word if i == 0 else " " + word
            if fail:
                raise RuntimeError("the engine broke mid-answer")
        yield Completion(text=text, finish_reason="stop", prompt_tokens=3, completion_tokens=len(words))

    def complete(self, request: GenerationRequest) -> Completion:
        return next(p for p in self.stream(request) if isinstance(p, Completion))


class ScriptedEngine:
    name = "scripted"
    loads: list[str] = []

    def load(self, version: ModelVersion, endpoint: Provisioned | None) -> Scripted:
        self.loads.append(f"{version.name}:{version.version}")
        return Scripted(f"v{version.version}")

    def close(self) -> None:
        pass


class RecordsOnly:
    name = "scripted"

    def deploy(self, request: DeployRequest, ctx: Any) -> Provisioned:
        return Provisioned(backend="scripted")


class Plugin:
    @hookimpl
    def ftp_deployer(self, backend: str) -> RecordsOnly | None:
        return RecordsOnly() if backend == "scripted" else None

    @hookimpl
    def ftp_serving_engine(self, backend: str, context: ServeContext) -> ScriptedEngine | None:
        return ScriptedEngine() if backend == "scripted" else None


def version(number: int) -> ModelVersion:
    return ModelVersion(name="bot", version=number, created_at="2026-12-01T00:00:00Z", run_id=f"run{number}",
                        backend="scripted", base_model="scripted-base",
                        model=ModelRef(kind="cloud", base="scripted-base", backend="scripted", cloud_id=f"bot-{number}"),
                        data_sha256={}, hyperparameters={}, metrics={}, pipeline_sha256="", code_version="")


@pytest.fixture
def server(tmp_path: Path, pm: Any) -> Iterator[tuple[int, Path]]:
    import uvicorn

    from ftp.cli.serve import build_app
    from ftp.config.settings import ServeSettings
    from ftp.deploy.slots import record
    from ftp.hooks import Hooks

    pm.register(Plugin())
    hooks = Hooks(pm)
    registry = hooks.model_registry("sqlite", tmp_path / "registry.db")
    store = tmp_path / "deployments.db"
    for number, traffic in ((1, 100), (2, 0)):
        registered = registry.register(version(number))
        record(DeployRequest(version=registered, strategy="blue-green", traffic_new=traffic, store=store),
               Provisioned(backend="scripted"), f"run{number}")
    settings = ServeSettings.model_validate({"limits": {"max_concurrent": 2, "timeout_s": 0.5}})
    app = build_app(hooks, settings, ServeContext(), registry, store, None)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    runner = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    while not runner.started:
        time.sleep(0.05)
    ScriptedEngine.loads.clear()
    yield port, store
    runner.should_exit = True
    thread.join(10)


def client(port: int) -> Any:
    import openai

    return openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0,
                         _strict_response_validation=True)


def say(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_errors_limits_and_mirror_through_a_plugin_engine(server: tuple[int, Path]) -> None:
    import openai

    from ftp.serve.request_log import read_requests

    port, store = server
    api = client(port)
    assert api.chat.completions.create(model="bot", messages=say("hello there")).choices[0].message.content == \
        "v1 hello there"
    streamed = list(api.chat.completions.create(model="bot", messages=say("one two"), stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == "v1 one two"

    # an engine failure after the first chunk: an error event, which the client raises
    with pytest.raises(openai.APIError, match="internal error"):
        for _ in api.chat.completions.create(model="bot", messages=say("fail"), stream=True):
            pass

    # past max_concurrent (2): 429 while two are held, then served again
    held = [threading.Thread(target=lambda: api.chat.completions.create(model="bot", messages=say("hold")))
            for _ in range(2)]
    for t in held:
        t.start()
    time.sleep(0.5)
    with pytest.raises(openai.RateLimitError):
        api.chat.completions.create(model="bot", messages=say("third"))
    RELEASE.set()
    for t in held:
        t.join(10)

    # the engine's timeout: 504 in OpenAI's shape
    with pytest.raises(openai.InternalServerError) as late:
        api.chat.completions.create(model="bot", messages=say("slow"))
    assert late.value.status_code == 504

    # mirror: green (v2, 0% traffic) gets a copy of every request, logged as mirrored and never returned
    changed = invoke("deploy", "set-traffic", "bot", "--mirror", "50", "--deployments", str(store))
    assert changed.exit_code == 0, changed.stderr
    answers = {api.chat.completions.create(model="bot", messages=say(f"m{i}")).choices[0].message.content[:2]
               for i in range(30)}
    assert answers == {"v1"}
    time.sleep(1.0)
    rows = read_requests(store.parent / "requests.db")
    mirrored = [r for r in rows if r["mirrored"]]
    assert 5 <= len(mirrored) <= 25 and {r["slot"] for r in mirrored} == {"green"}  # ~50% of 30
    assert {r["model_version"] for r in mirrored} == {2} and all(r["status"] == 200 for r in mirrored)
    statuses = {r["status"] for r in rows if not r["mirrored"]}
    assert {200, 429, 504} <= statuses and any(r["error_type"] == "RuntimeError" for r in rows)
    assert sorted(set(ScriptedEngine.loads)) == ["bot:1", "bot:2"] and len(ScriptedEngine.loads) == 2  # once each
