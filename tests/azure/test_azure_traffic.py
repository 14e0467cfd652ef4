"""``AzureDeployer.apply_traffic``: new slot weights set on the Azure ML managed online endpoint the slots
are deployments of, as azure-ai-ml does it (anchors 3.6: get the endpoint, set ``traffic`` and
``mirror_traffic``, ``begin_create_or_update(endpoint)``), tested against the ARM calls the SDK sends,
faked with ``responses``: ``GET .../onlineEndpoints/{name}`` and its deployments, the workspace (for its
location), the endpoint ``PUT`` answered 201 with an ``Azure-AsyncOperation`` long-running operation
(InProgress, then Succeeded) and the final ``GET``. Entra ID is tests/azure/fake_azure.py's token
endpoint with azure-identity's real credential (a service principal in the environment)."""

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
from ftp.errors import StepFailed, UserError
from ftp.types import Provisioned, TrafficChange

pytest.importorskip("azure.ai.ml")
responses = pytest.importorskip("responses")

ARM = "https://management.azure.com"
SUB = "00000000-1111-2222-3333-444444444444"
WS_PATH = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws"
WS = ARM + WS_PATH
SETTINGS = {"kind": "azureml", "subscription_id": SUB, "resource_group": "rg", "workspace": "ws",
            "poll": {"interval": 0}, "retry": {"attempts": 1}}
SCORING = "https://triage.eastus.inference.ml.azure.com/score"
Reply = tuple[int, dict[str, str], str]


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Reply:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(body)


@dataclass
class FakeOnlineEndpoint:
    """One managed online endpoint of workspace ``ws`` and its deployments, as ARM answers them."""

    login: Any
    deployments: list[str]
    traffic: dict[str, int]
    mirror: dict[str, int] = field(default_factory=dict)
    puts: list[dict[str, Any]] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)
    refuse: dict[str, Any] | None = None  # an ARM error body for the PUT
    ignore_traffic: bool = False  # the endpoint keeps its old weights (to see ftp check what Azure reports)
    polls: int = 0

    def resource(self, state: str = "Succeeded") -> dict[str, Any]:
        """The endpoint as ARM returns it (azure-ai-ml's OnlineEndpoint REST shape, trimmed)."""
        return {"id": f"{WS_PATH}/onlineEndpoints/triage", "name": "triage", "location": "eastus", "kind": "Managed",
                "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints",
                "identity": {"type": "SystemAssigned"},
                "properties": {"authMode": "Key", "scoringUri": SCORING, "traffic": dict(self.traffic),
                               "mirrorTraffic": dict(self.mirror), "provisioningState": state}}

    def deployment(self, name: str) -> dict[str, Any]:
        return {"id": f"{WS_PATH}/onlineEndpoints/triage/deployments/{name}", "name": name, "location": "eastus",
                "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments",
                "sku": {"name": "Default", "capacity": 1},
                "properties": {"endpointComputeType": "Managed", "instanceType": "Standard_NC24ads_A100_v4",
                               "model": f"{WS_PATH}/models/ticket-triage/versions/{name[-1]}",
                               "scaleSettings": {"scaleType": "Default"}, "provisioningState": "Succeeded"}}

    def install(self, rsps: Any) -> None:
        q, ep = r"(?:\?.*)?$", re.escape(WS) + r"/onlineEndpoints/triage"
        routes = [("GET", re.escape(WS) + q, self._workspace), ("GET", ep + q, self._get),
                  ("GET", ep + r"/deployments" + q, self._deployments), ("PUT", ep + q, self._put),
                  ("GET", re.escape(ARM) + r"/subscriptions/[^/]+/providers/Microsoft\.MachineLearningServices/"
                          r"locations/eastus/mfeOperationsStatus/op1" + q, self._operation)]
        for method, pattern, handler in routes:
            rsps.add_callback(method, re.compile(pattern), callback=self._wrap(handler))

    def _wrap(self, handler: Any) -> Any:
        def callback(request: Any) -> Reply:
            self.calls.append((request.method, request.url))
            token = request.headers.get("Authorization", "").removeprefix("Bearer ")
            if self.login.tokens.get(token) != "https://management.azure.com/.default":
                return _json(401, {"error": {"code": "InvalidAuthenticationToken", "message": "The token is invalid."}})
            return handler(request)

        return callback

    def _workspace(self, request: Any) -> Reply:
        return _json(200, {"id": WS_PATH, "name": "ws", "location": "eastus",
                           "type": "Microsoft.MachineLearningServices/workspaces", "properties": {"workspaceId": "0f1e"}})

    def _get(self, request: Any) -> Reply:
        return _json(200, self.resource())

    def _deployments(self, request: Any) -> Reply:
        return _json(200, {"value": [self.deployment(name) for name in self.deployments]})

    def _put(self, request: Any) -> Reply:
        body = json.loads(request.body)
        self.puts.append(body)
        if self.refuse is not None:
            return _json(400, self.refuse)
        unknown = set(body["properties"].get("traffic") or {}) - set(self.deployments)
        if unknown:
            return _json(400, {"error": {"code": "BadArgument", "message": f"Deployment(s) {sorted(unknown)} not found"}})
        if not self.ignore_traffic:
            self.traffic = dict(body["properties"].get("traffic") or {})
            self.mirror = dict(body["properties"].get("mirrorTraffic") or {})
        op = f"{ARM}/subscriptions/{SUB}/providers/Microsoft.MachineLearningServices/locations/eastus/mfeOperationsStatus/op1"
        return _json(201, self.resource("Updating"), {"Azure-AsyncOperation": op, "Retry-After": "0"})

    def _operation(self, request: Any) -> Reply:
        self.polls += 1
        status = "InProgress" if self.polls == 1 else "Succeeded"
        return _json(200, {"status": status}, {"Retry-After": "0"})


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOnlineEndpoint]:
    sys.path.insert(0, str(Path(__file__).parent))
    from fake_azure import FakeAzure, sign_in_as_service_principal
    from ftp.backends.azure import auth

    login = FakeAzure()
    sign_in_as_service_principal(monkeypatch, login.client_secret)
    auth.reset_credential()
    fake = FakeOnlineEndpoint(login=login, deployments=["ticket-triage-v1", "ticket-triage-v2"],
                              traffic={"ticket-triage-v1": 100})
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        login.install(rsps)
        fake.install(rsps)
        yield fake
    auth.reset_credential()
    sys.path.remove(str(Path(__file__).parent))


def online_deployment(number: int, endpoint: str = "triage") -> Provisioned:
    return Provisioned(backend="azure", endpoint=SCORING, details={
        "online_endpoint": endpoint, "deployment": f"ticket-triage-v{number}", "scoring_uri": SCORING,
        "state": "Succeeded"})


def change(traffic: dict[str, int], mirror: dict[str, int] | None = None,
           endpoints: dict[int, Provisioned] | None = None) -> TrafficChange:
    return TrafficChange(name="ticket-triage", slots={"blue": 1, "green": 2}, traffic=traffic, mirror=mirror or {},
                         endpoints={1: online_deployment(1), 2: online_deployment(2)} if endpoints is None else endpoints,
                         backend_settings=SETTINGS)


def apply(new: TrafficChange) -> None:
    from ftp.backends.azure import AzureDeployer

    AzureDeployer().apply_traffic(new)


def test_new_weights_are_put_on_the_endpoint_by_deployment_name(online: FakeOnlineEndpoint) -> None:
    apply(change({"blue": 90, "green": 10}))
    assert online.traffic == {"ticket-triage-v1": 90, "ticket-triage-v2": 10}
    put = online.puts[0]
    assert put["location"] == "eastus" and put["properties"]["authMode"] == "Key"
    assert put["properties"]["traffic"] == {"ticket-triage-v1": 90, "ticket-triage-v2": 10}
    assert put["properties"]["mirrorTraffic"] == {}
    methods = [(m, urlparse(u).path.rsplit("/", 1)[-1]) for m, u in online.calls]
    assert methods == [("GET", "triage"), ("GET", "deployments"), ("GET", "ws"), ("PUT", "triage"),
                       ("GET", "op1"), ("GET", "op1"), ("GET", "triage")]  # read, change, PUT, follow, read back
    versions = {urlparse(u).path.rsplit("/", 1)[-1]: parse_qs(urlparse(u).query)["api-version"][0]
                for m, u in online.calls if m != "GET" or "op1" not in u}
    assert versions["triage"] == "2022-02-01-preview"  # azure-ai-ml's online endpoint api-version


def test_promotion_leaves_the_old_deployment_out_which_azure_ml_reads_as_zero(online: FakeOnlineEndpoint) -> None:
    online.traffic = {"ticket-triage-v1": 90, "ticket-triage-v2": 10}
    apply(change({"blue": 0, "green": 100}))
    assert online.puts[0]["properties"]["traffic"] == {"ticket-triage-v2": 100}
    assert online.traffic == {"ticket-triage-v2": 100}


def test_a_mirror_is_set_as_mirror_traffic(online: FakeOnlineEndpoint) -> None:
    apply(change({"blue": 100, "green": 0}, mirror={"green": 20}))
    assert online.puts[0]["properties"]["traffic"] == {"ticket-triage-v1": 100}
    assert online.puts[0]["properties"]["mirrorTraffic"] == {"ticket-triage-v2": 20}


@pytest.mark.parametrize("bad, message", [
    (change({"blue": 90, "green": 10}, endpoints={1: online_deployment(1), 2: online_deployment(2, "other")}),
     "ticket-triage: its slots are deployments of different online endpoints (other, triage); Azure ML splits "
     "traffic only between deployments of one endpoint"),
    (change({"blue": 90, "green": 10}, endpoints={1: online_deployment(1), 2: Provisioned(
        backend="azure", endpoint="https://v2.eastus.models.ai.azure.com", details={"name": "v2", "sku": "Consumption"})}),
     "ticket-triage: slot green (version 2) is no deployment of online endpoint triage, so Azure ML cannot route its "
     "share; deploy that version to the endpoint or give its slot 0%"),
    (change({"blue": 100, "green": 0}, mirror={"green": 60}), "Azure ML mirrors to one deployment, at most 50%"),
    (change({"blue": 90, "green": 10}, mirror={"green": 10}), "never to one that takes live traffic"),
    (change({"blue": 90, "green": 20}), "traffic {'ticket-triage-v1': 90, 'ticket-triage-v2': 20} sums to 110%"),
])
def test_what_azure_ml_cannot_carry_is_refused_before_any_call(online: FakeOnlineEndpoint, bad: TrafficChange,
                                                                message: str) -> None:
    with pytest.raises(UserError) as refused:
        apply(bad)
    assert message in str(refused.value) and "\n" not in str(refused.value)
    assert not online.calls and not online.login.calls  # not even a token


def test_azure_openai_deployments_and_serverless_endpoints_split_nothing_on_azure(online: FakeOnlineEndpoint) -> None:
    openai = {n: Provisioned(backend="azure", endpoint=f"https://r.openai.azure.com/openai/deployments/ticket-triage-v{n}",
                             details={"name": f"ticket-triage-v{n}", "state": "Succeeded"}) for n in (1, 2)}
    serverless = {n: Provisioned(backend="azure", endpoint=f"https://v{n}.eastus.models.ai.azure.com",
                                 details={"name": f"v{n}", "sku": "Consumption", "state": "Succeeded"}) for n in (1, 2)}
    for endpoints in (openai, serverless, {}):
        apply(change({"blue": 50, "green": 50}, endpoints=endpoints))
    assert not online.calls and not online.login.calls


def test_a_refusal_by_azure_ml_is_one_line(online: FakeOnlineEndpoint) -> None:
    online.refuse = {"error": {"code": "BadArgument", "message": "Traffic for deployment\nticket-triage-v2 cannot exceed "
                                                                "100."}}
    with pytest.raises(StepFailed) as failed:
        apply(change({"blue": 90, "green": 10}))
    line = str(failed.value)
    assert line.startswith("deploy: Azure ML traffic update of online endpoint triage failed: HTTP 400 BadArgument: "
                           "Traffic for deployment ticket-triage-v2 cannot exceed 100.") and "\n" not in line
    assert online.traffic == {"ticket-triage-v1": 100}


def test_weights_azure_ml_does_not_report_back_fail_the_change(online: FakeOnlineEndpoint) -> None:
    online.ignore_traffic = True
    with pytest.raises(StepFailed, match=r"reports traffic \{'ticket-triage-v1': 100\} after the update, not "
                                         r"\{'ticket-triage-v1': 90, 'ticket-triage-v2': 10\}"):
        apply(change({"blue": 90, "green": 10}))
