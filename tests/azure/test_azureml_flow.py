"""The azureml trainer's flow around ``AzureMLAdapter``: what it records before each call that costs
money, and that a resumed run reattaches to its job instead of submitting another.

The Azure ML side is a fake ``MLClient`` handed to the adapter (the SDK boundary the adapter documents
for tests; its HTTP is covered by test_azureml.py): it keeps jobs, data assets, models and endpoints,
and can die (KeyboardInterrupt) at a chosen call.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("azure.ai.ml")

from ftp.backends.azure.azureml import AzureMLAdapter
from ftp.backends.azure.azureml_trainer import AzureMLFineTuning
from ftp.backends.azure.settings import AzureSettings
from ftp.errors import StepFailed
from ftp.hooks import default_hooks
from ftp.config.pipeline_file import load_pipeline
from ftp.run.progress import make_reporter
from ftp.run.store import RunDir
from ftp.run.context import RunContext
from ftp.run.runner import train_request
from ftp.types import DatasetRef, DeployRequest, ModelVersion

PHI = "azureml://registries/azureml/models/Phi-4-mini-instruct/versions/7"
SETTINGS = ("backends.azure.kind=azureml", "backends.azure.model.base=Phi-4-mini-instruct",
            "backends.azure.workspace=ws", "backends.azure.subscription_id=SUB", "backends.azure.resource_group=rg")


class Poller:
    def __init__(self, value: Any) -> None:
        self.value = value

    def result(self) -> Any:
        return self.value


class FakeMLClient:
    """Azure ML as the SDK client shows it: jobs run Queued -> Running -> Completed over four reads."""

    def __init__(self) -> None:
        self.assets: dict[str, Any] = {}
        self.state: dict[str, dict[str, Any]] = {}
        self.created: list[str] = []
        self.endpoints: list[Any] = []
        self.die_on: str | None = None
        self.data = SimpleNamespace(create_or_update=self._data)
        self.jobs = SimpleNamespace(create_or_update=self._create_job, get=self._get_job, begin_cancel=self._cancel)
        self.models = SimpleNamespace(get=self._model)
        self.workspaces = SimpleNamespace(get=lambda name: SimpleNamespace(location="eastus",
                                                                           _workspace_id="guid-1", name=name))
        self.serverless_endpoints = SimpleNamespace(begin_create_or_update=self._endpoint)
        self.marketplace_subscriptions = SimpleNamespace(begin_create_or_update=lambda s, **kw: Poller(s))

    def _data(self, asset: Any) -> Any:
        asset_id = f"azureml:{asset.name}:{asset.version}"
        self.assets[asset_id] = asset
        return SimpleNamespace(id=asset_id)

    def _create_job(self, job: Any) -> Any:
        self.created.append(job.name)
        self.state.setdefault(job.name, {"reads": 0, "prefix": job.outputs["registered_model"].name,
                                        "status": "Queued"})
        if self.die_on == "submit":
            raise KeyboardInterrupt
        return SimpleNamespace(name=job.name)

    def _get_job(self, name: str) -> Any:
        from azure.core.exceptions import ResourceNotFoundError

        if name not in self.state:
            raise ResourceNotFoundError(f"job {name} not found")
        job = self.state[name]
        job["reads"] += 1
        if self.die_on == "poll" and job["reads"] == 2:
            self.die_on = None
            raise KeyboardInterrupt
        if job["status"] not in ("Canceled",):
            job["status"] = ["Queued", "Running", "Running", "Completed"][min(3, job["reads"] - 1)]
        return SimpleNamespace(status=job["status"], outputs={"registered_model": {"name": job["prefix"]}})

    def _cancel(self, name: str, **kwargs: Any) -> Poller:
        self.state[name]["status"] = "Canceled"
        return Poller(None)

    def _model(self, name: str, label: str | None = None, version: str | None = None) -> Any:
        return SimpleNamespace(name=name, version="1", id=f"azureml:{name}:1")

    def _endpoint(self, endpoint: Any, **kwargs: Any) -> Poller:
        self.endpoints.append(endpoint)
        return Poller(SimpleNamespace(name=endpoint.name, id=f"/endpoints/{endpoint.name}", model_id=endpoint.model_id,
                                      scoring_uri=f"https://{endpoint.name}.eastus.models.ai.azure.com",
                                      provisioning_state="Succeeded"))


class Registry:
    models = SimpleNamespace(get=lambda name, **by: SimpleNamespace(id=PHI))


@pytest.fixture
def ml() -> FakeMLClient:
    return FakeMLClient()


def context(quickstart: Path, run: RunDir | None = None) -> tuple[RunContext, Any]:
    hooks = default_hooks()
    pipeline = load_pipeline(quickstart / "pipeline.yaml", "azure", hooks.catalog(), SETTINGS)
    run = run or RunDir.create(quickstart / "runs", "ticket-triage", pipeline_file=str(pipeline.path),
                               pipeline_sha256=pipeline.sha256, backend="azure")
    return RunContext(run, pipeline, make_reporter("quiet"), hooks, assume_yes=True), pipeline


def request(pipeline: Any, quickstart: Path) -> Any:
    data = quickstart / "data" / "tickets.jsonl"
    ref = DatasetRef(path=data, sha256="a" * 64, examples=320, split="train")
    val = DatasetRef(path=data, sha256="b" * 64, examples=320, split="validation")
    return train_request(pipeline, ref, val, quickstart / "model")


def trainer(ctx: RunContext, ml: FakeMLClient) -> AzureMLFineTuning:
    s = AzureSettings.model_validate(ctx.backend_settings)
    adapter = AzureMLAdapter(subscription_id="SUB", resource_group="rg", workspace="ws", credential=object(),
                             poll_interval=0, sleep=lambda _: None, ml_client=ml, registry_clients={"azureml": Registry()})
    return AzureMLFineTuning(s, ctx, adapter=adapter)


def test_train_records_the_job_name_before_submitting_and_registers_the_model(quickstart: Path, ml: FakeMLClient) -> None:
    ctx, pipeline = context(quickstart)
    result = trainer(ctx, ml).train(request(pipeline, quickstart))
    job = ctx.resource("azureml_job")
    assert ml.created == [job["name"]] and job["name"] == f"ftp-{ctx.run_id}" and job["state"] == "submitted"
    assert job["base_model_id"] == PHI and len(ml.assets) == 2
    assert result.model.cloud_id == "azureml://locations/eastus/workspaces/guid-1/models/ticket-triage/versions/1"
    assert result.backend_details["job_name"] == job["name"]


def test_a_crash_while_following_resumes_onto_the_same_job(quickstart: Path, ml: FakeMLClient) -> None:
    ml.die_on = "poll"
    ctx, pipeline = context(quickstart)
    with pytest.raises(KeyboardInterrupt):
        trainer(ctx, ml).train(request(pipeline, quickstart))
    again, _ = context(quickstart, RunDir.load(ctx.run_dir))
    result = trainer(again, ml).train(request(pipeline, quickstart))
    assert len(ml.created) == 1 and result.model.cloud_id
    assert len(ml.assets) == 2  # recorded, not uploaded again


def test_a_crash_inside_the_submission_is_found_by_the_job_name(quickstart: Path, ml: FakeMLClient) -> None:
    ml.die_on = "submit"
    ctx, pipeline = context(quickstart)
    with pytest.raises(KeyboardInterrupt):
        trainer(ctx, ml).train(request(pipeline, quickstart))
    assert ctx.resource("azureml_job")["state"] == "submitting"
    ml.die_on = None
    again, _ = context(quickstart, RunDir.load(ctx.run_dir))
    trainer(again, ml).train(request(pipeline, quickstart))
    assert len(ml.created) == 1


def test_cancel_then_resume_stops_with_the_reason(quickstart: Path, ml: FakeMLClient) -> None:
    ml.die_on = "poll"
    ctx, pipeline = context(quickstart)
    with pytest.raises(KeyboardInterrupt):
        trainer(ctx, ml).train(request(pipeline, quickstart))
    assert trainer(ctx, ml).cancel() == f"cancel requested for Azure ML job ftp-{ctx.run_id}"
    with pytest.raises(StepFailed, match="was cancelled; start a new run"):
        trainer(ctx, ml).train(request(pipeline, quickstart))
    assert len(ml.created) == 1


def test_deploy_serves_the_registered_model_from_a_serverless_endpoint(quickstart: Path, ml: FakeMLClient) -> None:
    ctx, _ = context(quickstart)
    model = "azureml://locations/eastus/workspaces/guid-1/models/ticket-triage/versions/1"
    version = ModelVersion(name="ticket-triage", version=1, created_at="now", run_id=ctx.run_id, backend="azure",
                           base_model="Phi-4-mini-instruct", artifact=model, data_sha256={}, hyperparameters={},
                           metrics={}, pipeline_sha256="x", code_version="ftp", backend_details={"base_model_id": PHI})
    deployment = trainer(ctx, ml).deploy(DeployRequest(version=version, strategy="blue-green", traffic_new=10,
                                                       store=quickstart / ".ftp" / "deployments.db"))
    assert [e.model_id for e in ml.endpoints] == [model]
    assert deployment.backend == "azure" and deployment.endpoint == "https://ticket-triage-v1.eastus.models.ai.azure.com"
    assert ctx.resource("azureml_endpoint")["provisioning_state"] == "Succeeded"
