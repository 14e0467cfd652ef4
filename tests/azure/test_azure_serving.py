"""``ftp serve``'s Azure engine against Azure faked at the HTTP boundary with ``responses``.

Chat completion bodies, SSE chunks and error bodies follow /work/shared/reference/azure-api.md (A.6, A.7:
``POST {endpoint}/openai/deployments/{deployment}/chat/completions?api-version=...``) and
mlops-anchors 3.3 (the stream's shape); the Azure ML key listings are the REST calls azure-ai-ml sends
(``POST .../serverlessEndpoints/{name}/listKeys``, ``GET`` + ``POST .../onlineEndpoints/{name}/listKeys``).
Each test asserts what was sent (URL with the deployment and api-version, body fields, auth header) and
what the engine returned. Entra ID is the fake token endpoint of tests/azure/fake_azure.py with
azure-identity's real credential; nothing reaches the network.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from ftp.errors import FtpError, RequestRejected, UserError
from ftp.types import GenerationRequest, ModelRef, ModelVersion, Provisioned, ServeContext

responses = pytest.importorskip("responses")
from ftp.backends.azure.serving import AzureServingEngine  # noqa: E402

ENDPOINT = "https://triage-aoai.openai.azure.com"
KEY = "key-for-serving-7c1e"
FT_MODEL = "gpt-4.1-mini-2025-04-14.ft-0123456789abcdef0123456789abcdef"
CHAT = ENDPOINT + "/openai/deployments/{}/chat/completions"


def version(number: int = 3, artifact: str = FT_MODEL) -> ModelVersion:
    return ModelVersion(name="ticket-triage", version=number, created_at="2026-12-01T10:00:00Z", run_id="r1",
                        backend="azure", base_model="gpt-4.1-mini-2025-04-14",
                        model=ModelRef(kind="cloud", base="gpt-4.1-mini-2025-04-14", backend="azure", cloud_id=artifact),
                        data_sha256={}, hyperparameters={}, metrics={}, pipeline_sha256="p", code_version="ftp 0")


def recorded(name: str, endpoint: str = ENDPOINT) -> Provisioned:
    """What AzureDeployer.deploy records for a version (AzureDeployment.as_dict)."""
    return Provisioned(backend="azure", endpoint=f"{endpoint}/openai/deployments/{name}",
                       details={"name": name, "model": FT_MODEL, "sku": "Standard", "capacity": 1,
                                "endpoint": f"{endpoint}/openai/deployments/{name}", "state": "Succeeded"})


def engine(**backend: Any) -> AzureServingEngine:
    settings = {"endpoint": ENDPOINT, **backend}
    return AzureServingEngine(ServeContext(serve={"limits": {"timeout_s": 30}}, backend_settings=settings))


def ask(**fields: Any) -> GenerationRequest:
    return GenerationRequest(messages=[{"role": "system", "content": "Triage tickets."},
                                       {"role": "user", "content": "My order is late."}], **{"max_tokens": 64, **fields})


def chat_completion(text: str, finish: str = "stop", usage: dict[str, int] | None = None) -> dict[str, Any]:
    """A chat completion as the data plane returns it (created, model, choices, usage)."""
    body: dict[str, Any] = {"id": "chatcmpl-A1b2", "object": "chat.completion", "created": 1764583200,
                            "model": "gpt-4.1-mini-2025-04-14.ft-0123", "choices": [
                                {"index": 0, "finish_reason": finish, "logprobs": None,
                                 "message": {"role": "assistant", "content": text}}]}
    if usage is not None:
        body["usage"] = usage
    return body


def sse(*chunks: dict[str, Any], done: bool = True) -> str:
    return "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + ("data: [DONE]\n\n" if done else "")


def delta(content: str | None = None, finish: str | None = None, role: bool = False) -> dict[str, Any]:
    d: dict[str, Any] = {"role": "assistant", "content": ""} if role else ({"content": content} if content else {})
    return {"id": "chatcmpl-A1b2", "object": "chat.completion.chunk", "created": 1764583200, "model": "m",
            "choices": [{"index": 0, "delta": d, "finish_reason": finish}]}


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Only what a test registers answers; an API key in the variable the settings name."""
    from fake_azure import FakeClock
    from ftp.backends.azure import http

    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    monkeypatch.setattr(http, "CLOCK", FakeClock())
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def body_of(call: Any) -> dict[str, Any]:
    return json.loads(call.request.body)


def query(call: Any) -> dict[str, list[str]]:
    return parse_qs(urlparse(call.request.url).query)


# --- Azure OpenAI -----------------------------------------------------------------------------------


def test_a_request_goes_to_the_versions_deployment_with_every_field_and_usage_comes_back(api: Any) -> None:
    api.post(CHAT.format("ticket-triage-v3"), json=chat_completion('{"category": "shipping"}', usage={
        "prompt_tokens": 31, "completion_tokens": 9, "total_tokens": 40}))
    served = engine().load(version(), recorded("ticket-triage-v3"))
    done = served.complete(ask(temperature=0.7, top_p=0.9, seed=7, stop=["\n\n", "END"]))

    assert done.text == '{"category": "shipping"}' and done.finish_reason == "stop"
    assert (done.prompt_tokens, done.completion_tokens) == (31, 9)
    call = api.calls[0]
    assert query(call) == {"api-version": ["2024-10-21"]} and call.request.headers["api-key"] == KEY
    assert body_of(call) == {"messages": [{"role": "system", "content": "Triage tickets."},
                                          {"role": "user", "content": "My order is late."}],
                             "max_tokens": 64, "temperature": 0.7, "top_p": 0.9, "seed": 7, "stop": ["\n\n", "END"]}
    assert served.label == f"ticket-triage:3 on Azure OpenAI deployment ticket-triage-v3 ({ENDPOINT})"


def test_seed_and_stop_are_left_out_when_not_asked_and_length_is_kept(api: Any) -> None:
    api.post(CHAT.format("ticket-triage-v3"), json=chat_completion("a long answ", "length", usage={
        "prompt_tokens": 20, "completion_tokens": 64, "total_tokens": 84}))
    done = engine().load(version(), recorded("ticket-triage-v3")).complete(ask())
    assert done.finish_reason == "length" and done.completion_tokens == 64
    assert set(body_of(api.calls[0])) == {"messages", "max_tokens", "temperature", "top_p"}


def test_the_v1_surface_names_the_deployment_in_the_body_and_sends_no_api_version(api: Any) -> None:
    api.post(ENDPOINT + "/openai/v1/chat/completions", json=chat_completion("billing", usage={
        "prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}))
    done = engine(api_version="v1").load(version(), recorded("ticket-triage-v3")).complete(ask())
    assert done.text == "billing" and body_of(api.calls[0])["model"] == "ticket-triage-v3"
    assert query(api.calls[0]) == {}


def test_the_deployment_is_found_from_the_record_then_the_settings(api: Any) -> None:
    for name in ("from-url", "configured", "ticket-triage-v4"):
        api.post(CHAT.format(name), json=chat_completion(name))
    url_only = Provisioned(backend="azure", endpoint=f"{ENDPOINT}/openai/deployments/from-url", details={})
    assert engine().load(version(), url_only).complete(ask()).text == "from-url"
    bare = Provisioned(backend="azure", endpoint=None, details={"state": "Succeeded"})
    assert engine(deployment={"name": "configured"}).load(version(), bare).complete(ask()).text == "configured"
    assert engine().load(version(4), bare).complete(ask()).text == "ticket-triage-v4"


def test_without_a_pipeline_the_recorded_url_says_which_resource_to_call(api: Any) -> None:
    other = "https://other-resource.openai.azure.com"
    api.post(CHAT.format("ticket-triage-v3").replace(ENDPOINT, other), json=chat_completion("ok"))
    served = AzureServingEngine(ServeContext()).load(version(), recorded("ticket-triage-v3", other))
    assert served.complete(ask()).text == "ok"
    assert api.calls[0].request.headers["api-key"] == KEY  # backends.azure defaults: the key from AZURE_OPENAI_API_KEY


def test_no_usage_in_the_answer_counts_the_tokens_here(api: Any) -> None:
    api.post(CHAT.format("ticket-triage-v3"), json=chat_completion("one two three four five six seven eight"))
    done = engine().load(version(), recorded("ticket-triage-v3")).complete(ask())
    assert done.prompt_tokens > 0 and done.completion_tokens > 0


def test_entra_id_sends_a_data_plane_token(fake_azure: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_OPENAI_API_KEY")
    fake_azure.base_deployments["ticket-triage-v3"] = "gpt-4.1-mini-2025-04-14"
    from fake_azure import DATA_SCOPE
    from fake_azure import ENDPOINT as FAKE

    served = AzureServingEngine(ServeContext(backend_settings={"endpoint": FAKE, "auth": "entra"})).load(
        version(), recorded("ticket-triage-v3", FAKE))
    done = served.complete(ask(max_tokens=12))
    assert done.text == "(fake answer from ticket-triage-v3)" and (done.prompt_tokens, done.completion_tokens) == (10, 5)
    assert fake_azure.chats[0]["max_tokens"] == 12 and set(fake_azure.tokens.values()) == {DATA_SCOPE}


def test_many_threads_answer_at_once(api: Any) -> None:
    api.post(CHAT.format("ticket-triage-v3"), json=chat_completion("shipping"))
    served = engine().load(version(), recorded("ticket-triage-v3"))
    answers: list[str] = []
    threads = [threading.Thread(target=lambda: answers.append(served.complete(ask()).text)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert answers == ["shipping"] * 8 and len(api.calls) == 8
    served.close()


# --- streaming --------------------------------------------------------------------------------------


def test_stream_forwards_azures_deltas_then_the_whole_completion(api: Any) -> None:
    prompt_filter = {"choices": [], "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
                     "id": "", "object": "", "created": 0, "model": ""}  # Azure's first chunk: the prompt's filter
    usage = {"id": "chatcmpl-A1b2", "object": "chat.completion.chunk", "created": 1764583200, "model": "m",
             "choices": [], "usage": {"prompt_tokens": 18, "completion_tokens": 3, "total_tokens": 21}}
    api.post(CHAT.format("ticket-triage-v3"), body=sse(prompt_filter, delta(role=True), delta('{"category"'),
                                                         delta(': "billing"}'), delta(finish="stop"), usage),
             content_type="text/event-stream")
    items = list(engine().load(version(), recorded("ticket-triage-v3")).stream(ask(seed=3)))
    assert items[:-1] == ['{"category"', ': "billing"}']
    done = items[-1]
    assert done.text == '{"category": "billing"}' and done.finish_reason == "stop"
    assert (done.prompt_tokens, done.completion_tokens) == (18, 3)
    sent = body_of(api.calls[0])
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True} and sent["seed"] == 3


def test_an_older_api_version_streams_without_usage_and_ftp_counts(api: Any) -> None:
    api.post(CHAT.format("ticket-triage-v3"), body=sse(delta(role=True), delta("shipp"), delta("ing", "length")),
             content_type="text/event-stream")
    items = list(engine(api_version="2024-06-01").load(version(), recorded("ticket-triage-v3")).stream(ask()))
    assert items[:-1] == ["shipp", "ing"] and items[-1].finish_reason == "length" and items[-1].completion_tokens > 0
    assert "stream_options" not in body_of(api.calls[0]) and query(api.calls[0]) == {"api-version": ["2024-06-01"]}


def test_a_whole_answer_to_a_stream_request_is_passed_on_whole(api: Any) -> None:
    api.post(CHAT.format("ticket-triage-v3"), json=chat_completion("billing", usage={
        "prompt_tokens": 8, "completion_tokens": 1, "total_tokens": 9}))
    items = list(engine().load(version(), recorded("ticket-triage-v3")).stream(ask()))
    assert items[0] == "billing" and items[-1].completion_tokens == 1 and len(items) == 2


def test_another_backends_block_is_ignored_and_a_bad_azure_key_is_one_line(api: Any) -> None:
    api.post(CHAT.format("ticket-triage-v3"), json=chat_completion("ok"))
    local_block = ServeContext(backend_settings={"devices": "auto", "pack_multiple": True})  # ftp serve -p's default
    assert AzureServingEngine(local_block).load(version(), recorded("ticket-triage-v3")).complete(ask()).text == "ok"
    with pytest.raises(UserError, match=r"^backends.azure.retry.attempts: "):
        AzureServingEngine(ServeContext(backend_settings={"retry": {"attempts": 0}}))


def test_an_error_event_mid_stream_is_one_line(api: Any) -> None:
    failure = {"error": {"code": "server_error", "message": "The model produced invalid content."}}
    api.post(CHAT.format("ticket-triage-v3"), body=sse(delta(role=True), delta("ship"), failure, done=False),
             content_type="text/event-stream")
    pieces = engine().load(version(), recorded("ticket-triage-v3")).stream(ask())
    assert next(pieces) == "ship"
    with pytest.raises(FtpError) as failed:
        list(pieces)
    assert str(failed.value) == ("ticket-triage:3: Azure failed mid-stream: server_error: The model produced invalid "
                                 "content.")


# --- errors -----------------------------------------------------------------------------------------


def test_an_azure_error_is_one_line_with_status_code_and_message(api: Any) -> None:
    api.post(CHAT.format("ticket-triage-v3"), status=400, json={"error": {
        "code": "content_filter", "message": "The response was filtered due to the prompt triggering Azure OpenAI's\n"
                                             "content management policy.", "param": "prompt", "status": 400}})
    with pytest.raises(FtpError) as failed:
        engine().load(version(), recorded("ticket-triage-v3")).complete(ask())
    assert str(failed.value) == (
        "ticket-triage:3: POST /openai/deployments/ticket-triage-v3/chat/completions: HTTP 400 content_filter: The "
        "response was filtered due to the prompt triggering Azure OpenAI's content management policy.")
    assert len(api.calls) == 1  # a 400 is not retried
    # the request as sent is the client's to fix: ftp serve answers it 400 with Azure's code, not 5xx
    assert isinstance(failed.value, RequestRejected) and failed.value.code == "content_filter"


def test_a_deployment_azure_deleted_says_to_deploy_again(api: Any) -> None:
    api.post(CHAT.format("ticket-triage-v3"), status=404, json={"error": {
        "code": "DeploymentNotFound", "message": "The API deployment for this resource does not exist."}})
    with pytest.raises(FtpError, match=r"HTTP 404 DeploymentNotFound: The API deployment for this resource does not "
                                       r"exist\.; Azure deletes .* --steps deploy\)$"):
        engine().load(version(), recorded("ticket-triage-v3")).complete(ask())


def test_throttling_is_retried_after_retry_after(api: Any) -> None:
    from ftp.backends.azure import http

    api.post(CHAT.format("ticket-triage-v3"), status=429, headers={"Retry-After": "2"},
             json={"error": {"code": "429", "message": "Requests to the ChatCompletions_Create Operation have exceeded "
                                                       "the rate limit."}})
    api.post(CHAT.format("ticket-triage-v3"), json=chat_completion("billing"))
    assert engine().load(version(), recorded("ticket-triage-v3")).complete(ask()).text == "billing"
    assert http.CLOCK.sleeps == [2.0] and len(api.calls) == 2


def test_retries_never_outlast_the_servers_timeout(api: Any) -> None:
    from ftp.backends.azure import http

    api.post(CHAT.format("ticket-triage-v3"), status=503, headers={"Retry-After": "20"},
             json={"error": {"code": "serviceUnavailable", "message": "Try again."}})
    with pytest.raises(FtpError, match="HTTP 503 serviceUnavailable: Try again. \\(gave up after 2 tries"):
        engine().load(version(), recorded("ticket-triage-v3")).complete(ask())
    assert http.CLOCK.sleeps == [20.0] and len(api.calls) == 2  # serve.limits.timeout_s 30: a second 20 s wait is not made


def test_a_version_without_a_deployment_is_refused_naming_the_deploy_step(api: Any) -> None:
    with pytest.raises(UserError) as refused:
        engine().load(version(), None)
    assert str(refused.value) == ("ticket-triage:3 cannot be served from Azure: no deployment of it is on record "
                                  "(deploy.store); deploy it first (ftp run PIPELINE --backend azure --steps deploy)")
    creating = Provisioned(backend="azure", endpoint=None, details={"name": "ticket-triage-v3", "state": "Creating"})
    with pytest.raises(UserError, match="its deployment ticket-triage-v3 is Creating; deploy it first"):
        engine().load(version(), creating)
    assert not api.calls


def test_the_base_model_answers_from_the_evaluations_base_deployment(api: Any) -> None:
    api.post(CHAT.format("gpt-41-mini-base"), json=chat_completion("base answer"))
    base = version().model_copy(update={"version": 0, "model": ModelRef(kind="base", base="gpt-4.1-mini-2025-04-14",
                                                                         backend="azure")})
    assert engine(evaluation={"base_deployment": "gpt-41-mini-base"}).load(base, None).complete(ask()).text == "base answer"
    with pytest.raises(UserError, match="set backends.azure.evaluation.base_deployment"):
        engine().load(base, None)


def test_the_hook_answers_for_azure_only(pm: Any) -> None:
    from ftp.hooks import Hooks

    hooks = Hooks(pm)
    made = hooks.serving_engine("azure", ServeContext(backend_settings={"endpoint": ENDPOINT}))
    assert isinstance(made, AzureServingEngine) and made.name == "azure"
    assert pm.hook.ftp_serving_engine(backend="nope", context=ServeContext()) is None


# --- Azure ML ---------------------------------------------------------------------------------------

ARM = "https://management.azure.com"
WS = ARM + "/subscriptions/SUB/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws"
AML = {"kind": "azureml", "subscription_id": "SUB", "resource_group": "rg", "workspace": "ws"}
FT_AML = "azureml://locations/eastus/workspaces/0f1e/models/ticket-triage/versions/3"


class FakeCredential:
    """A TokenCredential handing out a fixed ARM token (azure-identity's own is exercised above)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        assert scopes == ("https://management.azure.com/.default",)
        return AccessToken("arm-token", int(time.time()) + 3600)


def adapter() -> Any:
    pytest.importorskip("azure.ai.ml")
    from ftp.backends.azure.azureml import AzureMLAdapter

    return AzureMLAdapter(subscription_id="SUB", resource_group="rg", workspace="ws", credential=FakeCredential(),
                          lro_interval=0, client_options={"retry_total": 0})


def aml_engine() -> AzureServingEngine:
    return AzureServingEngine(ServeContext(backend_settings=AML), adapter=adapter())


def test_a_serverless_endpoint_answers_with_its_key_listed_once(api: Any) -> None:
    scoring = "https://ticket-triage-v3.eastus.models.ai.azure.com"
    api.post(re.compile(re.escape(WS) + r"/serverlessEndpoints/ticket-triage-v3/listKeys\?api-version=2024-01-01-preview$"),
             json={"primaryKey": "sl-key-1", "secondaryKey": "sl-key-2"})
    api.post(scoring + "/v1/chat/completions", json=chat_completion("billing", usage={
        "prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14}))
    record = Provisioned(backend="azure", endpoint=scoring, details={  # what the azureml deploy step records
        "name": "ticket-triage-v3", "model": FT_AML, "sku": "Consumption", "capacity": 0, "endpoint": scoring,
        "state": "Succeeded"})
    served = aml_engine().load(version(artifact=FT_AML), record)
    assert [served.complete(ask(seed=1)).text for _ in range(2)] == ["billing", "billing"]
    listed, *chats = api.calls
    assert listed.request.headers["Authorization"] == "Bearer arm-token"
    assert all(c.request.headers["Authorization"] == "sl-key-1" for c in chats)  # the key as Azure's sample sends it
    assert body_of(chats[0])["seed"] == 1 and body_of(chats[0])["max_tokens"] == 64
    assert served.label == "ticket-triage:3 on Azure ML serverless endpoint ticket-triage-v3"
    streamed = list(served.stream(ask()))
    assert streamed[0] == "billing" and streamed[-1].completion_tokens == 2  # answered whole, sent as one piece


def test_an_online_deployment_is_pinned_with_the_deployment_header(api: Any) -> None:
    scoring = "https://triage.eastus.inference.ml.azure.com/score"
    endpoint = re.escape(WS) + r"/onlineEndpoints/triage"
    api.get(re.compile(endpoint + r"\?api-version=[0-9a-z-]+$"), json={
        "id": "/subscriptions/SUB/.../onlineEndpoints/triage", "name": "triage", "location": "eastus",
        "properties": {"authMode": "Key", "scoringUri": scoring, "traffic": {"blue-v2": 100},
                       "provisioningState": "Succeeded"}})
    api.post(re.compile(endpoint + r"/listKeys\?api-version=[0-9a-z-]+$"),
             json={"primaryKey": "ol-key-1", "secondaryKey": "ol-key-2"})
    api.post(scoring, json={"output": "shipping"})  # the Azure ML chat-completion shape
    record = Provisioned(backend="azure", endpoint=scoring, details={
        "online_endpoint": "triage", "deployment": "green-v3", "scoring_uri": scoring, "state": "Succeeded"})
    served = aml_engine().load(version(artifact=FT_AML), record)
    done = served.complete(ask())
    assert done.text == "shipping" and done.prompt_tokens > 0
    chat = api.calls[-1]
    assert chat.request.headers["Authorization"] == "Bearer ol-key-1"
    assert chat.request.headers["azureml-model-deployment"] == "green-v3"  # pinned though the split gives it 0%
    assert body_of(chat)["messages"][-1] == {"role": "user", "content": "My order is late."}


def test_azure_ml_needs_the_workspace_settings(api: Any) -> None:
    record = Provisioned(backend="azure", endpoint="https://x.eastus.models.ai.azure.com",
                         details={"name": "x", "state": "Succeeded"})
    with pytest.raises(UserError, match="kind azureml needs subscription_id, resource_group, workspace"):
        AzureServingEngine(ServeContext(backend_settings={"kind": "azureml"})).load(version(artifact=FT_AML), record)
