"""Evaluation for ``backends.azure.kind: azureml`` through the serverless endpoint deploy serves, tested
with whole ``ftp run``s against the HTTP azure-ai-ml really sends, faked with ``responses``.

The fake (``FakeAzureML``) is Azure ML as its REST API answers, in the shapes of the REST spec's
examples (``2024-01-01-preview``, Workspace/ServerlessEndpoint and Job/FineTuningJob; see
/work/shared/reference/azure-api.md section B): registry discovery and the base model's versions; the
data assets (datastore, its secrets, the blob, the data version); the FineTuning job (Queued ->
Running -> Completed over three reads); the registered model and the workspace; serverless endpoints
(PUT answers 201 ``Creating``, GET ``Succeeded`` or, when told, ``Failed``; listKeys); and each
endpoint's ``POST {scoring_uri}/v1/chat/completions``, which takes the key in ``Authorization`` as
Azure's sample sends it. The endpoint of the fine-tuned model answers every test prompt with its
reference; the base model's endpoint answers something else, so the metrics have known values.
Entra ID is tests/azure/fake_azure.py's token endpoint, with azure-identity's real credential.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

pytest.importorskip("azure.ai.ml")
responses = pytest.importorskip("responses")

from conftest import invoke  # noqa: E402
from helpers import FAST, only_run, state  # noqa: E402

ARM = "https://management.azure.com"
SUB = "00000000-1111-2222-3333-444444444444"
WS_PATH = (f"/subscriptions/{SUB}/resourceGroups/ftp-quickstart/providers/Microsoft.MachineLearningServices"
           "/workspaces/ml-ws")
WS = ARM + WS_PATH
GUID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
MFE = "https://cert-eastus.experiments.azureml.net/mferp/managementfrontend"
REGISTRY_PATH = ("/subscriptions/REGSUB/resourceGroups/registry-rg/providers/Microsoft.MachineLearningServices"
                 "/registries")
PHI = "azureml://registries/azureml/models/Phi-4-mini-instruct/versions/7"
PHI_OFFER = "azureml://registries/azureml/models/Phi-4-mini-instruct"
FINE_TUNED = f"azureml://locations/eastus/workspaces/{GUID}/models/ticket-triage/versions/1"
ML_API = "2024-01-01-preview"
BLOB = "https://acct.blob.core.windows.net/azureml-blobstore-guid/"
BASE_ANSWER = "I cannot triage tickets yet."
AZUREML = ("--set", "backends.azure.kind=azureml", "--set", "backends.azure.model.base=Phi-4-mini-instruct",
           "--set", "backends.azure.workspace=ml-ws")

Reply = tuple[int, dict[str, str], str]


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Reply:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(body)


def _static(body: dict[str, Any]) -> Any:
    return lambda request: _json(200, body)


def _model_version(model_id: str, version: str) -> dict[str, Any]:
    return {"id": model_id, "name": version, "type": "Microsoft.MachineLearningServices/registries/models/versions",
            "properties": {"modelType": "mlflow_model", "flavors": {"python_function": {"data": {}}},
                           "description": "", "tags": {}, "properties": {}}}


# What does not change during a run: the registry, the workspace, its datastore, the registered model.
STATIC = {name: _static(body) for name, body in {
    "discovery": {"registryName": "azureml", "primaryRegion": "eastus", "regions": ["eastus"],
                  "subscriptionId": "REGSUB", "resourceGroup": "registry-rg",
                  "primaryRegionResourceProviderUri": "https://cert-eastus.experiments.azureml.net/"},
    "registry_versions": {"value": [_model_version(PHI, "7")]},
    "registry_version": _model_version(PHI, "7"),
    "workspace": {"id": WS_PATH, "name": "ml-ws", "type": "Microsoft.MachineLearningServices/workspaces",
                  "location": "eastus", "properties": {"workspaceId": GUID, "friendlyName": "ml-ws"}},
    "datastore": {"id": WS_PATH + "/datastores/workspaceblobstore", "name": "workspaceblobstore",
                  "properties": {"datastoreType": "AzureBlob", "accountName": "acct", "protocol": "https",
                                 "containerName": "azureml-blobstore-guid", "endpoint": "core.windows.net",
                                 "isDefault": True, "credentials": {"credentialsType": "AccountKey"}}},
    "secrets": {"secretsType": "AccountKey", "key": "a2V5" * 11},
    "model_versions": {"value": [{"id": f"{WS_PATH}/models/ticket-triage/versions/1", "name": "1",
                                  "type": "Microsoft.MachineLearningServices/workspaces/models/versions",
                                  "properties": {"modelType": "mlflow_model", "flavors": {},
                                                 "modelUri": "azureml://jobs/x/outputs/m"}}]},
}.items()}
BLOB_HEADERS = {"ETag": '"0x1"', "Last-Modified": "Sun, 29 Nov 2026 16:00:00 GMT"}


@dataclass
class Endpoint:
    name: str
    model_id: str
    key: str
    state: str = "Creating"

    def resource(self) -> dict[str, Any]:
        """The serverless endpoint as ARM returns it (spec example ServerlessEndpoint/get.json, trimmed)."""
        return {"id": f"{WS_PATH}/serverlessEndpoints/{self.name}", "name": self.name,
                "type": "Microsoft.MachineLearningServices/workspaces/serverlessEndpoints", "location": "eastus",
                "sku": {"name": "Consumption"},
                "properties": {"authMode": "Key", "modelSettings": {"modelId": self.model_id},
                               "provisioningState": self.state,
                               "inferenceEndpoint": {"uri": f"https://{self.name}.eastus.models.ai.azure.com"}}}


@dataclass
class FakeAzureML:
    """One workspace's Azure ML, its registry and its serverless endpoints; ``login`` issues the tokens."""

    login: Any
    references: dict[str, str]
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    job_reads: dict[str, int] = field(default_factory=dict)
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    puts: list[dict[str, Any]] = field(default_factory=list)
    chats: list[tuple[str, str]] = field(default_factory=list)
    subscriptions: dict[str, str] = field(default_factory=dict)  # name -> the model offer it subscribes to
    calls: list[tuple[str, str]] = field(default_factory=list)
    provisioning: dict[str, str] = field(default_factory=dict)   # endpoint name prefix -> final state
    refuse: dict[str, dict[str, Any]] = field(default_factory=dict)  # endpoint name prefix -> ARM error body
    throttle: list[str] = field(default_factory=list)            # Retry-After of the next chat answers, one each
    interrupt_after: int | None = None                           # Ctrl-C after this many chat answers
    clock: Any = None                                            # the backend's clock (records its waits)

    def install(self, rsps: Any) -> None:
        q, ws, registry = r"(?:\?.*)?$", re.escape(WS), re.escape(MFE + REGISTRY_PATH) + r"/[^/]+/models/[^/]+/versions"
        routes: list[tuple[str, str, Any]] = [
            ("GET", r"https://[a-z0-9]+\.api\.azureml\.ms/registrymanagement/v1\.0/registries/[^/?]+/discovery" + q,
             STATIC["discovery"]),
            ("GET", registry + q, STATIC["registry_versions"]),
            ("GET", registry + r"/[^/?]+" + q, STATIC["registry_version"]),
            ("GET", ws + q, STATIC["workspace"]),
            ("GET", ws + r"/datastores/workspaceblobstore" + q, STATIC["datastore"]),
            ("POST", ws + r"/datastores/workspaceblobstore/listSecrets" + q, STATIC["secrets"]),
            ("HEAD", re.escape(BLOB) + r".*", lambda r: (404, {"x-ms-error-code": "BlobNotFound"}, "")),
            ("PUT", re.escape(BLOB) + r".*", lambda r: (200 if "comp=metadata" in r.url else 201, BLOB_HEADERS, "")),
            ("PUT", ws + r"/data/([^/]+)/versions/([^/?]+)" + q, self._data_version),
            ("PUT", ws + r"/jobs/([^/?]+)" + q, self._put_job),
            ("GET", ws + r"/jobs/([^/?]+)" + q, self._get_job),
            ("GET", ws + r"/models/[^/]+/versions" + q, STATIC["model_versions"]),
            ("PUT", ws + r"/serverlessEndpoints/([^/?]+)" + q, self._put_endpoint),
            ("GET", ws + r"/serverlessEndpoints/([^/?]+)" + q, self._get_endpoint),
            ("POST", ws + r"/serverlessEndpoints/([^/?]+)/listKeys" + q, self._keys),
            ("PUT", ws + r"/marketplaceSubscriptions/([^/?]+)" + q, self._subscription),
            ("GET", ws + r"/marketplaceSubscriptions/([^/?]+)" + q, self._subscription),
            ("POST", r"https://([^.]+)\.eastus\.models\.ai\.azure\.com/v1/chat/completions" + q, self._chat),
        ]
        for method, pattern, handler in routes:
            rsps.add_callback(method, re.compile(pattern), callback=self._wrap(re.compile(pattern), handler))

    def _wrap(self, pattern: re.Pattern[str], handler: Any) -> Any:
        def callback(request: Any) -> Reply:
            url = request.url or ""
            self.calls.append((request.method, url))
            token = request.headers.get("Authorization", "").removeprefix("Bearer ")
            if url.startswith(ARM) and self.login.tokens.get(token) != "https://management.azure.com/.default":
                return _json(401, {"error": {"code": "InvalidAuthenticationToken", "message": "The token is invalid."}})
            match = pattern.match(url)
            assert match is not None
            return handler(request, *match.groups())

        return callback

    def _data_version(self, request: Any, name: str, version: str) -> Reply:
        return _json(201, {"id": f"{WS_PATH}/data/{name}/versions/{version}", "name": version,
                           "properties": json.loads(request.body)["properties"]})

    def _put_job(self, request: Any, name: str) -> Reply:
        body = json.loads(request.body)
        body.update(id=f"{WS_PATH}/jobs/{name}", name=name, type="Microsoft.MachineLearningServices/workspaces/jobs")
        body["properties"]["status"] = "Created"
        self.jobs[name] = body
        return _json(201, body)

    def _get_job(self, request: Any, name: str) -> Reply:
        if name not in self.jobs:
            return _json(404, {"error": {"code": "UserError", "message": f"Job {name} not found"}})
        self.job_reads[name] = self.job_reads.get(name, 0) + 1
        job = json.loads(json.dumps(self.jobs[name]))
        job["properties"]["status"] = ["Queued", "Running", "Completed"][min(2, self.job_reads[name] - 1)]
        return _json(200, job)

    def _model_versions(self, request: Any, name: str) -> Reply:
        return _json(200, {"value": [{
            "id": f"{WS_PATH}/models/{name}/versions/1", "name": "1",
            "type": "Microsoft.MachineLearningServices/workspaces/models/versions",
            "properties": {"modelType": "mlflow_model", "flavors": {}, "modelUri": "azureml://jobs/x/outputs/m"}}]})

    # --- serverless endpoints ---

    def _put_endpoint(self, request: Any, name: str) -> Reply:
        if parse_qs(urlparse(request.url).query).get("api-version") != [ML_API]:
            return _json(400, {"error": {"code": "InvalidApiVersion", "message": "unsupported api-version"}})
        body = json.loads(request.body)
        self.puts.append({"name": name, **body})
        for prefix, error in self.refuse.items():
            if name.startswith(prefix):
                return _json(400, error)
        model_id = body["properties"]["modelSettings"]["modelId"]
        self.endpoints[name] = Endpoint(name, model_id, key=f"key-{len(self.endpoints) + 1}-{name}")
        return _json(201, self.endpoints[name].resource())

    def _get_endpoint(self, request: Any, name: str) -> Reply:
        endpoint = self.endpoints.get(name)
        if endpoint is None:
            return _json(404, {"error": {"code": "NotFound", "message": f"Serverless endpoint {name} not found"}})
        if endpoint.state == "Creating":
            endpoint.state = next((s for p, s in self.provisioning.items() if name.startswith(p)), "Succeeded")
        return _json(200, endpoint.resource())

    def _subscription(self, request: Any, name: str) -> Reply:
        """A marketplace subscription (spec example MarketplaceSubscription/createOrUpdate.json, trimmed)."""
        if request.method == "PUT":
            self.subscriptions[name] = json.loads(request.body)["properties"]["modelId"]
        return _json(201 if request.method == "PUT" else 200, {
            "id": f"{WS_PATH}/marketplaceSubscriptions/{name}", "name": name,
            "properties": {"modelId": self.subscriptions[name],
                           "provisioningState": "Creating" if request.method == "PUT" else "Succeeded",
                           "marketplacePlan": {"offerId": "meta-llama-3-1-8b", "planId": "p", "publisherId": "m"}}})

    def _keys(self, request: Any, name: str) -> Reply:
        endpoint = self.endpoints[name]
        return _json(200, {"primaryKey": endpoint.key, "secondaryKey": endpoint.key + "-2"})

    def _chat(self, request: Any, name: str) -> Reply:
        endpoint = self.endpoints.get(name)
        if endpoint is None or request.headers.get("Authorization") != endpoint.key:
            return _json(401, {"error": {"code": "Unauthorized", "message": "Key not authorized"}})
        if self.throttle:
            return _json(429, {"error": {"code": "TooManyRequests", "message": "Rate limit is exceeded."}},
                         {"Retry-After": self.throttle.pop(0)})
        if self.interrupt_after is not None and len(self.chats) >= self.interrupt_after:
            self.interrupt_after = None
            raise KeyboardInterrupt
        body = json.loads(request.body)
        prompt = body["messages"][-1]["content"]
        answer = self.references[prompt] if endpoint.model_id == FINE_TUNED else BASE_ANSWER
        self.chats.append((name, prompt))
        return _json(200, {"id": "cmpl-1", "object": "chat.completion", "model": name, "created": 1732103079,
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": answer}}],
                           "usage": {"prompt_tokens": 20, "completion_tokens": 12, "total_tokens": 32}})

    # --- what the tests look at ---

    def endpoint_puts(self) -> list[str]:
        return [p["name"] for p in self.puts]


def references(quickstart: Path) -> dict[str, str]:
    rows = [json.loads(line) for line in (quickstart / "data" / "tickets.jsonl").read_text().splitlines()]
    return {row["messages"][-2]["content"]: row["messages"][-1]["content"] for row in rows}


@pytest.fixture
def azure_ml(quickstart: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAzureML]:
    """The environment a real set-up has (a service principal for Entra ID, the subscription), pointing at
    the fakes, and a clock that records the backend's waits instead of sleeping."""
    sys.path.insert(0, str(Path(__file__).parent))
    from fake_azure import FakeAzure, FakeClock, sign_in_as_service_principal
    from ftp.backends.azure import auth, http

    login = FakeAzure()
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", SUB)
    sign_in_as_service_principal(monkeypatch, login.client_secret,
                                 unset=("AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY"))
    clock = FakeClock()
    monkeypatch.setattr(http, "CLOCK", clock)
    auth.reset_credential()
    fake = FakeAzureML(login=login, references=references(quickstart), clock=clock)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        login.install(rsps)
        fake.install(rsps)
        yield fake
    auth.reset_credential()
    sys.path.remove(str(Path(__file__).parent))


def run(*args: str) -> Any:
    return invoke("run", "pipeline.yaml", "--backend", "azure", "--yes", *FAST, *AZUREML, *args)


# The deploy step's smoke test asks the new endpoint through ftp serve's engine (its own key listing and
# chats, tested in test_azure_serving.py); tests that count evaluation's calls leave it out.
NO_SMOKE = ("--set", "deploy.smoke_test=0")


def metrics(run_dir: Path) -> dict[str, dict[str, float]]:
    return state(run_dir)["steps"]["evaluate"]["outputs"]["report"]["metrics"]


def test_both_candidates_answer_through_serverless_endpoints_and_deploy_reuses_the_fine_tuned_one(
        quickstart: Path, azure_ml: FakeAzureML) -> None:
    result = run(*NO_SMOKE)
    assert result.exit_code == 0, result.stderr
    run_dir = only_run(quickstart)
    s = state(run_dir)
    ft, base = f"ftp-ft-{s['run_id']}", f"ftp-base-{s['run_id']}"

    test_rows = Path(s["steps"]["split"]["outputs"]["test"]["path"]).read_text().splitlines()
    # the fine-tuned endpoint answers every test prompt with its reference, the base one never does
    assert metrics(run_dir)["fine-tuned"]["exact_match"] == 1.0
    assert metrics(run_dir)["base"]["exact_match"] == 0.0
    assert not {"fine-tuned", "base"} & set(s["steps"]["evaluate"]["outputs"].get("not_evaluated", {}))
    asked = {name: [p for n, p in azure_ml.chats if n == name] for name in (ft, base)}
    assert len(asked[base]) == len(test_rows) and len(asked[ft]) == len(test_rows) + 4  # + review's 4 samples

    # one endpoint per candidate, each PUT once; deploy served from the fine-tuned one
    assert azure_ml.endpoint_puts() == [ft, base]
    assert azure_ml.puts[0] == {"name": ft, "sku": {"name": "Consumption"}, "location": "eastus",
                                "properties": {"modelSettings": {"modelId": FINE_TUNED}}}
    assert azure_ml.puts[1]["properties"] == {"modelSettings": {"modelId": PHI_OFFER}}
    deployed = s["steps"]["deploy"]["outputs"]
    assert deployed["endpoint"] == f"https://{ft}.eastus.models.ai.azure.com"
    recorded = s["resources"]["azureml_endpoint"]
    assert {**recorded, "provisioning_state": recorded["provisioning_state"].lower()} == {
        "name": ft, "id": f"{WS_PATH}/serverlessEndpoints/{ft}", "model_id": FINE_TUNED,
        "scoring_uri": f"https://{ft}.eastus.models.ai.azure.com", "provisioning_state": "succeeded"}
    assert s["resources"]["azureml_base_endpoint"]["model_id"] == PHI_OFFER
    assert "azureml_subscriptions" not in s["resources"]  # Phi is Microsoft's: no marketplace subscription

    # the keys travel only in the Authorization header: never in the run directory
    text = "".join(p.read_text(errors="ignore") for p in run_dir.rglob("*") if p.is_file())
    assert all(e.key not in text for e in azure_ml.endpoints.values())
    listed = [u for m, u in azure_ml.calls if m == "POST" and u.split("?")[0].endswith("/listKeys")]
    assert len(listed) == 2 and all(parse_qs(urlparse(u).query)["api-version"] == [ML_API] for u in listed)


def test_a_run_resumed_after_evaluate_deploys_from_the_same_endpoint(quickstart: Path, azure_ml: FakeAzureML) -> None:
    first = run("--steps", "validate,split,train,review,evaluate", *NO_SMOKE)
    assert first.exit_code == 0, first.stderr
    run_id = state(only_run(quickstart))["run_id"]
    ft = f"ftp-ft-{run_id}"
    assert azure_ml.endpoint_puts() == [ft, f"ftp-base-{run_id}"]
    before = len(azure_ml.calls)

    second = invoke("run", "--resume", run_id, "--yes")
    assert second.exit_code == 0, second.stderr
    s = state(only_run(quickstart))
    assert s["status"] == "done"
    assert s["steps"]["deploy"]["outputs"]["endpoint"] == f"https://{ft}.eastus.models.ai.azure.com"
    assert azure_ml.endpoint_puts() == [ft, f"ftp-base-{run_id}"]  # no second PUT: deploy asked, then reused
    serverless = [(m, u.split("?")[0].rsplit("/", 1)[-1]) for m, u in azure_ml.calls[before:]
                  if "/serverlessEndpoints/" in u]
    assert serverless == [("GET", ft)]


def test_ctrl_c_during_evaluate_then_resume_answers_through_the_recorded_endpoints(
        quickstart: Path, azure_ml: FakeAzureML) -> None:
    azure_ml.interrupt_after = 4 + 10  # review's 4 samples, then 10 test prompts of the fine-tuned model
    first = run()
    assert first.exit_code == 130
    s = state(only_run(quickstart))
    ft = f"ftp-ft-{s['run_id']}"
    assert s["steps"]["evaluate"]["status"] == "interrupted" and azure_ml.endpoint_puts() == [ft]

    second = invoke("run", "--resume", s["run_id"], "--yes")
    assert second.exit_code == 0, second.stderr
    assert azure_ml.endpoint_puts() == [ft, f"ftp-base-{s['run_id']}"]  # the fine-tuned one was not made again
    assert metrics(only_run(quickstart))["fine-tuned"]["exact_match"] == 1.0


def test_throttled_answers_wait_for_retry_after_and_are_retried(quickstart: Path, azure_ml: FakeAzureML) -> None:
    azure_ml.throttle = ["7", "3"]
    result = run("--steps", "validate,split,train,review,evaluate")
    assert result.exit_code == 0, result.stderr
    assert [w for w in azure_ml.clock.sleeps if w] == [7.0, 3.0]
    throttled = [u for m, u in azure_ml.calls if m == "POST" and u.endswith("/v1/chat/completions")]
    assert len(throttled) == len(azure_ml.chats) + 2  # each 429 was asked again, and no answer is missing
    assert metrics(only_run(quickstart))["fine-tuned"]["exact_match"] == 1.0


def test_a_failed_endpoint_provisioning_stops_the_run_with_one_line(quickstart: Path, azure_ml: FakeAzureML) -> None:
    azure_ml.provisioning = {"ftp-ft-": "Failed"}
    result = run()
    assert result.exit_code == 1
    s = state(only_run(quickstart))
    ft = f"ftp-ft-{s['run_id']}"
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert error == [f"error: review: Azure ML serverless endpoint {ft} for {FINE_TUNED} ended Failed in workspace "
                     "'ml-ws' (resource group 'ftp-quickstart'); check in Azure AI Foundry that the model is offered "
                     f"serverless in the workspace's region, then resume the run (ftp run --resume {s['run_id']}), "
                     "or set backends.azure.evaluation.fine_tuned: none to go on without evaluating it"]
    assert s["resources"]["azureml_endpoint"]["provisioning_state"].lower() == "failed"
    assert s["steps"]["review"]["status"] == "failed" and azure_ml.endpoint_puts() == [ft]


def test_a_base_model_azure_ml_will_not_serve_is_not_evaluated_with_the_setting_to_change(
        quickstart: Path, azure_ml: FakeAzureML) -> None:
    azure_ml.refuse = {"ftp-base-": {"error": {"code": "BadRequest", "message": "Model Phi-4-mini-instruct is not "
                                               "offered as a serverless API in region eastus."}}}
    result = run("--steps", "validate,split,train,review,evaluate")
    assert result.exit_code == 0, result.stderr
    s = state(only_run(quickstart))
    reason = s["steps"]["evaluate"]["outputs"]["not_evaluated"]["base"]
    assert reason.startswith(f"no serverless endpoint of the base model: Azure ML creation of serverless endpoint "
                             f"ftp-base-{s['run_id']} failed: HTTP 400 BadRequest: Model Phi-4-mini-instruct is not "
                             "offered as a serverless API in region eastus.")
    assert reason.endswith("; set backends.azure.evaluation.base_deployment to a serverless endpoint of the base "
                           "model, or drop base from evaluate.compare_to") and "\n" not in reason
    assert "base" not in metrics(only_run(quickstart))
    assert metrics(only_run(quickstart))["fine-tuned"]["exact_match"] == 1.0


def test_an_existing_base_endpoint_answers_for_the_base_model(quickstart: Path, azure_ml: FakeAzureML) -> None:
    azure_ml.endpoints["phi-base"] = Endpoint("phi-base", PHI_OFFER, key="key-phi", state="Succeeded")
    result = run("--steps", "validate,split,train,review,evaluate", "--set",
                 "backends.azure.evaluation.base_deployment=phi-base")
    assert result.exit_code == 0, result.stderr
    run_id = state(only_run(quickstart))["run_id"]
    assert azure_ml.endpoint_puts() == [f"ftp-ft-{run_id}"]
    assert metrics(only_run(quickstart))["base"]["exact_match"] == 0.0
    assert {n for n, _ in azure_ml.chats} == {f"ftp-ft-{run_id}", "phi-base"}


def test_fine_tuned_none_evaluates_nothing_and_deploy_makes_its_own_endpoint(quickstart: Path,
                                                                           azure_ml: FakeAzureML) -> None:
    result = run("--set", "backends.azure.evaluation.fine_tuned=none", "--set", "gate={}")
    assert result.exit_code == 0, result.stderr
    s = state(only_run(quickstart))
    assert s["steps"]["evaluate"]["outputs"]["not_evaluated"]["fine-tuned"].startswith(
        "backends.azure.evaluation.fine_tuned is none")
    assert azure_ml.endpoint_puts() == [f"ftp-base-{s['run_id']}", "ticket-triage-v1"]
    assert s["resources"]["azureml_endpoint"]["name"] == "ticket-triage-v1"


def test_a_llama_base_is_subscribed_once_for_both_endpoints(quickstart: Path, azure_ml: FakeAzureML) -> None:
    llama = "azureml://registries/azureml-meta/models/Meta-Llama-3.1-8B-Instruct/versions/4"
    offer = "azureml://registries/azureml-meta/models/Meta-Llama-3.1-8B-Instruct"
    result = run("--steps", "validate,split,train,review,evaluate", "--set", f"backends.azure.model.base={llama}")
    assert result.exit_code == 0, result.stderr
    s = state(only_run(quickstart))
    assert azure_ml.subscriptions == {"Meta-Llama-3-1-8B-Instruct-sub": offer}
    assert [m for m, u in azure_ml.calls if "/marketplaceSubscriptions/" in u].count("PUT") == 1
    assert s["resources"]["azureml_subscriptions"] == {offer: "Meta-Llama-3-1-8B-Instruct-sub"}
    assert [p["properties"]["modelSettings"]["modelId"] for p in azure_ml.puts] == [FINE_TUNED, offer]


def test_the_predictor_and_deploy_share_one_endpoint_without_a_whole_run(quickstart: Path,
                                                                        azure_ml: FakeAzureML) -> None:
    """The same path as a run's review, evaluate and deploy steps, called directly (no wiring needed)."""
    from ftp.backends.azure.azureml_trainer import AzureMLFineTuning
    from ftp.backends.azure.serverless_eval import azureml_predictor
    from ftp.backends.azure.settings import AzureSettings
    from ftp.config.pipeline_file import load_pipeline
    from ftp.hooks import default_hooks
    from ftp.run.context import RunContext
    from ftp.run.progress import make_reporter
    from ftp.run.store import RunDir
    from ftp.types import DeployRequest, ModelRef, ModelVersion

    overrides = ("backends.azure.kind=azureml", "backends.azure.workspace=ml-ws", "backends.azure.poll.interval=0")
    pipeline = load_pipeline(quickstart / "pipeline.yaml", "azure", default_hooks().catalog(), overrides)
    folder = RunDir.create(quickstart / "runs", "ticket-triage", pipeline_file=str(pipeline.path),
                           pipeline_sha256=pipeline.sha256, backend="azure")
    ctx = RunContext(folder, pipeline, make_reporter("quiet"), default_hooks(), assume_yes=True)
    ctx.record_resource("azureml_job", {"name": f"ftp-{ctx.run_id}", "base_model_id": PHI, "state": "submitted"})
    settings = AzureSettings.model_validate(ctx.backend_settings)
    azure_ml.throttle = ["5"]

    fine_tuned = azureml_predictor(settings, ModelRef(kind="cloud", base="Phi-4-mini-instruct", backend="azure",
                                                      cloud_id=FINE_TUNED), ctx)
    prompt = next(iter(azure_ml.references))
    assert fine_tuned.generate([[{"role": "user", "content": prompt}]], 32) == [azure_ml.references[prompt]]
    base = azureml_predictor(settings, ModelRef(kind="base", base="Phi-4-mini-instruct", backend="azure"), ctx)
    assert base.generate([[{"role": "user", "content": prompt}]], 32) == [BASE_ANSWER]
    assert fine_tuned.loss([]) is None and [w for w in azure_ml.clock.sleeps if w] == [5.0]

    version = ModelVersion(name="ticket-triage", version=1, created_at="now", run_id=ctx.run_id, backend="azure",
                           base_model="Phi-4-mini-instruct", artifact=FINE_TUNED, data_sha256={}, hyperparameters={},
                           metrics={}, pipeline_sha256="x", code_version="ftp", backend_details={"base_model_id": PHI})
    deployed = AzureMLFineTuning(settings, ctx).deploy(DeployRequest(version=version, strategy="blue-green",
                                                                     traffic_new=10, store=quickstart / "d.db"))
    ft = f"ftp-ft-{ctx.run_id}"
    assert deployed.endpoint == f"https://{ft}.eastus.models.ai.azure.com"
    assert azure_ml.endpoint_puts() == [ft, f"ftp-base-{ctx.run_id}"]


def test_endpoint_and_subscription_names() -> None:
    from ftp.backends.azure.serverless import endpoint_name, subscription_name

    assert endpoint_name("base", "20260101-120000-abcd") == "ftp-base-20260101-120000-abcd"
    assert len(endpoint_name("base", "x" * 40)) == 32
    llama = "azureml://registries/azureml-meta/models/Meta-Llama-3.1-8B-Instruct/versions/4"
    assert subscription_name(llama) == "Meta-Llama-3-1-8B-Instruct-sub"
