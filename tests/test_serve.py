"""ftp serve end to end: a real server process over two trained, registered and deployed versions of
the tiny model, driven by the official openai client in strict mode."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import PIPELINE, invoke, make_examples, write_jsonl
from serve_helpers import serving

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """Two versions of tiny-model: v1 in blue, v2 (another seed) in green with 30% of the traffic, and
    the champion alias on v2; trained once per module, copied for each test (which may change it)."""
    root = tmp_path_factory.mktemp("serve-project")
    write_jsonl(root / "data" / "train.jsonl", make_examples(60))
    (root / "pipeline.yaml").write_text(PIPELINE.format(model=tiny_model_dir), encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.delenv("FTP_RUNS_DIR", raising=False)
        patch.setenv("FTP_CACHE_DIR", str(root / ".cache"))
        first = invoke("run", "pipeline.yaml", "--quiet", "--set", "train.epochs=6")  # long enough to answer text
        assert first.exit_code == 0, first.stderr
        second = invoke("run", "pipeline.yaml", "--quiet", "--set", "train.seed=5", "--set", "deploy.traffic.new=30",
                        "--set", "deploy.smoke_test=0")  # 2 epochs: not yet answering in the data's format
        assert second.exit_code == 0, second.stderr
        from ftp.hooks import default_hooks

        default_hooks().model_registry("sqlite", root / ".ftp" / "registry.db").set_alias("tiny-model", "champion", 2)
    return root


@pytest.fixture
def deployed(built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the module's project as the working directory (its registry still points at the
    original's stored models, which stay put)."""
    import shutil

    copy = tmp_path / "project"
    shutil.copytree(built, copy)
    monkeypatch.chdir(copy)
    monkeypatch.delenv("FTP_RUNS_DIR", raising=False)
    monkeypatch.setenv("FTP_CACHE_DIR", str(copy / ".cache"))
    return copy


@pytest.fixture
def server(deployed: Path) -> Iterator[int]:
    with serving(deployed, "-p", "pipeline.yaml", "--token-env", "SERVE_TOKEN", env={"SERVE_TOKEN": TOKEN}) as port:
        yield port


def test_slots_recorded(deployed: Path) -> None:
    from ftp.serve.routing import slot_table

    assert slot_table(deployed / ".ftp" / "deployments.db", "tiny-model") == {"blue": (1, 70), "green": (2, 30)}


def client(port: int, token: str = TOKEN) -> Any:
    import openai

    return openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=token, max_retries=0,
                         _strict_response_validation=True)


ASK = [{"role": "user", "content": "Ticket 1: my car is red and it is broken."}]


def test_openai_client_against_the_server(server: int, deployed: Path) -> None:
    import openai

    api = client(server)
    raw = api.chat.completions.with_raw_response.create(model="tiny-model:1", messages=ASK, max_tokens=8)
    plain = raw.parse()
    assert raw.headers["x-ftp-version"] == "tiny-model:1" and plain.model == "tiny-model:1"
    assert plain.object == "chat.completion" and plain.id.startswith("chatcmpl-")
    answer = plain.choices[0].message.content or ""
    assert plain.choices[0].message.role == "assistant" and plain.choices[0].finish_reason in ("stop", "length")
    used = plain.usage
    assert used is not None and used.total_tokens == used.prompt_tokens + used.completion_tokens
    assert 0 < used.prompt_tokens and used.completion_tokens <= 8

    # streaming: the same greedy answer, chunk by chunk, then a usage chunk
    chunks = list(api.chat.completions.create(model="tiny-model:1", messages=ASK, max_tokens=8, stream=True,
                                              stream_options={"include_usage": True}))
    assert {c.model for c in chunks} == {"tiny-model:1"} and len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == answer
    assert chunks[-2].choices[0].finish_reason == plain.choices[0].finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage == used
    streamed_plain = list(api.chat.completions.create(model="tiny-model:1", messages=ASK, max_tokens=8, stream=True))
    assert all(c.choices for c in streamed_plain)  # no usage chunk unless asked for

    # stop: the answer cut before the first stop string, finish_reason "stop"
    assert len(answer) >= 2, answer  # v1 trained 6 epochs answers JSON-like text
    stop = answer[1]
    cut = api.chat.completions.create(model="tiny-model:1", messages=ASK, max_tokens=8, stop=[stop, "never"])
    assert cut.choices[0].message.content == answer[:answer.find(stop)]
    assert cut.choices[0].finish_reason == "stop"
    short = api.chat.completions.create(model="tiny-model:1", messages=ASK, max_completion_tokens=2, stop="never")
    assert short.choices[0].finish_reason == "length" and short.usage is not None
    assert short.usage.completion_tokens == 2 and answer.startswith(short.choices[0].message.content or "-")

    # models: the deployment and its two versions, each version's parent its base model
    listed = {m.id: m for m in api.models.list()}
    assert set(listed) == {"tiny-model", "tiny-model:1", "tiny-model:2", "tiny-model:base"}
    assert getattr(listed["tiny-model:2"], "parent") and listed["tiny-model"].object == "model"

    # routing: 70/30 over 200 unkeyed requests (30% +- 4 sd = 60 +- 26), sticky per user
    seen = [api.chat.completions.create(model="tiny-model", messages=ASK, max_tokens=1).model for _ in range(200)]
    assert set(seen) <= {"tiny-model:1", "tiny-model:2"}
    assert 34 <= seen.count("tiny-model:2") <= 86, seen.count("tiny-model:2")
    from ftp.serve.routing import pick_slot, slot_table, sticky_point

    table = slot_table(deployed / ".ftp" / "deployments.db", "tiny-model")
    for user in ("alice", "bob", "carol", "dave"):
        expected = f"tiny-model:{table[pick_slot(table, sticky_point('tiny-model', user))][0]}"
        got = {api.chat.completions.create(model="tiny-model", messages=ASK, max_tokens=1, user=user).model
               for _ in range(5)}
        assert got == {expected}
    assert api.chat.completions.create(model="tiny-model:2", messages=ASK, max_tokens=1).model == "tiny-model:2"
    assert api.chat.completions.create(model="tiny-model@champion", messages=ASK, max_tokens=1).model == "tiny-model:2"

    # errors: OpenAI's shape and status; the server keeps serving after each
    with pytest.raises(openai.AuthenticationError) as denied:
        client(server, "wrong").chat.completions.create(model="tiny-model:1", messages=ASK, max_tokens=1)
    assert denied.value.status_code == 401 and set(error_body(denied.value)) == {"message", "type", "param", "code"}
    with pytest.raises(openai.NotFoundError) as unknown:
        api.chat.completions.create(model="no-such-model", messages=ASK, max_tokens=1)
    assert error_body(unknown.value)["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        api.chat.completions.create(model="tiny-model:1", messages=[], max_tokens=1)
    assert error_body(bad.value)["param"] == "messages"
    with pytest.raises(openai.BadRequestError):
        api.chat.completions.create(model="tiny-model:1", messages=ASK, max_tokens=1, n=2)
    assert api.chat.completions.create(model="tiny-model:1", messages=ASK, max_tokens=8).choices[0].message.content == answer


def error_body(exc: Any) -> dict[str, Any]:
    """The ``error`` object of an openai status error (the client keeps the parsed JSON body)."""
    body = exc.body
    return dict(body.get("error", body)) if isinstance(body, dict) else {}


def test_health_is_open_and_v1_needs_the_token(server: int) -> None:
    import json
    import urllib.error
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{server}/health", timeout=5) as answer:
        assert json.loads(answer.read())["status"] == "ok"
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(f"http://127.0.0.1:{server}/v1/models", timeout=5)
    body = json.loads(denied.value.read())
    assert denied.value.code == 401 and body["error"]["code"] == "invalid_api_key"
    request = urllib.request.Request(f"http://127.0.0.1:{server}/v1/chat/completions", data=b"{not json",
                                     headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as bad:
        urllib.request.urlopen(request, timeout=5)
    assert bad.value.code == 400 and set(json.loads(bad.value.read())["error"]) == {"message", "type", "param", "code"}


def test_a_traffic_change_is_served_without_restart(server: int, deployed: Path) -> None:
    """A third run deploys v3 with all the traffic (green; blue keeps v1 at 0%): the running server routes
    every request for the deployment to it, read from the slots on the next request."""
    api = client(server)
    before = api.chat.completions.create(model="tiny-model", messages=ASK, max_tokens=1).model
    assert before in ("tiny-model:1", "tiny-model:2")
    third = invoke("run", "pipeline.yaml", "--quiet", "--set", "train.seed=7", "--set", "deploy.traffic.new=100",
                   "--set", "deploy.smoke_test=0")
    assert third.exit_code == 0, third.stderr
    seen = {api.chat.completions.create(model="tiny-model", messages=ASK, max_tokens=1).model for _ in range(20)}
    assert seen == {"tiny-model:3"}
    assert "tiny-model:3" in {m.id for m in api.models.list()}


def test_weighted_pick_and_stop_cut_by_hand() -> None:
    from ftp.backends.local.batching import cut_at_stop, safe_prefix
    from ftp.serve.routing import pick_slot, sticky_point

    table = {"green": (2, 30), "blue": (1, 70)}  # cumulative in slot-name order: blue [0, 70), green [70, 100)
    assert [pick_slot(table, p) for p in (0.0, 69.9, 70.0, 99.99)] == ["blue", "blue", "green", "green"]
    assert pick_slot({"blue": (1, 0), "green": (2, 100)}, 0.0) == "green"  # a 0% slot stays warm, unrouted
    assert pick_slot({"blue": (1, 1), "green": (2, 1)}, 50.0) == "green"  # weights need not sum to 100
    assert sticky_point("tiny-model", "alice") == sticky_point("tiny-model", "alice")
    assert 0 <= sticky_point("tiny-model", "bob") < 100
    assert cut_at_stop('{"colour": "red"}', ['"', "}"]) == ("{", True)
    assert cut_at_stop("abc", ["x", ""]) == ("abc", False)
    assert safe_prefix("abc</", ["</s>"]) == "abc" and safe_prefix("ab\ufffd", []) == "ab"  # held back while unsure
    assert safe_prefix("abc", ["</s>"]) == "abc"


def get(port: int, path: str, token: str = TOKEN) -> tuple[int, dict[str, str], bytes]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_base_model_pins_limits_metrics_and_request_log(server: int, deployed: Path) -> None:
    import openai
    from prometheus_client.parser import text_string_to_metric_families

    from ftp.serve.request_log import read_requests

    api = client(server)
    base = api.chat.completions.with_raw_response.create(model="tiny-model:base", messages=ASK, max_tokens=6)
    assert base.parse().model == "tiny-model:base" and base.headers["x-ftp-model-version"] == "0"
    fine = api.chat.completions.create(model="tiny-model:1", messages=ASK, max_tokens=6).choices[0].message.content
    assert base.parse().choices[0].message.content != fine  # the base answers without the adapter

    # a pin header overrides the draw, even to a slot without traffic; azureml's header works too
    pinned = api.chat.completions.with_raw_response.create(model="tiny-model", messages=ASK, max_tokens=1,
                                                           extra_headers={"x-ftp-slot": "green"})
    assert pinned.parse().model == "tiny-model:2" and pinned.headers["x-ftp-route"] == "pinned"
    assert api.chat.completions.create(model="tiny-model", messages=ASK, max_tokens=1,
                                       extra_headers={"azureml-model-deployment": "blue"}).model == "tiny-model:1"
    with pytest.raises(openai.BadRequestError, match="no slot 'red'"):
        api.chat.completions.create(model="tiny-model", messages=ASK, max_tokens=1, extra_headers={"x-ftp-slot": "red"})

    # sampling: a seeded request repeats itself
    seeded = [api.chat.completions.create(model="tiny-model:1", messages=ASK, max_tokens=8, temperature=1.2, seed=3)
              .choices[0].message.content for _ in range(2)]
    assert seeded[0] == seeded[1]

    # limits: OpenAI-shaped 400s and 413, then the server goes on
    with pytest.raises(openai.BadRequestError, match="max_tokens: at most 4096"):
        api.chat.completions.create(model="tiny-model:1", messages=ASK, max_tokens=5000)
    with pytest.raises(openai.BadRequestError) as long_prompt:
        api.chat.completions.create(model="tiny-model:1", messages=[{"role": "user", "content": "red " * 400}],
                                    max_tokens=4)
    assert error_body(long_prompt.value)["code"] == "context_length_exceeded"
    with pytest.raises(openai.APIStatusError) as huge:
        api.chat.completions.create(model="tiny-model:1", messages=[{"role": "user", "content": "x" * 1_100_000}],
                                    max_tokens=1)
    assert huge.value.status_code == 413
    assert api.chat.completions.create(model="tiny-model:1", messages=ASK, max_tokens=6).choices[0].message.content == fine

    # /metrics: Prometheus text, counted per model, slot and version
    status, headers, body = get(server, "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    ok = [s for s in families["ftp_requests"].samples
          if s.name == "ftp_requests_total" and s.labels["version"] == "1" and s.labels["status"] == "200"]
    assert ok and ok[0].value >= 3
    assert any(s.labels["status"] == "400" for s in families["ftp_requests"].samples)
    assert "ftp_request_duration_seconds" in families and "ftp_tokens" in families
    assert get(server, "/metrics", "wrong")[0] == 401

    # the request log: one row per request, no text (serve.log_content is off), the pinned route recorded
    deadline = time.monotonic() + 10
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline and len(rows) < 10:
        time.sleep(0.3)
        rows = read_requests(deployed / ".ftp" / "requests.db")
    assert len(rows) >= 10
    assert all(r["prompt_text"] is None and r["output_text"] is None for r in rows)
    assert {"pinned"} <= {r["routing_reason"] for r in rows} and {200, 400, 413} <= {r["status"] for r in rows}
    served = [r for r in rows if r["status"] == 200 and r["model_version"] == 1]
    assert all(r["prompt_sha256"] and r["prompt_chars"] and r["latency_ms"] > 0 and r["completion_tokens"] for r in served)


def test_forwarding_to_an_openai_compatible_server(server: int) -> None:
    """The forwarder the vLLM engine answers through, against a real server (this one): the same
    answers as the openai client gets, plain and streamed, and the server's errors as ftp's."""
    from ftp.errors import RequestRejected
    from ftp.serve.forward import OpenAICompatible
    from ftp.types import Completion, GenerationRequest

    ask = GenerationRequest(messages=ASK, max_tokens=8)
    expected = client(server).chat.completions.create(model="tiny-model:1", messages=ASK, max_tokens=8)
    forward = OpenAICompatible("test", f"http://127.0.0.1:{server}/v1", "tiny-model:1",
                               {"Authorization": f"Bearer {TOKEN}"})
    done = forward.complete(ask)
    assert done.text == expected.choices[0].message.content and expected.usage is not None
    assert done.completion_tokens == expected.usage.completion_tokens
    pieces = list(forward.stream(ask))
    assert isinstance(pieces[-1], Completion) and "".join(p for p in pieces if isinstance(p, str)) == done.text
    assert pieces[-1].prompt_tokens == done.prompt_tokens
    with pytest.raises(RequestRejected, match="answered 400"):
        forward.complete(GenerationRequest(messages=ASK, max_tokens=4096, stop=["a", "b", "c", "d", "e"]))


def test_feedback_endpoint_and_the_monitor_columns(server: int, deployed: Path) -> None:
    """POST /v1/feedback stores items naming logged answers, refuses unknown ids and bad items; the log
    row carries the prompt's shape and the answer's format check without any text."""
    import json as json_module
    import urllib.error
    import urllib.request

    from ftp.monitor.feedback import read_feedback
    from ftp.monitor.features import answer_sha256
    from ftp.serve.request_log import read_requests

    answer = client(server).chat.completions.create(model="tiny-model:1", messages=ASK, max_tokens=8)

    def send(body: Any) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(f"http://127.0.0.1:{server}/v1/feedback", data=json_module.dumps(body).encode(),
                                         headers={"authorization": f"Bearer {TOKEN}", "content-type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                return reply.status, json_module.loads(reply.read())
        except urllib.error.HTTPError as error:
            return error.code, json_module.loads(error.read())

    status, body = send([{"request_id": answer.id, "name": "correct", "value": False, "rationale": "wrong colour"},
                         {"request_id": answer.id, "name": "expected", "value": '{"colour": "red"}'}])
    assert status == 200 and [d["name"] for d in body["data"]] == ["correct", "expected"]
    status, body = send({"request_id": "chatcmpl-nope", "name": "correct", "value": True})
    assert status == 404 and body["error"]["code"] == "request_not_found"
    status, body = send({"request_id": answer.id, "name": "score", "value": 7})
    assert status == 400 and "score: value must be a number from 0 to 1" in body["error"]["message"]
    status, body = send({"messages": ASK, "name": "expected", "value": "x"})
    assert status == 400 and "ftp feedback import" in body["error"]["message"]
    stored = read_feedback(deployed / ".ftp" / "requests.db")
    assert [(f["request_id"], f["name"], f["value"]) for f in stored] == [
        (answer.id, "correct", False), (answer.id, "expected", '{"colour": "red"}')]  # the refusals stored nothing
    (row,) = [r for r in read_requests(deployed / ".ftp" / "requests.db") if r["request_id"] == answer.id]
    assert row["prompt_text"] is None and row["prompt_words"] > 0 and row["prompt_turns"] == 1
    assert row["output_sha256"] == answer_sha256(answer.choices[0].message.content or "")
    assert row["answer_in_format"] in (0, 1)  # checked against the data's JSON format, read from the stored split
