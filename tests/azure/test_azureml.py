"""The Azure ML adapter against the HTTP that azure-ai-ml really sends, faked with ``responses``.

azure-core's default transport is ``requests``, so ``responses`` sees every ARM, registry and blob
call the SDK makes; a request nobody registered fails the test (it surfaces as "Azure could not be
reached"). Bodies follow the shapes of the REST spec examples. The wait loop's timeout uses a fake
``ml_client``; nothing sleeps and nothing reaches Azure or login.microsoftonline.com.
"""

from __future__ import annotations

import base64
import importlib
import importlib.util
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from ftp.errors import StepFailed, UserError

pytest.importorskip("azure.ai.ml")
responses = pytest.importorskip("responses")

MODULE_FILE = Path(__file__).resolve().parents[2] / "backends" / "azure" / "azureml.py"


def _load() -> ModuleType:
    """The package import when backends/azure is importable, else the file itself (same code)."""
    try:
        return importlib.import_module("ftp.backends.azure.azureml")
    except (ImportError, SyntaxError):  # the package's __init__ may be mid-edit; the module needs none of it
        spec = importlib.util.spec_from_file_location("ftp_azureml_under_test", MODULE_FILE)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module


azureml = _load()
from ftp.backends.azure import azureml_vocab as vocab  # noqa: E402

ARM = "https://management.azure.com"
WS_PATH = "/subscriptions/SUB/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws"
WS = ARM + WS_PATH
JOB = WS + "/jobs/ft-job-1"
DISCOVERY = "https://eastus.api.azureml.ms/registrymanagement/v1.0/registries/{}/discovery"
MFE = "https://cert-eastus.experiments.azureml.net/mferp/managementfrontend"
REGISTRY_PATH = "/subscriptions/REGSUB/resourceGroups/registry-rg/providers/Microsoft.MachineLearningServices/registries"
PHI = "azureml://registries/azureml/models/Phi-4-mini-instruct/versions/7"
LLAMA = "azureml://registries/azureml-meta/models/Meta-Llama-3.1-8B-Instruct/versions/4"
WORKSPACE_GUID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


class FakeCredential:
    """A TokenCredential that hands out a fixed token and checks what it is asked for."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken
        from azure.core.exceptions import ClientAuthenticationError

        self.scopes.append(scopes)
        if self.fail:
            raise ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token")
        return AccessToken("fake-token", int(time.time()) + 3600)


class Clock:
    """Time that moves only when the adapter sleeps; ``on_sleep`` lets a fake job advance too."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.on_sleep: list[Any] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        for hook in self.on_sleep:
            hook()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def api() -> Iterator[Any]:
    """Every registered response must be used, and any other request fails the call."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def credential() -> FakeCredential:
    return FakeCredential()


@pytest.fixture
def adapter(credential: FakeCredential, clock: Clock) -> Any:
    return azureml.AzureMLAdapter(subscription_id="SUB", resource_group="rg", workspace="ws",
                                  credential=credential, poll_interval=30, sleep=clock.sleep, clock=clock,
                                  lro_interval=0, client_options={"retry_total": 0})


def body_of(call: Any) -> dict[str, Any]:
    return json.loads(call.request.body)


def api_version(call: Any) -> str:
    return parse_qs(urlparse(call.request.url).query)["api-version"][0]


def job_resource(status: str, prefix: str = "phi-ft") -> dict[str, Any]:
    """A FineTuning job as ARM returns it (spec example Job/FineTuningJob/get.json, trimmed)."""
    return {
        "id": WS_PATH + "/jobs/ft-job-1", "name": "ft-job-1",
        "type": "Microsoft.MachineLearningServices/workspaces/jobs",
        "properties": {
            "jobType": "FineTuning", "status": status, "experimentName": "ftp", "displayName": "ft-job-1",
            "properties": {}, "tags": {},
            "fineTuningDetails": {
                "taskType": "chatCompletion", "modelProvider": "Custom",
                "model": {"jobInputType": "mlflow_model", "uri": PHI},
                "trainingData": {"jobInputType": "uri_file", "uri": WS_PATH + "/data/train/versions/1"},
                "validationData": {"jobInputType": "uri_file", "uri": WS_PATH + "/data/val/versions/1"},
                "hyperParameters": {"learning_rate": "0.0002"},
            },
            "outputs": {"registered_model": {"jobOutputType": "mlflow_model", "assetName": prefix}},
        },
    }


def model_version(model_id: str, version: str) -> dict[str, Any]:
    return {"id": model_id, "name": version, "type": "Microsoft.MachineLearningServices/registries/models/versions",
            "properties": {"modelType": "mlflow_model", "flavors": {"python_function": {"data": {}}},
                           "description": "", "tags": {}, "properties": {}}}


def add_discovery(api: Any, registry: str = "azureml") -> None:
    api.get(DISCOVERY.format(registry), json={
        "registryName": registry, "primaryRegion": "eastus", "regions": ["eastus"], "subscriptionId": "REGSUB",
        "resourceGroup": "registry-rg", "primaryRegionResourceProviderUri": "https://cert-eastus.experiments.azureml.net/"})


def add_workspace(api: Any) -> None:
    api.get(WS, json={"id": WS_PATH, "name": "ws", "type": "Microsoft.MachineLearningServices/workspaces",
                      "location": "eastus", "properties": {"workspaceId": WORKSPACE_GUID, "friendlyName": "ws"}})


# --- pure functions -------------------------------------------------------------------------------


def test_train_section_maps_to_azureml_names_as_strings() -> None:
    got = vocab.hyperparameters_from_train({"epochs": 3, "batch_size": 8, "learning_rate": 2e-5,
                                              "method": "lora", "lora": {"r": 16}})
    assert got == {"num_train_epochs": "3", "per_device_train_batch_size": "8", "learning_rate": "0.00002"}
    assert vocab.string_hyperparameters({"a": 1.0, "b": True, "c": None, "d": "auto", "e": 1e-4}) == {
        "a": "1", "b": "true", "d": "auto", "e": "0.0001"}


@pytest.mark.parametrize(("raw", "normalised"), [
    ("NotStarted", "queued"), ("Starting", "queued"), ("Provisioning", "queued"), ("Preparing", "queued"),
    ("Queued", "queued"), ("Created", "queued"), ("Running", "running"), ("Finalizing", "running"),
    ("CancelRequested", "cancelling"), ("Completed", "succeeded"), ("Failed", "failed"),
    ("Canceled", "cancelled"), ("NotResponding", "unknown"), ("Paused", "paused"), ("Unknown", "unknown"),
    ("completed", "succeeded"), ("SomethingNew", "unknown"), (None, "unknown"),
])
def test_every_documented_status_is_normalised(raw: str | None, normalised: str) -> None:
    assert vocab.normalise(raw) == normalised


def test_only_completed_failed_and_canceled_are_terminal() -> None:
    statuses = ["NotStarted", "Starting", "Provisioning", "Preparing", "Queued", "Running", "Finalizing",
                "CancelRequested", "Completed", "Failed", "Canceled", "NotResponding", "Paused", "Unknown"]
    assert {s for s in statuses if vocab.is_terminal(s)} == {"Completed", "Failed", "Canceled"}


def test_only_third_party_registry_models_need_a_marketplace_subscription() -> None:
    assert vocab.needs_marketplace_subscription(LLAMA)
    assert not vocab.needs_marketplace_subscription(PHI)
    assert not vocab.needs_marketplace_subscription(
        f"azureml://locations/eastus/workspaces/{WORKSPACE_GUID}/models/phi-ft/versions/1")
    assert vocab.unversioned(LLAMA) == "azureml://registries/azureml-meta/models/Meta-Llama-3.1-8B-Instruct"


def test_importing_the_module_imports_no_azure_package() -> None:
    code = ("import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('m', {str(MODULE_FILE)!r})\n"
            "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
            "print(sorted(m for m in sys.modules if m == 'azure' or m.startswith('azure.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- registry -------------------------------------------------------------------------------------


def test_resolve_model_turns_a_label_into_the_exact_registry_version(api: Any, adapter: Any,
                                                                      credential: FakeCredential) -> None:
    add_discovery(api)
    versions = f"{MFE}{REGISTRY_PATH}/azureml/models/Phi-4-mini-instruct/versions"
    api.get(versions, json={"value": [model_version(PHI, "7")]})
    api.get(versions + "/7", json=model_version(PHI, "7"))
    api.get(versions + "/3", json=model_version(PHI.replace("/7", "/3"), "3"))

    assert adapter.resolve_model("Phi-4-mini-instruct", "latest") == PHI
    assert adapter.resolve_model("Phi-4-mini-instruct", "3").endswith("/versions/3")
    listing = next(c for c in api.calls if c.request.url.startswith(versions + "?"))
    assert parse_qs(urlparse(listing.request.url).query)["$orderBy"] == ["createdtime desc"]
    assert all(c.request.headers["Authorization"] == "Bearer fake-token" for c in api.calls)
    assert set(credential.scopes) == {("https://management.azure.com/.default",)}
    assert sum(c.request.url.startswith(DISCOVERY.format("azureml")) for c in api.calls) == 1


def test_a_model_missing_from_the_registry_is_a_user_error_naming_it(api: Any, adapter: Any) -> None:
    add_discovery(api, "azureml-meta")
    api.get(f"{MFE}{REGISTRY_PATH}/azureml-meta/models/Llama-9/versions/1", status=404,
            json={"error": {"code": "UserError", "message": "Model container with name: Llama-9 not found."}})
    with pytest.raises(UserError) as err:
        adapter.resolve_model("Llama-9", "1", registry="azureml-meta")
    message = str(err.value)
    assert "'Llama-9' (1) is not in registry 'azureml-meta'" in message and "\n" not in message


# --- data -----------------------------------------------------------------------------------------


def test_upload_data_sends_the_file_to_the_default_datastore_and_registers_a_uri_file(
        api: Any, adapter: Any, tmp_path: Path) -> None:
    train = tmp_path / "train.jsonl"
    train.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n', encoding="utf-8")
    blob = "https://acct.blob.core.windows.net/azureml-blobstore-guid/LocalUpload/"
    api.get(WS + "/datastores/workspaceblobstore", json={
        "id": WS_PATH + "/datastores/workspaceblobstore", "name": "workspaceblobstore",
        "properties": {"datastoreType": "AzureBlob", "accountName": "acct", "containerName": "azureml-blobstore-guid",
                       "endpoint": "core.windows.net", "protocol": "https", "isDefault": True,
                       "credentials": {"credentialsType": "AccountKey"}}})
    api.post(WS + "/datastores/workspaceblobstore/listSecrets",
             json={"secretsType": "AccountKey", "key": base64.b64encode(b"k" * 32).decode()})
    blob_url = re.compile(re.escape(blob) + ".*")
    api.add(responses.HEAD, blob_url, status=404, headers={"x-ms-error-code": "BlobNotFound"})

    def put_blob(request: Any) -> tuple[int, dict[str, str], str]:
        headers = {"ETag": '"0x1"', "Last-Modified": "Sun, 29 Nov 2026 16:00:00 GMT"}
        return (200 if "comp=metadata" in request.url else 201), headers, ""

    api.add_callback(responses.PUT, blob_url, callback=put_blob)
    api.put(WS + "/data/train/versions/1", status=201, json={
        "id": WS_PATH + "/data/train/versions/1", "name": "1",
        "properties": {"dataType": "uri_file", "dataUri": "azureml://datastores/workspaceblobstore/paths/x"}})

    assert adapter.upload_data(train, "train", "1") == WS_PATH + "/data/train/versions/1"
    content = next(c for c in api.calls if c.request.method == "PUT" and c.request.url.startswith(blob)
                   and "comp=" not in c.request.url)
    assert content.request.headers["x-ms-blob-type"] == "BlockBlob"
    assert content.request.body == train.read_bytes() and content.request.url.endswith("/train.jsonl")
    data = body_of(next(c for c in api.calls if c.request.url.startswith(WS + "/data/")))
    assert data["properties"]["dataType"] == "uri_file"
    assert data["properties"]["dataUri"].startswith("azureml://") and data["properties"]["dataUri"].endswith(
        "/train.jsonl")


def test_upload_of_a_missing_file_fails_before_any_call(api: Any, adapter: Any, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file"):
        adapter.upload_data(tmp_path / "absent.jsonl", "train", "1")


# --- the job --------------------------------------------------------------------------------------


def test_submit_puts_a_chat_completion_finetuning_job_with_string_hyperparameters(api: Any, adapter: Any) -> None:
    def created(request: Any) -> tuple[int, dict[str, str], str]:
        echo = json.loads(request.body)
        echo["properties"]["status"] = "Created"
        echo.update(id=WS_PATH + "/jobs/ft-job-1", name="ft-job-1",
                    type="Microsoft.MachineLearningServices/workspaces/jobs")
        return 201, {}, json.dumps(echo)

    api.add_callback(responses.PUT, JOB, callback=created)
    hyper = vocab.hyperparameters_from_train({"epochs": 3, "batch_size": 8, "learning_rate": 2e-4})
    name = adapter.submit(PHI, "azureml:train:1", "azureml:val:1", hyper, output_prefix="phi-ft",
                          job_name="ft-job-1")

    assert name == "ft-job-1"
    (call,) = api.calls
    props = body_of(call)["properties"]
    details = props["fineTuningDetails"]
    assert props["jobType"] == "FineTuning"
    assert details["taskType"].lower() == "chatcompletion"  # the SDK sends camelCase, the spec example Pascal
    assert details["hyperParameters"] == {"num_train_epochs": "3", "per_device_train_batch_size": "8",
                                          "learning_rate": "0.0002"}
    assert details["model"] == {"jobInputType": "mlflow_model", "uri": PHI}
    assert details["trainingData"]["jobInputType"] == "uri_file"
    assert details["trainingData"]["uri"].endswith("/data/train/versions/1")
    assert details["validationData"]["uri"].endswith("/data/val/versions/1")
    assert props["outputs"]["registered_model"] == {"jobOutputType": "mlflow_model", "assetName": "phi-ft"}
    assert call.request.headers["Authorization"] == "Bearer fake-token"


def test_submit_without_validation_data_is_refused_before_any_call(api: Any, adapter: Any) -> None:
    with pytest.raises(UserError, match="validation file"):
        adapter.submit(PHI, "azureml:train:1", "", {}, output_prefix="phi-ft", job_name="ft-job-1")


def follow(api: Any, clock: Clock, statuses: list[str]) -> None:
    """The job GET answers the next status each time the adapter sleeps, however often it asks."""
    state = {"i": 0}
    clock.on_sleep.append(lambda: state.update(i=min(state["i"] + 1, len(statuses) - 1)))
    api.add_callback(responses.GET, JOB,
                     callback=lambda request: (200, {}, json.dumps(job_resource(statuses[state["i"]]))))


def test_wait_follows_the_job_to_completed_reporting_each_change(api: Any, adapter: Any, clock: Clock) -> None:
    follow(api, clock, ["Queued", "Preparing", "Running", "Running", "Completed"])
    seen: list[str] = []
    assert adapter.wait("ft-job-1", on_status=seen.append, timeout=3600) == "Completed"
    assert seen == ["Queued", "Preparing", "Running", "Completed"]
    assert clock.sleeps == [30, 30, 30, 30]


def test_wait_stops_on_failed(api: Any, adapter: Any, clock: Clock) -> None:
    follow(api, clock, ["Starting", "Running", "Failed"])
    final = adapter.wait("ft-job-1")
    assert (final, vocab.normalise(final)) == ("Failed", "failed")
    assert len(clock.sleeps) == 2


def test_wait_gives_up_after_the_timeout_and_says_the_job_still_runs(clock: Clock) -> None:
    jobs = SimpleNamespace(get=lambda name: SimpleNamespace(status="Running"))
    adapter = azureml.AzureMLAdapter(subscription_id="SUB", resource_group="rg", workspace="ws", credential=None,
                                     poll_interval=30, sleep=clock.sleep, clock=clock,
                                     ml_client=SimpleNamespace(jobs=jobs))
    seen: list[str] = []
    with pytest.raises(StepFailed) as err:
        adapter.wait("ft-job-1", on_status=seen.append, timeout=60)
    assert "still Running after 60s" in str(err.value) and "keeps running in Azure" in str(err.value)
    assert seen == ["Running"] and clock.sleeps == [30, 30]


def test_status_of_an_unknown_job_names_the_workspace(api: Any, adapter: Any) -> None:
    api.get(JOB, status=404, json={"error": {"code": "UserError", "message": "Job ft-job-1 not found"}})
    with pytest.raises(UserError, match="job 'ft-job-1' is not in workspace 'ws'"):
        adapter.status("ft-job-1")


def test_cancel_posts_cancel_and_follows_the_operation(api: Any, adapter: Any) -> None:
    operation = ARM + "/subscriptions/SUB/providers/Microsoft.MachineLearningServices/locations/eastus/mfeOperationResults/jc:1"
    api.post(JOB + "/cancel", status=202, headers={"Location": operation, "Retry-After": "0"})
    api.get(operation, status=200)
    adapter.cancel("ft-job-1")
    assert [c.request.method for c in api.calls] == ["POST", "GET"]


def test_registered_model_is_the_workspace_model_id_a_serverless_endpoint_takes(api: Any, adapter: Any) -> None:
    api.get(JOB, json=job_resource("Completed"))
    model_path = WS_PATH + "/models/phi-ft/versions/2"
    api.get(WS + "/models/phi-ft/versions", json={"value": [
        {"id": model_path, "name": "2", "type": "Microsoft.MachineLearningServices/workspaces/models/versions",
         "properties": {"modelType": "mlflow_model", "flavors": {}, "modelUri": "azureml://jobs/ft-job-1/outputs/x"}}]})
    add_workspace(api)
    assert adapter.registered_model("ft-job-1") == (
        f"azureml://locations/eastus/workspaces/{WORKSPACE_GUID}/models/phi-ft/versions/2")


def test_registered_model_of_an_unfinished_job_is_a_step_failure(api: Any, adapter: Any) -> None:
    api.get(JOB, json=job_resource("Running"))
    with pytest.raises(StepFailed, match="is Running; only a Completed job registers a model"):
        adapter.registered_model("ft-job-1")


# --- serving --------------------------------------------------------------------------------------


def test_marketplace_subscription_for_llama_names_the_unversioned_model(api: Any, adapter: Any) -> None:
    url = WS + "/marketplaceSubscriptions/llama-sub"

    def resource(state: str) -> dict[str, Any]:
        return {"id": WS_PATH + "/marketplaceSubscriptions/llama-sub", "name": "llama-sub",
                "properties": {"modelId": vocab.unversioned(LLAMA), "provisioningState": state,
                               "marketplacePlan": {"offerId": "meta-llama-3-1-8b", "planId": "p", "publisherId": "m"}}}

    api.put(url, status=201, json=resource("Creating"))
    api.get(url, json=resource("Succeeded"))
    assert adapter.marketplace_subscription(LLAMA, "llama-sub") == "llama-sub"
    assert body_of(api.calls[0]) == {"properties": {"modelId": vocab.unversioned(LLAMA)}}


def test_phi_needs_no_marketplace_subscription(api: Any, adapter: Any) -> None:
    assert adapter.marketplace_subscription(PHI, "phi-sub") is None
    assert len(api.calls) == 0


def test_serverless_endpoint_is_a_consumption_sku_for_the_model(api: Any, adapter: Any) -> None:
    model_id = f"azureml://locations/eastus/workspaces/{WORKSPACE_GUID}/models/phi-ft/versions/2"
    url = WS + "/serverlessEndpoints/phi-ft-ep"

    def endpoint(state: str) -> dict[str, Any]:
        return {"id": WS_PATH + "/serverlessEndpoints/phi-ft-ep", "name": "phi-ft-ep", "location": "eastus",
                "sku": {"name": "Consumption"},
                "properties": {"authMode": "Key", "modelSettings": {"modelId": model_id}, "provisioningState": state,
                               "inferenceEndpoint": {"uri": "https://phi-ft-ep.eastus.models.ai.azure.com"}}}

    add_workspace(api)
    api.put(url, status=201, json=endpoint("Creating"))
    api.get(url, json=endpoint("Succeeded"))
    got = adapter.create_serverless_endpoint("phi-ft-ep", model_id)

    put = next(c for c in api.calls if c.request.method == "PUT")
    assert body_of(put) == {"sku": {"name": "Consumption"}, "location": "eastus",
                            "properties": {"modelSettings": {"modelId": model_id}}}
    assert got["name"] == "phi-ft-ep" and got["scoring_uri"] == "https://phi-ft-ep.eastus.models.ai.azure.com"
    assert got["model_id"] == model_id and got["provisioning_state"].lower() == "succeeded"


# --- errors ---------------------------------------------------------------------------------------


def submit(adapter: Any) -> str:
    return adapter.submit(PHI, "azureml:train:1", "azureml:val:1", {"learning_rate": "0.0002"},
                          output_prefix="phi-ft", job_name="ft-job-1")


@pytest.mark.parametrize("code", ["AuthorizationFailed", "UserError"])
def test_a_missing_role_is_a_user_error_that_says_which_role(api: Any, adapter: Any, code: str) -> None:
    api.put(JOB, status=403, json={"error": {"code": code, "message": "The client 'x' does not "
                                             "have authorization to perform action\n'Microsoft.MachineLearningServices/"
                                             "workspaces/jobs/write'"}})
    with pytest.raises(UserError) as err:
        submit(adapter)
    message = str(err.value)
    assert "lacks a role on workspace 'ws'" in message and "AzureML Data Scientist" in message
    assert "\n" not in message


def test_exhausted_quota_fails_the_step_and_says_so(api: Any, adapter: Any) -> None:
    api.put(JOB, status=400, json={"error": {"code": "InsufficientQuota", "message": "Not enough quota for "
                                             "Standard_NC24ads_A100_v4 in eastus"}})
    with pytest.raises(StepFailed) as err:
        submit(adapter)
    assert err.value.step == "train" and "quota exhausted (InsufficientQuota" in str(err.value)
    assert "request more quota" in str(err.value)


def test_other_service_errors_fail_the_step_with_the_status_and_code(api: Any, adapter: Any) -> None:
    api.put(JOB, status=400, json={"error": {"code": "ValidationError", "message": "Hyperparameter x unknown"}})
    with pytest.raises(StepFailed, match="HTTP 400 ValidationError: Hyperparameter x unknown"):
        submit(adapter)


def test_a_refused_token_is_a_user_error_pointing_at_sign_in(api: Any, clock: Clock) -> None:
    adapter = azureml.AzureMLAdapter(subscription_id="SUB", resource_group="rg", workspace="ws",
                                     credential=FakeCredential(fail=True), sleep=clock.sleep, clock=clock,
                                     client_options={"retry_total": 0})
    with pytest.raises(UserError, match="az login"):
        adapter.status("ft-job-1")


def test_a_401_answer_is_a_user_error_pointing_at_sign_in(api: Any, adapter: Any) -> None:
    api.get(JOB, status=401, json={"error": {"code": "InvalidAuthenticationToken", "message": "expired"}})
    with pytest.raises(UserError, match="token was refused"):
        adapter.status("ft-job-1")


def test_an_unreachable_azure_fails_the_step(api: Any, adapter: Any) -> None:
    with pytest.raises(StepFailed, match="Azure could not be reached"):
        adapter.status("ft-job-1")  # nothing registered: responses refuses the connection
